"""Action masks: an environment names the part of its observation that says which actions
are legal, and acting, targets and greedy play choose among those alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qlax
from qlax import envs
from qlax.algorithms import c51, dqn, qrdqn
from qlax.components.exploration import EXPLORERS
from qlax.core.types import Transition
from qlax.envs import Box, Discrete, EnvError, TimeStep
from qlax.envs.base import legal_actions
from qlax.program.evaluation import make_evaluate
from qlax.program.trainer import make_train
from qlax.settings.config import TrainConfig

TRAP = 10.0  # what an illegal action pays: far more than the best legal episode (1)
# Which actions are legal at each step: at the start 0 and 1; then 0 (pays 1) and 2 (pays 0);
# none in the final observation.
MASKS = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0]], np.float32)


class Trap:
    """Two steps. The first (actions 0 and 1 legal) pays 0; the second (0 and 2 legal) pays 1
    for action 0. An illegal action pays TRAP and ends the episode: a learner that ignores
    the mask learns to take it (action 2 at the start). The observation is a Dict of the
    mask and the step (one-hot), so its "action_mask" key is the mask."""

    name = "Trap"
    max_episode_steps = 5

    def __init__(self, masked: bool = True):
        self.action_space = Discrete(3)
        spaces = {"action_mask": Box((3,), 0.0, 1.0), "t": Discrete(3)}
        self.observation_space = type("Dict", (), {"spaces": spaces if masked else
                                                   {"mask_as_observation": spaces["action_mask"], "t": spaces["t"]}})()
        self.key = "action_mask" if masked else "mask_as_observation"

    def _obs(self, t):
        return {self.key: jnp.asarray(MASKS)[t], "t": t}

    def reset(self, key):
        return self._obs(jnp.int32(0)), jnp.int32(0)

    def step(self, key, t, action):
        legal = jnp.asarray(MASKS)[t, action] > 0
        reward = jnp.where(legal, jnp.where((t == 1) & (action == 0), 1.0, 0.0), TRAP)
        done = ~legal | (t == 1)
        nxt = jnp.where(done, 2, t + 1).astype(jnp.int32)
        return TimeStep(self._obs(nxt), nxt, reward, done, jnp.bool_(False))


TRAP_ENV = envs.register(Trap(), "object:Trap")
OPEN_ENV = envs.register(Trap(masked=False), "object:Trap-unmasked")
OBS = jnp.asarray(np.concatenate([MASKS, np.eye(3, dtype=np.float32)], axis=1))  # the three observations


def test_a_dict_observations_action_mask_key_is_the_mask():
    spec = envs.env_spec(TRAP_ENV)
    assert spec.action_mask == (0, 3) and spec.obs_dim == 6
    assert envs.env_spec(OPEN_ENV).action_mask is None
    # A row that allows nothing (the final observation) allows everything: maxima stay finite.
    np.testing.assert_array_equal(legal_actions(spec, OBS), [[1, 1, 0], [1, 0, 1], [1, 1, 1]])


def test_a_mask_of_the_wrong_size_or_range_gets_one_line():
    for mask in [(0, 2), (4, 7), "all"]:
        env = Trap()
        env.action_mask = mask
        with pytest.raises(EnvError) as err:
            envs.env_spec(envs.register(env, f"object:Trap-{mask}"))
        assert "action_mask = " in str(err.value) and "3 entries" in str(err.value) and "\n" not in str(err.value)


DQN = TrainConfig(env=TRAP_ENV, q_function="mlp", hidden_sizes=[16], num_envs=4, total_steps=3000, chunk_steps=100,
                  buffer_size=1000, batch_size=32, learning_starts=100, eps_schedule="linear", eps_decay_steps=200,
                  eps_end=0.1, lr=5e-3, gamma=0.9, target_period=20, eval_episodes=4, seeds=2, double_q=True)
PQN = TrainConfig(algorithm="pqn", env=TRAP_ENV, q_function="mlp", hidden_sizes=[16], layer_norm=True, num_envs=8,
                  total_steps=4096, chunk_steps=64, num_steps=8, num_epochs=2, num_minibatches=2, lr=5e-3,
                  gamma=0.9, eps_schedule="linear", eps_decay_steps=200, eps_end=0.1,
                  eval_episodes=4, seeds=2)


@pytest.mark.parametrize("exploration", ["epsilon_greedy", "ez_greedy", "noisy"])
@pytest.mark.parametrize("config", [DQN, PQN], ids=["dqn", "pqn"])
def test_acting_never_picks_an_illegal_action(config, exploration):
    """Untrained networks (whose argmax is often illegal), epsilon 1 and epsilon 0: 1000 draws
    per observation, each legal; the random ones cover every legal action."""
    config = config.replace(exploration=exploration, ez_mu=1.5)
    algorithm, hp = make_train(config).algorithm, config.hparams()
    init, act = jax.jit(algorithm.init), jax.jit(algorithm.act)  # compiled once, not op by op
    q_values = jax.jit(lambda params, obs: algorithm.q_function.q_values(algorithm.q_function.outputs(params, obs)))
    obs = jnp.repeat(OBS[:2], 500, axis=0)
    raw_argmax_illegal = False
    for seed in range(4):
        agent = init(jax.random.PRNGKey(seed), hp, obs)
        raw = q_values(agent.learner.params, obs)
        raw_argmax_illegal |= bool(jnp.any(obs[jnp.arange(len(obs)), jnp.argmax(raw, -1)] == 0))
        for eps in [1.0, 0.0]:
            hp_eps = hp.replace(eps_start=eps, eps_end=eps, learning_starts=0)
            first = jnp.ones(len(obs), bool)
            for t in range(3):  # ez-greedy: repeats started at one observation are not kept where illegal
                actions, agent = act(agent, obs if t % 2 == 0 else obs[::-1], first, jax.random.PRNGKey(t),
                                     hp_eps, jnp.int32(10_000), jnp.bool_(True))
                seen = obs if t % 2 == 0 else obs[::-1]
                assert bool(jnp.all(seen[jnp.arange(len(obs)), actions] == 1))
                first = jnp.zeros(len(obs), bool)
            if eps == 1.0 and exploration != "noisy":
                for row in range(2):
                    assert set(np.asarray(actions[obs[:, 3 + row] == 1]).tolist()) == \
                        set(np.flatnonzero(MASKS[row]).tolist())
    assert raw_argmax_illegal  # the mask is what kept the actions legal


def test_epsilon_greedy_is_uniform_over_the_legal_actions():
    legal = jnp.asarray([[True, False, True, True]] * 30_000)
    actions = EXPLORERS["epsilon_greedy"].act(jax.random.PRNGKey(0), jnp.zeros((30_000, 4)), 1.0, (), None, None,
                                              legal)[0]
    counts = np.bincount(np.asarray(actions), minlength=4) / 30_000
    np.testing.assert_allclose(counts, [1 / 3, 0, 1 / 3, 1 / 3], atol=0.015)


def batch_of_trap_steps() -> Transition:
    """From the start to step 1 (legal next: 0 and 2), and from step 1 to the end (no legal next)."""
    return Transition(obs=OBS[:2], action=jnp.array([1, 0], jnp.int32), reward=jnp.array([0.0, 1.0]),
                      next_obs=OBS[1:], terminated=jnp.array([False, True]))


def favour_illegal(params):
    """Network parameters whose Q-values favour action 1 (illegal in the second step) by 5."""
    head = params["net"]["params"]["Dense_1"]
    return {**params, "net": {"params": {**params["net"]["params"],
                                         "Dense_1": {**head, "bias": head["bias"] + jnp.array([0.0, 5.0, 0.0])}}}}


@pytest.mark.parametrize("double_q", [False, True])
def test_the_td_target_maximizes_over_legal_next_actions(double_q):
    """DQN's target against numpy: r + gamma * Q_target(s', a*) with a* the best of the actions
    legal in s' (by the online network for double Q); the final state (no legal action,
    terminated) bootstraps nothing and stays finite."""
    config = DQN.replace(double_q=double_q, loss="squared")
    q_function = make_train(config).algorithm.q_function
    learner = dqn.learner_for(config, q_function, dqn.scalar_values(config))
    hp = config.hparams()
    state = learner.init(favour_illegal(q_function.init(jax.random.PRNGKey(1), hp)), hp)
    state = state.replace(target_params=favour_illegal(q_function.init(jax.random.PRNGKey(2), hp)))
    batch = batch_of_trap_steps()
    _, loss, td_error = jax.jit(learner.update)(state, batch, hp)
    raw = lambda params, obs: np.asarray(q_function.outputs(params, obs))  # noqa: E731 (unmasked)
    next_online, next_target = raw(state.params, batch.next_obs), raw(state.target_params, batch.next_obs)
    chooser = next_online if double_q else next_target
    best = np.argmax(np.where(MASKS[1] > 0, chooser[0], -np.inf))
    expected = np.array([0.0 + 0.9 * next_target[0, best], 1.0])
    q_taken = raw(state.params, batch.obs)[[0, 1], [1, 0]]
    np.testing.assert_allclose(q_taken - np.asarray(td_error), expected, rtol=1e-5)
    assert np.argmax(chooser[0]) == 1  # the illegal action looks best: the mask is what the target obeys
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("algorithm", ["c51", "qrdqn"])
def test_distributional_targets_take_the_best_legal_next_action(algorithm):
    """C51's and QR-DQN's learners' losses equal the loss with the best legal next action handed over
    (its one-hot as the selector), for a network whose best next action is illegal."""
    config = DQN.replace(algorithm=algorithm, v_min=-2.0, v_max=2.0, num_atoms=11, num_quantiles=8)
    values = {"c51": c51, "qrdqn": qrdqn}[algorithm].values(config)
    q_function = make_train(config).algorithm.q_function
    hp = config.hparams()
    batch = batch_of_trap_steps()
    init, outputs = jax.jit(q_function.init), jax.jit(q_function.outputs)  # one compile, not 100 eager passes
    q_values = jax.jit(values.q_values)
    for seed in range(100):  # the first network whose favourite in the second step is illegal
        params = init(jax.random.PRNGKey(seed), hp)
        next_outputs = outputs(params, batch.next_obs)
        next_q = np.asarray(q_values(next_outputs))
        if np.argmax(next_q[0]) == 1:
            break
    assert np.argmax(next_q[0]) == 1
    legal = np.array([MASKS[1], [1, 1, 1]]) > 0  # the final observation allows nothing, so all count
    chosen = jax.nn.one_hot(np.argmax(np.where(legal, next_q, -np.inf), axis=1), 3)
    learner = dqn.learner_for(config, q_function, values)
    _, _, masked_loss = jax.jit(learner.update)(jax.jit(learner.init)(params, hp), batch, hp)  # per-sample losses
    given_loss, _ = jax.jit(values.loss)(dqn.Forward(outputs(params, batch.obs), next_outputs, chosen), batch, hp)
    np.testing.assert_allclose(masked_loss, given_loss, rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(masked_loss)))


def greedy_returns(config, env_id) -> np.ndarray:
    """Every seed's greedy returns after training on `env_id`, (seeds, episodes)."""
    result = qlax.train(config.replace(env=env_id), progress=False)
    q_function = make_train(config.replace(env=env_id)).q_function
    evaluate = jax.vmap(make_evaluate(env_id, q_function, 4))
    keys = jax.random.split(jax.random.PRNGKey(0), config.seeds)
    return np.asarray(evaluate(keys, result.state.agent.learner.params)[0])


@pytest.mark.slow
@pytest.mark.parametrize("config", [DQN, PQN], ids=["dqn", "pqn"])
def test_a_masked_agent_learns_the_best_legal_play_where_an_unmasked_one_takes_the_trap(config):
    np.testing.assert_array_equal(greedy_returns(config, TRAP_ENV), 1.0)  # legal, and the best legal
    np.testing.assert_array_equal(greedy_returns(config, OPEN_ENV), TRAP)  # the trap, without the mask


def test_jumanji_reports_its_action_mask_field_as_the_mask():
    pytest.importorskip("jumanji")
    from qlax.envs import jumanji_adapter

    for env_id in ["Knapsack-v1", "Maze-v0"]:
        spec = envs.env_spec(f"jumanji:{env_id}")
        field = jumanji_adapter.fields(env_id)["action_mask"]
        assert spec.action_mask == (field.start, field.stop) and field.stop - field.start == spec.num_actions
