"""Vectorized gymnax environments: transitions, auto-reset, specs, and CartPole's physics."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probe_envs
from qlax.components import normalization
from qlax.envs import EnvError, env_spec, make_env


def probe_steps(env_id: str, num_envs: int, steps: int):
    """(t, obs before the step, EnvStep) for vector steps t = 1..steps of a probe, action 0."""
    env = make_env(env_id, num_envs)
    step = jax.jit(env.step)
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    for t in range(1, steps + 1):
        out = step(jax.random.PRNGKey(t), state, obs, jnp.zeros(num_envs, jnp.int32))
        yield t, obs, out
        obs, state = out.obs, out.env_state


def test_truncation_keeps_the_final_observation_and_is_not_terminal():
    for t, obs, out in probe_steps(probe_envs.COUNTER_PROBE, 3, 5):
        np.testing.assert_allclose(out.transition.obs, obs)
        np.testing.assert_allclose(out.transition.next_obs[:, 0], t / 10)  # the final observation at t = 5
        assert not bool(out.transition.terminated.any())
        assert out.done.tolist() == [t == 5] * 3
    np.testing.assert_allclose(out.obs, 0.0)  # auto-reset after the cut


def test_without_final_observations_a_cut_transition_is_marked_unknown():
    for t, _, out in probe_steps(probe_envs.BLIND_COUNTER_PROBE, 2, 6):
        assert out.next_obs_known.tolist() == [t != 5] * 2 and out.done.tolist() == [t == 5] * 2
        if t != 5:
            np.testing.assert_allclose(out.transition.next_obs[:, 0], (t % 5) / 10)  # the true next observation


def test_an_env_that_never_truncates_ends_by_termination_only():
    for t, _, out in probe_steps(probe_envs.TERMINATING_PROBE, 2, 7):
        ends = (t % 3) == 0
        assert out.transition.terminated.tolist() == [ends] * 2 and out.done.tolist() == [ends] * 2
        assert bool(out.next_obs_known.all())
        np.testing.assert_allclose(out.transition.next_obs[:, 0], (((t - 1) % 3) + 1) / 10)  # 0.3 at the end


CARTPOLE = make_env("CartPole-v1", 4)
cartpole_reset, cartpole_step = jax.jit(CARTPOLE.reset), jax.jit(CARTPOLE.step)  # compiled once for the module


def test_cartpole_shapes_and_dtypes():
    obs, state = cartpole_reset(jax.random.PRNGKey(0))
    assert obs.shape == (4, 4) and obs.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(obs)) <= 0.05)  # gymnax resets uniformly in [-0.05, 0.05]
    new_obs, state, transition, done, *_ = cartpole_step(jax.random.PRNGKey(1), state, obs, jnp.array([0, 1, 0, 1]))
    assert new_obs.shape == (4, 4) and done.shape == (4,) and done.dtype == jnp.bool_
    assert transition.obs.shape == transition.next_obs.shape == (4, 4)
    assert transition.action.dtype == jnp.int32 and transition.action.tolist() == [0, 1, 0, 1]
    assert transition.reward.shape == (4,) and transition.reward.dtype == jnp.float32
    assert transition.terminated.shape == (4,) and transition.terminated.dtype == jnp.bool_
    assert transition.discount is None
    np.testing.assert_array_equal(transition.obs, obs)
    np.testing.assert_array_equal(transition.next_obs, new_obs)  # nothing ended: the same observation
    other, _ = cartpole_reset(jax.random.PRNGKey(2))
    assert not np.allclose(obs, other) and len({tuple(row) for row in np.asarray(obs).tolist()}) == 4
    assert CARTPOLE.num_envs == 4 and CARTPOLE.spec.id == "CartPole-v1"


def test_termination_keeps_the_terminal_observation():
    obs, state = cartpole_reset(jax.random.PRNGKey(0))
    ended = np.zeros(4, bool)
    for t in range(200):  # pushing right always falls over, well before the 500-step limit
        new_obs, state, transition, done, *_ = cartpole_step(jax.random.PRNGKey(t), state, obs, jnp.ones(4, jnp.int32))
        done = np.asarray(done)
        assert np.asarray(transition.terminated).tolist() == done.tolist()
        np.testing.assert_array_equal(transition.obs, obs)
        expected = np.stack([numpy_cartpole_step(s, 1) for s in np.asarray(obs, np.float64)])
        np.testing.assert_allclose(transition.next_obs, expected, rtol=1e-4, atol=1e-5)  # physics, never the reset
        final, returned = np.asarray(transition.next_obs)[done], np.asarray(new_obs)[done]
        assert np.all((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * np.pi / 360))  # beyond a limit
        assert np.all(np.abs(returned) <= 0.05)  # the returned observation: a fresh reset
        assert np.all(np.abs(final - returned).max(axis=1) > 0.1)
        np.testing.assert_array_equal(np.asarray(transition.next_obs)[~done], np.asarray(new_obs)[~done])
        ended |= done
        if ended.all():
            break
        obs = new_obs
    assert ended.all()


def test_a_real_time_limit_is_truncation_with_the_final_observation():
    """A stabilising controller keeps CartPole up past its 500-step limit, all in one scan."""
    gains = jnp.array([0.05, 0.1, 1.0, 0.5])

    @jax.jit
    def rollout(key):
        def body(carry, t):
            obs, state = carry
            action = (obs @ gains > 0).astype(jnp.int32)
            new_obs, state, transition, done, *_ = CARTPOLE.step(jax.random.fold_in(key, t), state, obs, action)
            return (new_obs, state), (transition, done, new_obs)

        obs, state = CARTPOLE.reset(key)
        return jax.lax.scan(body, (obs, state), jnp.arange(502))[1]

    transitions, done, returned = rollout(jax.random.PRNGKey(3))
    done, returned = np.asarray(done), np.asarray(returned)
    limit = env_spec("CartPole-v1").max_episode_steps
    assert limit == 500
    assert not bool(transitions.terminated.any())  # the pole never fell
    assert done.sum() == 4 and done[limit - 1].all()  # each env cut at its 500th step, once
    last = limit - 1
    obs_before, action = np.asarray(transitions.obs[last], np.float64), np.asarray(transitions.action[last])
    expected = np.stack([numpy_cartpole_step(s, a) for s, a in zip(obs_before, action)])
    np.testing.assert_allclose(transitions.next_obs[last], expected, rtol=1e-4, atol=1e-4)  # pre-reset
    assert np.all(np.abs(returned[last]) <= 0.05)  # what the agent sees next: a fresh reset
    assert np.abs(np.asarray(transitions.next_obs[last]) - returned[last]).max() > 1e-3
    np.testing.assert_array_equal(transitions.obs[last + 1], returned[last])  # the next episode starts there
    # Away from the cut, next_obs is the returned observation and the next step's obs.
    np.testing.assert_array_equal(transitions.next_obs[:last], returned[:last])
    np.testing.assert_array_equal(transitions.obs[1:], returned[:-1])


def numpy_cartpole_step(s, action):
    """Gym's CartPole Euler step, written independently of gymnax."""
    x, x_dot, theta, theta_dot = s
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass, polemass_length = masscart + masspole, masspole * length
    force = force_mag if action == 1 else -force_mag
    cos, sin = np.cos(theta), np.sin(theta)
    temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
    theta_acc = (gravity * sin - cos * temp) / (length * (4.0 / 3.0 - masspole * cos**2 / total_mass))
    x_acc = temp - polemass_length * theta_acc * cos / total_mass
    return np.array([x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc])


def test_cartpole_dynamics_match_an_independent_implementation():
    obs, state = cartpole_reset(jax.random.PRNGKey(5))
    expected = np.asarray(obs, np.float64)
    actions = [0, 1, 1, 0, 1, 1, 1, 0]
    for t, a in enumerate(actions):
        mixed = jnp.array([a, 1 - a, a, 1 - a], jnp.int32)  # both forces in every step
        obs, state, transition, *_ = cartpole_step(jax.random.PRNGKey(t), state, obs, mixed)
        expected = np.stack([numpy_cartpole_step(e, int(b)) for e, b in zip(expected, np.asarray(mixed))])
        np.testing.assert_allclose(transition.next_obs, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(transition.reward, 1.0)
    assert np.abs(expected[:, 1]).max() > 0.3  # the state really moved


def test_specs():
    cartpole = env_spec("CartPole-v1")
    assert (cartpole.obs_dim, cartpole.num_actions, cartpole.solve_threshold) == (4, 2, 475.0)
    assert cartpole.obs_shape == (4,) and cartpole.max_episode_steps == 500
    np.testing.assert_allclose(cartpole.obs_high[[0, 2]], [4.8, 0.41887903])  # the observation space's
    assert normalization.bounded(cartpole.obs_low, cartpole.obs_high).tolist() == [True, False, True, False]
    mountaincar = env_spec("MountainCar-v0")
    assert (mountaincar.obs_dim, mountaincar.num_actions, mountaincar.solve_threshold) == (2, 3, -110.0)
    np.testing.assert_allclose(mountaincar.obs_low, [-1.2, -0.07])  # from the observation space
    np.testing.assert_allclose(mountaincar.obs_high, [0.6, 0.07])
    assert normalization.bounded(mountaincar.obs_low, mountaincar.obs_high).all()


def test_unknown_and_continuous_envs_are_refused():
    with pytest.raises(EnvError, match=r"'CartPole-v2'.*did you mean 'CartPole-v1'"):
        make_env("CartPole-v2", 1)
    with pytest.raises(EnvError, match=r"'Acrobot-v2'.*did you mean 'Acrobot-v1'"):
        env_spec("Acrobot-v2")
    with pytest.raises(EnvError, match="'Pendulum-v1'.*continuous"):
        make_env("Pendulum-v1", 1)
    with pytest.raises(EnvError, match="continuous"):
        env_spec("MountainCarContinuous-v0")
    assert issubclass(EnvError, ValueError)


def test_a_discrete_state_index_is_one_hot():
    env = make_env("FrozenLake-misc", 3)
    obs, _ = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (3, 16) and np.all(obs.sum(axis=1) == 1.0)
    assert env_spec("FrozenLake-misc").obs_shape == ()


@pytest.mark.parametrize("env_id,q_function", [("Acrobot-v1", "linear_rbf"), ("Breakout-MinAtar", "mlp"),
                                               ("Catch-bsuite", "mlp"), ("FrozenLake-misc", "linear_rbf")])
@pytest.mark.slow
def test_other_families_train_a_few_compiled_steps(env_id, q_function):
    import qlax
    from qlax.settings.config import TrainConfig

    torso = {"hidden_sizes": [16]} if q_function == "mlp" else {"num_centers": 16}
    config = TrainConfig(env=env_id, q_function=q_function, **torso, num_envs=4, total_steps=400, chunk_steps=50,
                         seeds=2, buffer_size=200, learning_starts=40, eval_episodes=2, early_stop=False)
    result = qlax.train(config, progress=False)
    assert result.summary["env_steps"] == [400, 400]
    assert int(result.state.agent.learner.updates[0]) > 0 and np.all(np.isfinite(result.summary["eval_mean_return"]))


@pytest.mark.slow  # a subprocess
def test_gymnax_renderers_modules_are_not_imported_for_training():
    """gymnax imports seaborn and pyplot for its renderers (1.3 s of every start): qlax defers them
    until something uses them, and then they work."""
    code = ("import sys; from qlax.envs import env_spec; env_spec('CartPole-v1'); "
            "print(sorted(type(sys.modules[m]).__name__ for m in ('seaborn', 'matplotlib.pyplot'))); "
            "import gymnax.environments.misc.pong as pong; print(len(pong.sns.color_palette()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["['_Deferred', '_Deferred']", "10"]
