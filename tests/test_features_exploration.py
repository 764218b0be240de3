"""RBF features, the Q-function, epsilon schedules and epsilon-greedy actions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qlax import exploration, features
from qlax.qfunctions import linear_rbf


def test_rbf_matches_the_direct_formula():
    key = jax.random.PRNGKey(0)
    centers = features.init_centers(key, 50, 4)
    x = jax.random.uniform(jax.random.PRNGKey(1), (20, 4), minval=-1.5, maxval=1.5)
    x = x.at[0].set(centers[7])  # a point on a center
    direct = np.exp(-((np.asarray(x)[:, None] - np.asarray(centers)) ** 2).sum(-1) / (2 * 0.3**2))
    got = np.asarray(features.rbf(x, centers, 0.3))
    np.testing.assert_allclose(got, direct, rtol=1e-4, atol=1e-6)
    assert got[0, 7] == pytest.approx(1.0, abs=1e-5)
    assert centers.shape == (50, 4) and float(centers.min()) >= -1 and float(centers.max()) <= 1


def test_linear_rbf_scales_observations_and_trains_only_the_weights():
    q = linear_rbf(obs_dim=2, num_actions=3, num_centers=10, sigma=0.5, init_scale=0.1,
                   obs_low=np.array([-2.0, 0.0]), obs_high=np.array([2.0, 10.0]))
    params = q.init(jax.random.PRNGKey(0))
    obs = jnp.array([[2.0, 10.0], [0.0, 5.0]])  # scaled to [1, 1] and [0, 0]
    phi = features.rbf(jnp.array([[1.0, 1.0], [0.0, 0.0]]), params["centers"], 0.5)
    np.testing.assert_allclose(q.apply(params, obs), phi @ params["w"], rtol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(q.apply(p, obs)))(params)
    assert float(jnp.abs(grads["centers"]).sum()) == 0.0 and float(grads["sigma"]) == 0.0
    assert float(jnp.abs(grads["w"]).sum()) > 0


def test_exponential_schedule_is_the_seed_curve():
    schedule = exploration.epsilon_schedule("exponential", 1.0, 0.01, 0.999, 0)
    # float32 rounds 0.999 by ~5e-8 relative, which t multiplies: allow 2e-4 up to t ~ 4600.
    for t in (0, 1, 10, 1000, 4602, 5000, 20000):
        assert float(schedule(t)) == pytest.approx(max(0.01, 0.999**t), rel=2e-4)


def test_linear_and_constant_schedules():
    linear = exploration.epsilon_schedule("linear", 1.0, 0.1, 0.999, 100)
    assert float(linear(0)) == 1.0 and float(linear(50)) == pytest.approx(0.55)
    assert float(linear(100)) == pytest.approx(0.1) and float(linear(1000)) == pytest.approx(0.1)
    constant = exploration.epsilon_schedule("constant", 0.3, 0.1, 0.999, 100)
    assert float(constant(0)) == float(constant(10_000)) == pytest.approx(0.3)


greedy = jax.jit(exploration.epsilon_greedy)


def test_epsilon_zero_is_greedy_and_one_is_uniform():
    q = jax.random.normal(jax.random.PRNGKey(0), (20_000, 3))
    np.testing.assert_array_equal(greedy(jax.random.PRNGKey(1), q, 0.0), jnp.argmax(q, -1))
    counts = np.bincount(np.asarray(greedy(jax.random.PRNGKey(2), q, 1.0)), minlength=3) / 20_000
    np.testing.assert_allclose(counts, 1 / 3, atol=0.015)


def test_coin_and_random_action_are_independent():
    # With epsilon 0.5 and two actions, a random action matches the greedy one half the time:
    # P(action != greedy) = 0.5 * 0.5. Reusing one key for both draws would skew this.
    q = jnp.tile(jnp.array([[0.0, 1.0]]), (40_000, 1))
    actions = np.asarray(greedy(jax.random.PRNGKey(3), q, 0.5))
    assert np.mean(actions == 0) == pytest.approx(0.25, abs=0.01)
