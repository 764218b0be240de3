"""The replay buffer against a plain numpy circular buffer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qlax.components.replay import uniform
from qlax.core.types import Transition

CAPACITY, OBS_DIM, SAMPLE_BATCH = 7, 3, 16
EXAMPLE = Transition(obs=jnp.zeros(OBS_DIM), action=jnp.int32(0), reward=jnp.float32(0),
                     next_obs=jnp.zeros(OBS_DIM), terminated=jnp.bool_(False))
FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

_add_cache = {}


def add(state, batch, mask=None):
    """uniform.add, jitted once per (batch size, masked or not) and shared by every example."""
    n = batch.reward.shape[0]
    key = (n, mask is not None)
    if key not in _add_cache:
        _add_cache[key] = jax.jit(uniform.add)
    return _add_cache[key](state, batch) if mask is None else _add_cache[key](state, batch, jnp.asarray(mask))


sample_indices = jax.jit(uniform.sample_indices, static_argnums=2)
sample = jax.jit(uniform.sample, static_argnums=2)
can_sample = jax.jit(uniform.can_sample, static_argnums=1)


class NumpyBuffer:
    """The reference: a list of rows written one by one at a wrapping pointer."""

    def __init__(self, capacity, empty_row):
        self.rows = [empty_row] * capacity
        self.pos = self.size = 0

    def add(self, rows, mask=None):
        for i, row in enumerate(rows):
            if mask is not None and not mask[i]:
                continue
            self.rows[self.pos] = row
            self.pos = (self.pos + 1) % len(self.rows)
            self.size = min(self.size + 1, len(self.rows))


def make_batch(start: int, n: int) -> Transition:
    """Rows numbered from `start`, so every field of every row is distinguishable."""
    ids = np.arange(start, start + n, dtype=np.float32)
    return Transition(obs=np.stack([ids, ids + 0.25, ids + 0.5], 1), action=(ids % 5).astype(np.int32),
                      reward=ids * 10, next_obs=np.stack([-ids, -ids, -ids], 1), terminated=ids % 2 == 0)


def rows_of(batch: Transition) -> list[tuple]:
    """Each row as a tuple of (dtype, bytes) per field: equal only if every field is bit-equal."""
    leaves = [np.asarray(getattr(batch, f)) for f in FIELDS]
    return [tuple((leaf.dtype.str, leaf[i].tobytes()) for leaf in leaves) for i in range(len(leaves[0]))]


EMPTY_ROW = rows_of(uniform.contents(uniform.init(EXAMPLE, 1)))[0]

# (batch size, mask bits or None): the mask of a batch of n is the low n bits.
steps = st.lists(st.tuples(st.integers(1, CAPACITY), st.one_of(st.none(), st.integers(0, 2**CAPACITY - 1))),
                 min_size=1, max_size=8)


@settings(max_examples=30, deadline=None)
@given(steps=steps, seed=st.integers(0, 2**16))
@example(steps=[(CAPACITY, None)], seed=0)  # one batch exactly the capacity
@example(steps=[(5, None), (CAPACITY, None), (4, None), (CAPACITY, None)], seed=1)  # full batches mid-ring
@example(steps=[(3, None), (3, None), (3, None), (6, None), (1, None)], seed=2)  # wrap-around by one row
@example(steps=[(4, 0b0000), (6, 0b101101), (CAPACITY, 2**CAPACITY - 1), (5, 0b11010)], seed=3)
def test_matches_numpy_reference_through_wraparound(steps, seed):
    state, reference, written = uniform.init(EXAMPLE, CAPACITY), NumpyBuffer(CAPACITY, EMPTY_ROW), 0
    for n, bits in steps:
        batch = make_batch(written, n)
        written += n
        mask = None if bits is None else np.array([(bits >> i) & 1 == 1 for i in range(n)])
        state = add(state, batch, mask)
        reference.add(rows_of(batch), mask)
        assert int(state.size) == reference.size and int(state.insert_pos) == reference.pos
        assert rows_of(uniform.contents(state)) == reference.rows  # unfilled rows included: still zero
        assert bool(can_sample(state, 1)) == (reference.size >= 1)
        if reference.size == 0:
            continue
        key = jax.random.PRNGKey(seed + written)
        idx = np.asarray(sample_indices(state, key, SAMPLE_BATCH))
        assert idx.shape == (SAMPLE_BATCH,)
        assert idx.min() >= 0 and idx.max() < reference.size
        assert rows_of(sample(state, key, SAMPLE_BATCH)) == [reference.rows[i] for i in idx]


def test_init_is_empty_and_shaped_like_the_example():
    state = uniform.init(EXAMPLE, CAPACITY)
    assert state.capacity == CAPACITY and int(state.size) == 0 and int(state.insert_pos) == 0
    stored = uniform.contents(state)
    assert stored.obs.shape == (CAPACITY, OBS_DIM) and stored.obs.dtype == jnp.float32
    assert stored.action.dtype == jnp.int32 and stored.terminated.dtype == jnp.bool_
    assert stored.reward.shape == (CAPACITY,)
    assert state.storage.shape == (CAPACITY, 2 * OBS_DIM + 3)  # one packed row per transition
    with pytest.raises(ValueError, match=r"capacity \(0\)"):
        uniform.init(EXAMPLE, 0)


def test_masked_add_writes_only_masked_rows_packed_in_order():
    state = add(uniform.init(EXAMPLE, CAPACITY), make_batch(0, 5))
    mask = np.array([True, False, True, False, True])
    state = add(state, make_batch(100, 5), mask)
    assert int(state.size) == CAPACITY and int(state.insert_pos) == 1
    stored = uniform.contents(state)
    assert np.asarray(stored.reward).tolist() == [1040.0, 10.0, 20.0, 30.0, 40.0, 1000.0, 1020.0]  # 100, 102, 104 wrapped
    np.testing.assert_array_equal(stored.obs[0], [104.0, 104.25, 104.5])  # every field of row 104
    unchanged = add(state, make_batch(200, 5), np.zeros(5, bool))
    np.testing.assert_array_equal(unchanged.storage, state.storage)
    assert int(unchanged.size) == CAPACITY and int(unchanged.insert_pos) == 1


def test_masked_add_on_an_empty_buffer_counts_only_written_rows():
    state = add(uniform.init(EXAMPLE, CAPACITY), make_batch(0, 5), np.array([False, True, False, False, True]))
    assert int(state.size) == 2 and int(state.insert_pos) == 2
    assert np.asarray(uniform.contents(state).reward).tolist() == [10.0, 40.0, 0, 0, 0, 0, 0]
    assert bool(uniform.can_sample(state, 2)) and not bool(uniform.can_sample(state, 3))


def test_can_sample_and_capacity_limits():
    state = uniform.init(EXAMPLE, CAPACITY)
    assert not bool(uniform.can_sample(state))
    state = add(state, make_batch(0, 3))
    assert bool(uniform.can_sample(state, 3)) and not bool(uniform.can_sample(state, 4))
    state = add(add(state, make_batch(3, 6)), make_batch(9, 6))  # overfilled: size stays at capacity
    assert int(state.size) == CAPACITY
    assert bool(uniform.can_sample(state, CAPACITY)) and not bool(uniform.can_sample(state, CAPACITY + 1))
    with pytest.raises(ValueError, match=r"batch of 8 transitions exceeds the buffer capacity \(7\)"):
        uniform.add(state, make_batch(0, CAPACITY + 1))
    with pytest.raises(ValueError, match="exceeds the buffer capacity"):
        uniform.add(state, make_batch(0, CAPACITY + 1), jnp.zeros(CAPACITY + 1, bool))
    with pytest.raises(ValueError, match="exceeds the buffer capacity"):
        jax.jit(uniform.add)(state, make_batch(0, CAPACITY + 3))  # also when traced


def test_sampling_is_uniform_over_filled_rows_only():
    state = add(uniform.init(EXAMPLE, CAPACITY), make_batch(0, 4))  # rows 4..6 never written
    idx = np.asarray(sample_indices(state, jax.random.PRNGKey(3), 40_000))
    counts = np.bincount(idx, minlength=CAPACITY)
    assert counts[4:].sum() == 0
    expected = 10_000
    chi2 = ((counts[:4] - expected) ** 2 / expected).sum()
    assert chi2 < 16.3  # 99.9th percentile of chi-square with 3 degrees of freedom
    # The sampled transitions themselves never come from an unfilled (all-zero) row.
    rewards = np.asarray(sample(state, jax.random.PRNGKey(4), 4_000).reward)
    assert set(np.unique(rewards).tolist()) == {0.0, 10.0, 20.0, 30.0}  # row 0 has reward 0
    obs = np.asarray(sample(state, jax.random.PRNGKey(4), 4_000).obs)
    np.testing.assert_array_equal(obs[:, 0] * 10, rewards)  # every field taken from the same row


def test_sampling_a_full_buffer_reaches_every_row():
    state = add(add(uniform.init(EXAMPLE, CAPACITY), make_batch(0, 5)), make_batch(5, 5))
    counts = np.bincount(np.asarray(sample_indices(state, jax.random.PRNGKey(0), 7_000)), minlength=CAPACITY)
    expected = 1_000
    assert ((counts - expected) ** 2 / expected).sum() < 22.5  # 99.9th percentile, 6 degrees of freedom


def test_add_and_sample_are_vmappable_over_a_population_of_buffers():
    @jax.jit
    def add_then_sample(batch, masks, keys):
        states = jax.vmap(lambda _: uniform.init(EXAMPLE, CAPACITY))(jnp.arange(2))
        states = jax.vmap(uniform.add)(states, batch, masks)
        return states, jax.vmap(uniform.sample, in_axes=(0, 0, None))(states, keys, 64)

    batch = jax.tree.map(lambda x: jnp.stack([x, x]), make_batch(0, 3))
    masks = jnp.array([[True, True, True], [False, True, False]])
    states, drawn = add_then_sample(batch, masks, jax.random.split(jax.random.PRNGKey(0), 2))
    assert states.size.tolist() == [3, 1] and states.insert_pos.tolist() == [3, 1]
    rewards = np.asarray(jax.vmap(uniform.contents)(states).reward)[:, :3]
    assert rewards.tolist() == [[0.0, 10.0, 20.0], [10.0, 0.0, 0.0]]
    assert set(np.asarray(drawn.reward[1]).tolist()) == {10.0}  # buffer 1 holds one row only
