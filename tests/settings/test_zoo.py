"""rl-zoo's DQN hyperparameters in qlax's settings: unit for unit, read as data, and the
SB3 settings they need (learning_starts 0, gradient_steps -1) train as SB3 defines them."""

import jax
import numpy as np
import pytest

import qlax
from qlax.settings import zoo
from qlax.program.trainer import make_train
from qlax.settings.config import ConfigError, TrainConfig

# rl-baselines3-zoo's hyperparams/dqn.yml entries, as the LunarLander run used them.
LUNAR_LANDER = {"n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4, "batch_size": 128,
                "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99, "target_update_interval": 250,
                "train_freq": 4, "gradient_steps": -1, "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
                "policy_kwargs": "dict(net_arch=[256, 256])"}
CARTPOLE = {"n_timesteps": 5e4, "policy": "MlpPolicy", "learning_rate": 2.3e-3, "batch_size": 64,
            "buffer_size": 100000, "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10,
            "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
            "policy_kwargs": "dict(net_arch=[256, 256])"}


def test_lunar_lander_translates_unit_for_unit():
    settings, notes = zoo.translate(LUNAR_LANDER)
    assert settings["total_steps"] == 100_000 and settings["num_envs"] == 1 and settings["hidden_sizes"] == [256, 256]
    assert settings["learning_starts"] == 0 and settings["warmup_random"] and settings["gradient_steps"] == -1
    assert settings["train_freq"] == 4 and settings["target_period"] == 250  # one update per env step
    assert settings["eps_decay_steps"] == 12_000 and settings["eps_end"] == 0.1 and settings["max_grad_norm"] == 10.0
    assert settings["obs_scaling"] == "none" and not settings["double_q"] and settings["n_step"] == 1
    config = TrainConfig(env="CartPole-v1", algorithm="dqn", **settings).validated()
    assert config.updates_per_round == 4 and settings["weight_init"] == "pytorch" and notes == []


def test_sb3s_own_policy_kwargs_mapping_translates_as_rl_zoos_string():
    as_mapping, _ = zoo.translate({**LUNAR_LANDER, "policy_kwargs": {"net_arch": [256, 256]}})
    assert as_mapping == zoo.translate(LUNAR_LANDER)[0]
    with pytest.raises(ConfigError, match="only dict"):
        zoo.translate({**LUNAR_LANDER, "policy_kwargs": {"net_arch": [64], "activation_fn": "tanh"}})


def test_cartpole_counts_sb3s_target_interval_in_env_steps():
    settings, _ = zoo.translate({**CARTPOLE, "n_envs": 2})
    assert settings["train_freq"] == 512  # 256 calls of a 2-env step
    assert settings["target_period"] == 2  # every 10 env steps at 128 updates per 512 env steps: 2.5 (to the nearest)
    assert settings["eps_decay_steps"] == 4_000  # 16% of 50,000 env steps, in vector steps of 2 envs


@pytest.mark.parametrize("changes, message", [
    ({"policy_kwargs": "__import__('os').system('touch PWNED')"}, "only dict(net_arch=[sizes...]) translates"),
    ({"policy_kwargs": "dict(net_arch=[64], activation_fn=nn.Tanh)"}, "only dict(net_arch=[sizes...])"),
    ({"policy_kwargs": "dict(net_arch=[])"}, "only dict(net_arch=[sizes...])"),
    ({"learning_rate": "lin_1e-3"}, "only a constant rate translates"),
    ({"tau": 0.005}, "only tau 1 (a copy) translates"),
    ({"frame_stack": 4}, "rl-zoo key frame_stack = 4: no qlax counterpart"),
    ({"normalize": True}, "rl-zoo key normalize = True: no qlax counterpart"),
    ({"train_freq": [1, "episode"]}, "only a count of steps translates"),
    ({"learning_rat": 1e-3}, "rl-zoo key learning_rat: not a DQN hyperparameter qlax translates"),
    ({"policy": "MultiInputPolicy"}, "one of MlpPolicy, CnnPolicy"),
])
def test_what_does_not_translate_is_refused_in_one_line(changes, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=None) as caught:
        zoo.translate({**LUNAR_LANDER, **changes})
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "PWNED").exists()


TINY = TrainConfig(num_envs=4, total_steps=800, chunk_steps=50, num_centers=8, buffer_size=400, batch_size=8,
                   early_stop=False, seeds=2)


def final_params(config: TrainConfig):
    return jax.tree.map(np.asarray, qlax.train(config, progress=False).state.agent.learner.params)


def test_sb3s_learning_starts_0_and_gradient_steps_minus_1_train_as_their_meanings():
    # learning_starts 0: learn from the first transition stored, as 1 does (3-step returns store
    # nothing in the first two vector steps: nothing may be sampled from the empty buffer).
    for a, b in zip(jax.tree.leaves(final_params(TINY.replace(learning_starts=0, n_step=3))),
                    jax.tree.leaves(final_params(TINY.replace(learning_starts=1, n_step=3)))):
        np.testing.assert_array_equal(a, b)
    # gradient_steps -1: one update per env step of each round (8 env steps a round: 8 updates),
    # the program of gradient_steps 8; over 800 env steps, learning from the first round, 800.
    every_8 = TINY.replace(learning_starts=8, train_freq=8)
    minus_1, eight = every_8.replace(gradient_steps=-1), every_8.replace(gradient_steps=8)
    assert make_train(minus_1).run_chunk is make_train(eight).run_chunk
    each_step = TINY.replace(learning_starts=8)  # train_freq null: a round every vector step of 4 env steps
    assert make_train(each_step).run_chunk is make_train(each_step.replace(train_freq=4)).run_chunk
    updates = qlax.train(minus_1, progress=False).state.agent.learner.updates
    np.testing.assert_array_equal(updates, [800, 800])
    with pytest.raises(ConfigError, match="gradient_steps = 0: out of range, allowed -1"):
        qlax.train(TINY.replace(gradient_steps=0, learning_starts=8), progress=False)
