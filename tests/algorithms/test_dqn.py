"""The DQN family's pieces: networks, double Q, update cadence, random warm-up."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qlax.algorithms import dqn
from qlax.components import losses
from qlax.components.networks import QFunction, mlp
from qlax.components.replay import uniform
from qlax.core.types import Transition
from qlax.program.trainer import make_train
from qlax.runs.experiment import start
from qlax.settings.config import TrainConfig
from solving import freeze_the_rest_once


def test_double_q_target_by_hand():
    online = jnp.array([[1.0, 3.0], [5.0, 2.0], [0.0, 9.0]])
    target = jnp.array([[10.0, 20.0], [30.0, 40.0], [7.0, -1.0]])
    y = losses.double_q_target(jnp.array([1.0, 1.0, 0.0]), jnp.array([False, True, False]), online, target, 0.5)
    # online argmax picks actions 1, 0, 1; the target values them 20, (terminal), -1.
    np.testing.assert_allclose(y, [1 + 0.5 * 20, 1.0, 0.5 * -1])
    plain = losses.q_learning_target(jnp.array([0.0]), jnp.array([False]), target[2:], 0.5)
    assert float(plain[0]) == 3.5  # max would have taken 7


def test_double_q_learner_values_the_online_choice_with_the_target():
    linear = QFunction(init=None, features=lambda p, obs: obs, head=lambda p, phi, noise=None: phi @ p["W"])
    w, w_target = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32), np.array([[5.0, -3.0], [0.0, 0.0]], np.float32)
    batch = Transition(obs=jnp.array([[1.0, 0.0]]), action=jnp.array([0]), reward=jnp.array([0.0]),
                       next_obs=jnp.array([[1.0, 0.0]]), terminated=jnp.array([False]))
    config = TrainConfig(loss="squared", target="periodic", double_q=True)
    learner = dqn.learner_for(config, linear, dqn.scalar_values(config), lambda hp: optax.sgd(1.0))
    hp = TrainConfig(gamma=0.5, target_period=100).hparams()
    state = learner.init({"W": jnp.asarray(w)}, hp).replace(target_params={"W": jnp.asarray(w_target)})
    _, loss, _ = learner.update(state, batch, hp)
    # Online prefers action 1 (2 > 1); the target values it -3: y = 0.5 * -3. Q(s, 0) = 1.
    assert float(loss) == pytest.approx(0.5 * (1.0 - (-1.5)) ** 2)


@pytest.mark.parametrize("dueling,layer_norm", [(False, False), (True, True)])
def test_mlp_network(dueling, layer_norm):
    q = mlp(obs_dim=3, num_actions=4, hidden_sizes=[8, 8], activation="tanh", layer_norm=layer_norm,
            dueling=dueling, obs_low=np.full(3, -2.0), obs_high=np.full(3, 2.0))
    params = jax.jit(q.init)(jax.random.PRNGKey(0), TrainConfig().hparams())
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    values = jax.jit(q.apply)(params, obs)
    assert values.shape == (5, 4)
    assert ("LayerNorm_0" in params["net"]["params"]) == layer_norm
    np.testing.assert_allclose(q.features(params, obs), obs / 2.0)  # scaled to [-1, 1]
    if dueling:
        _, inter = q.head(params, obs / 2.0, capture_intermediates=True)
        layers = inter["intermediates"]
        value, advantage = layers["Dense_2"]["__call__"][0], layers["Dense_3"]["__call__"][0]
        np.testing.assert_allclose(values, value + advantage - advantage.mean(-1, keepdims=True), rtol=1e-5)
        np.testing.assert_allclose(values.mean(-1), value[:, 0], rtol=1e-5, atol=1e-6)


def run_updates(**changes) -> tuple[int, int]:
    """(vector steps, gradient updates) after one chunk of 50 vector steps of 4 envs."""
    config = TrainConfig(num_envs=4, total_steps=200, chunk_steps=50, seeds=1, num_centers=8,
                         buffer_size=500, learning_starts=1, early_stop=False, **changes)
    run = start(config)
    state, metrics = run.population.run_chunk(run.state)
    return int(state.vector_steps[0]), int(state.agent.learner.updates[0])


@pytest.mark.parametrize("train_freq,gradient_steps,expected", [
    (None, 1, 50),  # one round per vector step
    (2, 1, 100),  # two rounds per vector step of 4 env steps
    (6, 1, 33),  # does not divide num_envs: 200 env steps cross 33 multiples of 6
    (24, 3, 24),  # a round every 6 vector steps: 8 rounds of 3 updates
])
@pytest.mark.slow
def test_update_rounds_fire_at_env_step_crossings(train_freq, gradient_steps, expected):
    assert run_updates(train_freq=train_freq, gradient_steps=gradient_steps) == (50, expected)


def stored_actions_and_greedy(warmup_random: bool):
    config = TrainConfig(num_envs=4, total_steps=400, chunk_steps=100, seeds=1, num_centers=8, init_scale=1.0,
                         buffer_size=400, learning_starts=400, eps_schedule="constant", eps_start=0.0,
                         warmup_random=warmup_random, early_stop=False)
    run = start(config)
    trainer = run.trainer
    # The epsilon reported is the one acting uses: 1 while the warm-up acts at random.
    assert np.asarray(run.population.observe(run.state).epsilon).tolist() == [1.0 if warmup_random else 0.0]
    state, _ = run.population.run_chunk(run.state)
    stored = jax.tree.map(lambda x: np.asarray(x[0]), jax.vmap(uniform.contents)(state.agent.replay))
    params = jax.tree.map(lambda x: x[0], state.agent.learner.params)  # no update ran: learning_starts not reached
    greedy = np.asarray(jnp.argmax(trainer.q_function.apply(params, stored.obs), -1))
    return stored.action, greedy


@pytest.mark.slow
def test_warmup_acts_uniformly_until_learning_starts():
    actions, greedy = stored_actions_and_greedy(True)
    assert np.mean(actions != greedy) == pytest.approx(0.5, abs=0.08)  # 400 coin flips
    actions, greedy = stored_actions_and_greedy(False)
    np.testing.assert_array_equal(actions, greedy)  # epsilon 0: greedy throughout


def nstep_reference(rewards, terminated, truncated, start, n, gamma):
    """Plain Python: (return, discount, index of the last step, terminated) from `start`."""
    total, k = 0.0, 0
    for j in range(start, min(start + n, len(rewards))):
        total += gamma ** (j - start) * rewards[j]
        k += 1
        if terminated[j] or truncated[j]:
            break
    last = start + k - 1
    return total, gamma**k, last, terminated[last]


def test_nstep_windows_match_a_hand_computed_reference():
    from qlax.components import nstep

    n, gamma, horizon = 3, 0.9, 12
    rng = np.random.default_rng(0)
    rewards = rng.integers(1, 9, size=(horizon, 2)).astype(np.float32)
    terminated = np.zeros((horizon, 2), bool)
    truncated = np.zeros((horizon, 2), bool)
    terminated[[2, 7], 0] = True  # env 0: two episodes end by termination inside windows
    truncated[[4, 5], 1] = True  # env 1: a time limit, then a one-step episode cut again
    obs = np.arange(horizon * 2, dtype=np.float32).reshape(horizon, 2, 1)
    step = lambda t: Transition(obs=jnp.asarray(obs[t]), action=jnp.array([t, t]),  # noqa: E731
                                reward=jnp.asarray(rewards[t]), next_obs=jnp.asarray(obs[t] + 100),
                                terminated=jnp.asarray(terminated[t]))
    window = nstep.init(step(0), n)
    push, emit = jax.jit(nstep.push), jax.jit(nstep.emit, static_argnums=1)
    for t in range(horizon):
        window = push(window, step(t), jnp.asarray(terminated[t] | truncated[t]), jnp.ones(2, bool))
        out, full = emit(window, gamma)
        assert np.asarray(full).tolist() == [t >= n - 1] * 2
        if t < n - 1:
            continue
        start = t - n + 1
        for env in range(2):
            ret, discount, last, term = nstep_reference(rewards[:, env], terminated[:, env], truncated[:, env],
                                                        start, n, gamma)
            assert float(out.reward[env]) == pytest.approx(ret, rel=1e-6)
            assert float(out.discount[env]) == pytest.approx(discount, rel=1e-6)
            assert float(out.obs[env, 0]) == obs[start, env, 0] and int(out.action[env]) == start
            assert float(out.next_obs[env, 0]) == obs[last, env, 0] + 100  # final obs on truncation too
            assert bool(out.terminated[env]) == term


@pytest.mark.slow
def test_nstep_training_bootstraps_with_gamma_to_the_k():
    # The time-limit probe again, with 3-step targets: the value is still 1 / (1 - gamma).
    import probe_envs
    import qlax

    config = TrainConfig(env=probe_envs.TIME_LIMIT_PROBE, num_envs=4, total_steps=8000, chunk_steps=500, seeds=1,
                         num_centers=8, gamma=0.9, lr=0.05, loss="squared", target="periodic", target_period=20,
                         learning_starts=64, buffer_size=1000, n_step=3, eval_episodes=2)
    result = qlax.train(config, progress=False)
    q = make_train(config).q_function.apply(jax.tree.map(lambda x: x[0], result.state.agent.learner.params),
                                            jnp.zeros((1, 1)))
    np.testing.assert_allclose(q, 10.0, rtol=0.02)


@pytest.mark.slow
def test_cartpole_dqn_solves_at_least_three_of_four_seeds():
    import qlax

    result = qlax.train(qlax.presets.load("cartpole-dqn"), seeds=4, progress=False,
                        callbacks=[freeze_the_rest_once(3)])
    assert sum(result.solved) >= 3, result.eval_mean_return
    assert max(result.summary["env_steps"]) <= 50_000


def test_an_nstep_window_stops_before_a_step_it_cannot_bootstrap_from():
    from qlax.components import nstep

    gamma, rewards = 0.5, [1.0, 2.0, 4.0]
    step = lambda t: Transition(obs=jnp.full((1, 1), t), action=jnp.array([t]), reward=jnp.array([rewards[t]]),  # noqa: E731
                                next_obs=jnp.full((1, 1), t + 10.0), terminated=jnp.array([False]))
    window = nstep.init(step(0), 3)
    for t, (done, known) in enumerate([(False, True), (False, True), (True, False)]):  # cut at t=2, blind
        window = nstep.push(window, step(t), jnp.array([done]), jnp.array([known]))
    out, storable = nstep.emit(window, gamma)
    assert bool(storable[0]) and float(out.discount[0]) == 0.25  # two steps, not three
    assert float(out.reward[0]) == 1.0 + 0.5 * 2.0 and float(out.next_obs[0, 0]) == 11.0
    for _ in range(2):  # slide until the window starts at the blind step itself
        window = nstep.push(window, step(0), jnp.array([False]), jnp.array([True]))
    out, storable = nstep.emit(window, gamma)
    assert not bool(storable[0])  # one step, and its next observation unknown


def test_an_nstep_window_never_spans_a_step_that_is_no_transition():
    """EnvPool's reset step (next observation unknown, no end) splits windows like an end:
    the steps before it are emitted without it, and a window starting at it is not stored."""
    from qlax.components import nstep

    gamma = 0.5
    step = lambda t: Transition(obs=jnp.full((1, 1), t), action=jnp.array([t]), reward=jnp.array([1.0]),  # noqa: E731
                                next_obs=jnp.full((1, 1), t + 10.0), terminated=jnp.array([False]))
    window = nstep.init(step(0), 3)
    for t, known in enumerate([True, False, True]):  # the old episode's step, the reset step, a new step
        window = nstep.push(window, step(t), jnp.array([False]), jnp.array([known]))
    out, storable = nstep.emit(window, gamma)
    assert bool(storable[0]) and float(out.discount[0]) == 0.5 and float(out.reward[0]) == 1.0
    assert float(out.next_obs[0, 0]) == 10.0  # the old episode's own next observation
    window = nstep.push(window, step(3), jnp.array([False]), jnp.array([True]))
    assert not bool(nstep.emit(window, gamma)[1][0])  # starts at the reset step
