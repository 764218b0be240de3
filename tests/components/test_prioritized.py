"""Proportional prioritized replay: the sum-tree, sampling frequencies, weights, new rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qlax.components.replay import prioritized
from qlax.core.types import Transition

EXAMPLE = Transition(obs=jnp.zeros(2), action=jnp.int32(0), reward=jnp.float32(0), next_obs=jnp.zeros(2),
                     terminated=jnp.bool_(False))
add = jax.jit(prioritized.add)
update = jax.jit(prioritized.update_priorities, static_argnums=3)
sample_indices = jax.jit(prioritized.sample_indices, static_argnums=2)
sample = jax.jit(prioritized.sample, static_argnums=2)


def batch(n, start=0):
    ids = jnp.arange(start, start + n, dtype=jnp.float32)
    return Transition(obs=jnp.stack([ids, ids], 1), action=jnp.zeros(n, jnp.int32), reward=ids,
                      next_obs=jnp.stack([ids, ids], 1), terminated=jnp.zeros(n, bool))


def check_tree(state):
    """Every node holds the sum of its children."""
    for parent, children in zip(state.levels[:-1], state.levels[1:]):
        sums = np.asarray(children, np.float64).reshape(len(parent), -1).sum(axis=1)
        np.testing.assert_allclose(parent, sums, rtol=1e-5, atol=1e-6)


def test_new_rows_get_the_maximum_priority():
    state = add(prioritized.init(EXAMPLE, 10), batch(4))
    np.testing.assert_allclose(state.priorities[:4], 1.0)
    np.testing.assert_allclose(state.priorities[4:], 0.0)
    state = update(state, jnp.array([0, 1]), jnp.array([3.0, 0.5]), 1.0)
    assert float(state.max_priority) == pytest.approx(3.0, rel=1e-5)
    state = add(state, batch(2, 4))
    np.testing.assert_allclose(state.priorities[4:6], 3.0, rtol=1e-5)
    check_tree(state)


def test_sampling_frequencies_match_priorities():
    state = add(prioritized.init(EXAMPLE, 12), batch(9))  # rows 9..11 stay empty
    td = jnp.array([0.1, 1.0, 2.0, 4.0, 0.5, 8.0, 3.0, 1.5, 0.25])
    alpha = 0.6
    state = update(state, jnp.arange(9), td, alpha)
    check_tree(state)
    priorities = (np.asarray(td) + prioritized.PRIORITY_EPS) ** alpha
    expected = priorities / priorities.sum()
    draws = 90_000
    rows, probabilities = sample_indices(state, jax.random.PRNGKey(0), draws)
    counts = np.bincount(np.asarray(rows), minlength=12)
    assert counts[9:].sum() == 0
    chi2 = ((counts[:9] - draws * expected) ** 2 / (draws * expected)).sum()
    assert chi2 < 26.1  # 99.9th percentile of chi-square with 8 degrees of freedom
    np.testing.assert_allclose(probabilities, expected[np.asarray(rows)], rtol=1e-4)


def test_importance_weights():
    state = add(prioritized.init(EXAMPLE, 4), batch(4))
    state = update(state, jnp.arange(4), jnp.array([1.0, 2.0, 3.0, 4.0]), 1.0)
    data, rows, weights = sample(state, jax.random.PRNGKey(1), 64, 0.5)
    p = (np.array([1.0, 2.0, 3.0, 4.0]) + prioritized.PRIORITY_EPS) / 10.0
    raw = (4 * p[np.asarray(rows)]) ** -0.5
    np.testing.assert_allclose(weights, raw / raw.max(), rtol=1e-4)
    np.testing.assert_array_equal(data.reward, np.asarray(rows, np.float32))  # rows hold their own ids


def test_masked_add_only_prioritizes_written_rows():
    state = add(prioritized.init(EXAMPLE, 8), batch(3), jnp.array([True, False, True]))
    assert int(state.size) == 2 and float(state.total) == pytest.approx(2.0)
    np.testing.assert_allclose(state.priorities[:3], [1.0, 1.0, 0.0])


def test_a_three_level_tree_samples_in_proportion():
    state = prioritized.init(EXAMPLE, 5000)  # 64-ary: 64^2 < 5000 rows <= 64^3 leaves
    assert len(state.levels) == 4
    state = add(state, batch(4100))
    rows = jnp.arange(4100)
    state = update(state, rows, (rows % 7 + 1).astype(jnp.float32), 1.0)
    check_tree(state)
    drawn, _ = sample_indices(state, jax.random.PRNGKey(5), 70_000)
    drawn = np.asarray(drawn)
    assert drawn.max() < 4100
    groups = np.bincount(drawn % 7, minlength=7)
    mass = np.array([(k + 1) * np.sum(np.arange(4100) % 7 == k) for k in range(7)], np.float64)
    expected = 70_000 * mass / mass.sum()
    assert ((groups - expected) ** 2 / expected).sum() < 22.5  # 99.9th percentile, 6 degrees of freedom
