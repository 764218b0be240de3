"""Vectorized gymnax environments: transitions, auto-reset, specs, and CartPole's physics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import probe_envs
from qlax.envs import EnvError, env_spec, make_env


def test_truncation_keeps_the_final_observation_and_is_not_terminal():
    env = make_env(probe_envs.COUNTER_PROBE, 3)
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(0))
    for t in range(1, 6):
        new_obs, state, transition, done = step(jax.random.PRNGKey(t), state, obs, jnp.zeros(3, jnp.int32))
        np.testing.assert_allclose(transition.obs, obs)
        np.testing.assert_allclose(transition.next_obs[:, 0], t / 10)  # the final observation at t = 5
        assert not bool(transition.terminated.any())
        assert done.tolist() == [t == 5] * 3
        obs = new_obs
    np.testing.assert_allclose(obs, 0.0)  # auto-reset after the cut


def test_termination_keeps_the_terminal_observation():
    env = make_env("CartPole-v1", 4)
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(0))
    for t in range(200):
        new_obs, state, transition, done = step(jax.random.PRNGKey(t), state, obs, jnp.ones(4, jnp.int32))
        if bool(done.any()):
            break
        obs = new_obs
    assert bool(transition.terminated[done].all())  # pushing right always falls over, well before 500
    final = np.asarray(transition.next_obs)[np.asarray(done)]
    assert np.all((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 0.2094))  # beyond a limit
    assert np.all(np.abs(np.asarray(new_obs)[np.asarray(done)]) <= 0.05)  # the reset state


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
    env = make_env("CartPole-v1", 2)
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(5))
    expected = np.asarray(obs, np.float64)
    actions = [0, 1, 1, 0, 1, 1, 1, 0]
    for t, a in enumerate(actions):
        obs, state, transition, _ = step(jax.random.PRNGKey(t), state, obs, jnp.full(2, a, jnp.int32))
        expected = np.stack([numpy_cartpole_step(e, a) for e in expected])
        np.testing.assert_allclose(transition.next_obs, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(transition.reward, 1.0)


def test_specs():
    cartpole = env_spec("CartPole-v1")
    assert (cartpole.obs_dim, cartpole.num_actions, cartpole.solve_threshold) == (4, 2, 475.0)
    np.testing.assert_allclose(cartpole.obs_high, [2.4, 3.0, 0.2, 3.0])  # the seed's scaling
    mountaincar = env_spec("MountainCar-v0")
    np.testing.assert_allclose(mountaincar.obs_low, [-1.2, -0.07])
    np.testing.assert_allclose(mountaincar.obs_high, [0.6, 0.07])


def test_unknown_and_continuous_envs_are_refused():
    with pytest.raises(EnvError, match="did you mean 'CartPole-v1'"):
        make_env("CartPole-v2", 1)
    with pytest.raises(EnvError, match="continuous"):
        make_env("Pendulum-v1", 1)


def test_a_discrete_state_index_is_one_hot():
    env = make_env("FrozenLake-misc", 3)
    obs, _ = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (3, 16) and np.all(obs.sum(axis=1) == 1.0)
    assert env_spec("FrozenLake-misc").obs_shape == ()


@pytest.mark.parametrize("env_id,q_function", [("Acrobot-v1", "linear_rbf"), ("Breakout-MinAtar", "mlp"),
                                               ("Catch-bsuite", "mlp"), ("FrozenLake-misc", "linear_rbf")])
def test_other_families_train_a_few_compiled_steps(env_id, q_function):
    import qlax
    from qlax.config import TrainConfig

    config = TrainConfig(env=env_id, q_function=q_function, hidden_sizes=[16], num_centers=16, num_envs=4,
                         total_steps=400, chunk_steps=50, seeds=2, buffer_size=200, learning_starts=40,
                         eval_episodes=2, early_stop=False)
    result = qlax.train(config, progress=False)
    assert result.summary["env_steps"] == [400, 400]
    assert int(result.state.learner.updates[0]) > 0 and np.all(np.isfinite(result.summary["eval_mean_return"]))
