"""The replay buffer against a plain numpy circular buffer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qlax import replay
from qlax.types import Transition

CAPACITY, OBS_DIM = 7, 3
EXAMPLE = Transition(obs=jnp.zeros(OBS_DIM), action=jnp.int32(0), reward=jnp.float32(0),
                     next_obs=jnp.zeros(OBS_DIM), terminated=jnp.bool_(False))
add = jax.jit(replay.add)  # one compile per batch size, shared by every example
sample_indices = jax.jit(replay.sample_indices, static_argnums=2)
sample = jax.jit(replay.sample, static_argnums=2)


class NumpyBuffer:
    """The reference: rows written one by one at a wrapping pointer."""

    def __init__(self, capacity):
        self.rows = [None] * capacity
        self.pos = self.size = 0

    def add(self, batch):
        for row in batch:
            self.rows[self.pos] = row
            self.pos = (self.pos + 1) % len(self.rows)
            self.size = min(self.size + 1, len(self.rows))


def make_batch(start: int, n: int) -> Transition:
    """Rows numbered from `start`, so every field of every row is distinguishable."""
    ids = np.arange(start, start + n, dtype=np.float32)
    return Transition(obs=np.stack([ids, ids + 0.25, ids + 0.5], 1), action=(ids % 5).astype(np.int32),
                      reward=ids * 10, next_obs=np.stack([-ids, -ids, -ids], 1), terminated=ids % 2 == 0)


def rows_of(batch: Transition) -> list[tuple]:
    leaves = [np.asarray(x) for x in (batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated)]
    return [tuple(np.asarray(leaf[i]).tobytes() for leaf in leaves) for i in range(len(leaves[0]))]


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, CAPACITY), min_size=1, max_size=8), seed=st.integers(0, 2**16))
def test_matches_numpy_reference_through_wraparound(sizes, seed):
    state, reference, written = replay.init(EXAMPLE, CAPACITY), NumpyBuffer(CAPACITY), 0
    for n in sizes:
        batch = make_batch(written, n)
        written += n
        state = add(state, batch)
        reference.add(rows_of(batch))
        assert int(state.size) == reference.size and int(state.insert_pos) == reference.pos
        stored = rows_of(state.storage)
        assert stored[:reference.size] == reference.rows[:reference.size]
        key = jax.random.PRNGKey(seed + written)
        idx = np.asarray(sample_indices(state, key, 16))
        assert idx.min() >= 0 and idx.max() < reference.size
        assert rows_of(sample(state, key, 16)) == [reference.rows[i] for i in idx]


def test_masked_add_writes_only_masked_rows_packed_in_order():
    state = add(replay.init(EXAMPLE, CAPACITY), make_batch(0, 5))
    mask = jnp.array([True, False, True, False, True])
    state = add(state, make_batch(100, 5), mask)
    assert int(state.size) == CAPACITY and int(state.insert_pos) == 1
    rewards = np.asarray(state.storage.reward).tolist()
    assert rewards == [1040.0, 10.0, 20.0, 30.0, 40.0, 1000.0, 1020.0]  # rows 100, 102, 104 wrapped
    unchanged = add(state, make_batch(200, 5), jnp.zeros(5, bool))
    assert np.array_equal(unchanged.storage.reward, state.storage.reward) and int(unchanged.size) == CAPACITY


def test_can_sample_and_capacity_limits():
    state = replay.init(EXAMPLE, CAPACITY)
    assert not bool(replay.can_sample(state))
    state = add(state, make_batch(0, 3))
    assert bool(replay.can_sample(state, 3)) and not bool(replay.can_sample(state, 4))
    with pytest.raises(ValueError, match="exceeds the buffer capacity"):
        replay.add(state, make_batch(0, CAPACITY + 1))


def test_sampling_is_uniform_over_filled_rows_only():
    state = add(replay.init(EXAMPLE, CAPACITY), make_batch(0, 4))  # rows 4..6 never written
    idx = np.asarray(sample_indices(state, jax.random.PRNGKey(3), 40_000))
    counts = np.bincount(idx, minlength=CAPACITY)
    assert counts[4:].sum() == 0
    expected = 10_000
    chi2 = ((counts[:4] - expected) ** 2 / expected).sum()
    assert chi2 < 16.3  # 99.9th percentile of chi-square with 3 degrees of freedom
