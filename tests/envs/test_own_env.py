"""Bring your own JAX environment: the protocol's checks, its auto-reset, and training on
an environment registered nowhere, from Python and from `--set env=module:factory`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qlax
from qlax import envs
from qlax.envs import Box, Discrete, EnvError
from qlax.program.trainer import make_train
from qlax.settings import presets
from qlax.settings.config import TrainConfig
from user_env import Corridor

TESTS = Path(__file__).parents[1]  # where the helper modules (user_env, probe_envs) live


def test_the_corridor_auto_resets_keeping_final_observations_and_cutting_at_the_time_limit():
    env = Corridor(length=3, max_episode_steps=4)
    vec = envs.make_env(envs.register(env), 2)
    obs, state = jax.jit(vec.reset)(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(obs, [[1, 0, 0], [1, 0, 0]])
    # env 0 walks right (ends at position 2 on step 2); env 1 walks left (cut after 4 steps).
    seen, vector_step = [], jax.jit(vec.step)
    for t in range(5):
        step = vector_step(jax.random.PRNGKey(t), state, obs, jnp.array([1, 0]))
        seen.append(step)
        obs, state = step.obs, step.env_state
    position = lambda one_hot: np.argmax(np.asarray(one_hot), axis=-1)  # noqa: E731
    ended = [(t, bool(s.transition.terminated[0]), bool(s.done[0])) for t, s in enumerate(seen)]
    assert ended[1] == (1, True, True)  # reached the end: terminated, with next_obs at position 2
    assert position(seen[1].transition.next_obs)[0] == 2 and position(seen[1].obs)[0] == 0
    assert float(seen[1].transition.reward[0]) == 1.0 and bool(seen[1].first[0])
    # env 1: the 4th step is a truncation, not a termination, and its next_obs is the real one.
    assert [bool(s.done[1]) for s in seen] == [False, False, False, True, False]
    assert not bool(seen[3].transition.terminated[1]) and bool(seen[3].next_obs_known[1])
    assert position(seen[3].transition.next_obs)[1] == 0 and position(seen[3].obs)[1] == 0


class DictObservations(Corridor):
    """The Corridor seen through a Dict observation: the position one-hot and a constant box."""

    def __init__(self):
        super().__init__()
        self.observation_space = type("Dict", (), {"spaces": {"where": Discrete(5), "bias": Box((2,), 0.0, 2.0)}})()

    def reset(self, key):
        obs, state = super().reset(key)
        return {"where": obs, "bias": jnp.array([1.0, 2.0])}, state

    def step(self, key, state, action):
        out = super().step(key, state, action)
        return out._replace(obs={"where": out.obs, "bias": jnp.array([1.0, 2.0])})


def test_dict_observations_are_flattened_in_sorted_key_order():
    name = envs.register(DictObservations())
    spec = envs.env_spec(name)
    assert spec.obs_dim == 7 and spec.obs_shape == (7,)
    np.testing.assert_array_equal(spec.obs_low, [0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(spec.obs_high, [2, 2, 1, 1, 1, 1, 1])
    obs, _ = envs.make_env(name, 1).reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(obs, [[1, 2, 1, 0, 0, 0, 0]])  # "bias" before "where"


def test_switching_environment_from_a_preset_drops_the_old_environments_bounds():
    config = presets.load("cartpole-dqn").replace(env="Asterix-MinAtar")
    assert config.obs_low is None and config.obs_high is None
    assert make_train(config).env.spec.obs_dim == 10 * 10 * 4
    kept = presets.load("cartpole-dqn").replace(env="Acrobot-v1", obs_low=[-1.0] * 6, obs_high=[1.0] * 6)
    assert kept.obs_low == [-1.0] * 6  # set in the same change: kept


CORRIDOR_DQN = TrainConfig(q_function="mlp", hidden_sizes=[32], num_envs=4, total_steps=4000, chunk_steps=150,
                           buffer_size=2000, batch_size=32, learning_starts=200, lr=5e-3,
                           gamma=0.9, target_period=50, eval_episodes=4, seeds=2)


@pytest.mark.slow
def test_an_environment_object_trains_and_its_run_reopens_with_the_object_given_again(tmp_path):
    result = qlax.train(CORRIDOR_DQN, env=Corridor(), out=tmp_path / "run", progress=False)
    assert result.summary["env"].startswith("object:Corridor") and result.summary["solved"] == [True, True]
    again = qlax.evaluate_run(tmp_path / "run", env=Corridor())
    assert again["solved"] == [True, True] and again["threshold"] == 1.0
    assert qlax.resume(tmp_path / "run", env=Corridor(), progress=False).already_finished
    with pytest.raises(EnvError, match="pass it again"):
        envs.env_spec("object:NeverGiven")


@pytest.mark.slow
def test_a_module_factory_trains_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    settings = ["env=user_env:corridor", "eps_decay_steps=200", "target_period=50"]
    proc = subprocess.run([sys.executable, "-m", "qlax.tools.cli", "train", "cartpole-dqn", "--seeds", "2", "--steps",
                           "4000", "--out", str(out), *(arg for s in settings for arg in ("--set", s))],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(TESTS)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "user_env:corridor" and summary["solved"] == [True, True]
    # A new process reads the run's factory only where the person names it again
    evaluate = [sys.executable, "-m", "qlax.tools.cli", "eval", str(out), "--episodes", "2"]
    environ = {**os.environ, "PYTHONPATH": str(TESTS)}
    refused = subprocess.run(evaluate, capture_output=True, text=True, env=environ, timeout=600)
    assert refused.returncode == 2 and "--env 'user_env:corridor'" in refused.stderr
    named = subprocess.run([*evaluate, "--env", "user_env:corridor"], capture_output=True, text=True, env=environ,
                           timeout=600)
    assert named.returncode == 0 and "solved 2/2 seeds" in named.stdout, named.stderr[-2000:]


def test_a_module_factory_beside_you_imports_without_pythonpath(tmp_path, monkeypatch):
    """As `python -m` would: the `qlax` command does not put the working directory on the path."""
    (tmp_path / "beside_me.py").write_text((TESTS / "user_env.py").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert envs.env_spec("beside_me:corridor").num_actions == 2


def test_a_module_factory_that_is_not_there_gets_one_line():
    with pytest.raises(EnvError, match="cannot import module 'no_such_module'"):
        envs.env_spec("no_such_module:make")
    with pytest.raises(EnvError, match="module 'user_env' has no callable 'nothing'"):
        envs.env_spec("user_env:nothing")


@pytest.mark.parametrize("preset", presets.names())
@pytest.mark.parametrize("env", ["CartPole-v1", "Asterix-MinAtar", "user_env:corridor"])
def test_every_preset_switches_environment_or_says_which_setting_to_change(preset, env):
    try:
        assert make_train(presets.load(preset).replace(env=env)).env.spec.id == env
    except qlax.ConfigError as err:  # a convolution on vector observations: the only refusal
        assert "--set q_function=mlp" in str(err)


class DataclassState(Corridor):
    """The Corridor with its state in a class of its own (as Jumanji's and many users' are)."""

    class State:
        def __init__(self, position):
            self.position = position

    jax.tree_util.register_pytree_node(State, lambda s: ((s.position,), None), lambda _, c: DataclassState.State(*c))

    def reset(self, key):
        obs, state = super().reset(key)
        return obs, self.State(state.position)

    def step(self, key, state, action):
        out = super().step(key, state, action)
        return out._replace(state=self.State(out.state.position))


def test_a_state_of_any_class_is_checkpointed_as_its_arrays(tmp_path):
    name = envs.register(DataclassState())
    started = qlax.runs.experiment.start(CORRIDOR_DQN.replace(env=name, total_steps=400, learning_starts=50))
    state, _ = started.population.run_chunk(started.state)
    from flax import serialization
    restored = serialization.from_bytes(state, serialization.to_bytes(state))
    np.testing.assert_array_equal(restored.env_state.inner[0], state.env_state.inner[0])
