"""Uniform circular replay buffer as pure functions over a pytree state.

In the style of flashbax: `init`, `add`, `sample`, `can_sample`, all jittable and
vmappable. Capacity is exact, in transitions; `add` takes any batch up to capacity and
wraps around; `sample` draws uniformly, with replacement, from filled rows only.
"""

import jax
import jax.numpy as jnp
from flax import struct

from qlax.types import Transition


@struct.dataclass
class ReplayState:
    storage: Transition  # every leaf (capacity, ...)
    insert_pos: jax.Array  # int32 (): the row the next transition goes to
    size: jax.Array  # int32 (): rows filled, at most capacity

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.storage)[0].shape[0]


def init(example: Transition, capacity: int) -> ReplayState:
    """An empty buffer of `capacity` rows shaped like the unbatched `example`."""
    if capacity < 1:
        raise ValueError(f"capacity ({capacity}) must be at least 1")
    storage = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return ReplayState(storage=storage, insert_pos=jnp.int32(0), size=jnp.int32(0))


def add(state: ReplayState, batch: Transition, mask: jax.Array | None = None) -> ReplayState:
    """Write the rows of `batch` (leading axis n <= capacity) after the last one written.

    With `mask` (bool, shape (n,)), only the rows where it is true are written, packed
    together in order; the others leave the buffer untouched.
    """
    capacity = state.capacity
    rows, count = write_rows(state, jax.tree.leaves(batch)[0].shape[0], mask)
    rows = jnp.where(rows >= 0, rows, capacity)  # out of range: dropped by the scatter
    storage = jax.tree.map(lambda buf, x: buf.at[rows].set(x, mode="drop"), state.storage, batch)
    return ReplayState(
        storage=storage,
        insert_pos=(state.insert_pos + count) % capacity,
        size=jnp.minimum(state.size + count, capacity),
    )


def write_rows(state: ReplayState, n: int, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(the row each of n added transitions goes to, -1 where `mask` is false; how many are written)."""
    capacity = state.capacity
    if n > capacity:
        raise ValueError(f"a batch of {n} transitions exceeds the buffer capacity ({capacity})")
    if mask is None:
        return (state.insert_pos + jnp.arange(n, dtype=jnp.int32)) % capacity, jnp.int32(n)
    offsets = jnp.cumsum(mask, dtype=jnp.int32) - 1
    return jnp.where(mask, (state.insert_pos + offsets) % capacity, -1), offsets[-1] + 1


def sample_indices(state: ReplayState, key: jax.Array, batch_size: int) -> jax.Array:
    """Uniform row indices in [0, size), with replacement; (batch_size,) int32."""
    return jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Transition:
    """A uniform batch of stored transitions. The caller checks `can_sample` first."""
    rows = sample_indices(state, key, batch_size)
    return jax.tree.map(lambda buf: buf[rows], state.storage)


def can_sample(state: ReplayState, min_size: int = 1) -> jax.Array:
    """Whether at least `min_size` transitions are stored (bool scalar)."""
    return state.size >= min_size
