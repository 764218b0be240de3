"""Uniform circular replay buffer as pure functions over a pytree state.

In the style of flashbax: `init`, `add`, `sample`, `can_sample`, all jittable and
vmappable. Capacity is exact, in transitions; `add` takes any batch up to capacity and
wraps around; `sample` draws uniformly, with replacement, from filled rows only.

Each stored transition is one float32 row holding every field side by side (see
`RowLayout`), so adding a batch is one scatter and sampling one is one gather, whatever
the number of fields: on a CPU that, and drawing indices from raw random bits, is what
makes the buffer several times cheaper than one array per field.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from qlax.types import Transition

_BITCAST = ("int32", "uint32")  # stored bit for bit in a float32 slot
_WIDENED = ("bool", "int8", "uint8", "int16", "uint16", "float16", "bfloat16")  # exact as float32


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """Where each field of a transition sits in a float32 row, and how to get it back exactly.

    float32 fields are stored as they are, 32-bit integers bit for bit (bitcast), and
    narrower types (bool, 8- and 16-bit) widened, which float32 represents exactly.
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @staticmethod
    def of(example: Transition) -> RowLayout:
        leaves, treedef = jax.tree.flatten(example)
        dtypes = tuple(jnp.asarray(leaf).dtype.name for leaf in leaves)
        for dtype in dtypes:
            if dtype != "float32" and dtype not in _BITCAST + _WIDENED:
                raise ValueError(f"the replay buffer stores 32-bit and narrower fields; got {dtype}")
        return RowLayout(treedef, tuple(tuple(jnp.shape(leaf)) for leaf in leaves), dtypes)

    @property
    def widths(self) -> list[int]:
        return [math.prod(shape) for shape in self.shapes]

    @property
    def width(self) -> int:
        return sum(self.widths)

    def pack(self, batch: Transition) -> jax.Array:
        """(n, width) float32 rows of a batch with leading axis n."""
        leaves = jax.tree.leaves(batch)
        n = leaves[0].shape[0]
        columns = []
        for leaf, dtype in zip(leaves, self.dtypes):
            leaf = jnp.asarray(leaf).reshape(n, -1)
            columns.append(jax.lax.bitcast_convert_type(leaf, jnp.float32) if dtype in _BITCAST
                           else leaf.astype(jnp.float32))
        return jnp.concatenate(columns, axis=1)

    def unpack(self, rows: jax.Array) -> Transition:
        """The transitions of (..., width) rows, every field bit for bit as it was added."""
        lead = rows.shape[:-1]
        leaves, start = [], 0
        for shape, dtype, width in zip(self.shapes, self.dtypes, self.widths):
            column = rows[..., start:start + width].reshape(lead + shape)
            start += width
            leaves.append(jax.lax.bitcast_convert_type(column, jnp.dtype(dtype)) if dtype in _BITCAST
                          else column.astype(jnp.dtype(dtype)))
        return jax.tree.unflatten(self.treedef, leaves)


@struct.dataclass
class ReplayState:
    storage: jax.Array  # (capacity, layout.width) float32: one packed transition per row
    insert_pos: jax.Array  # int32 (): the row the next transition goes to
    size: jax.Array  # int32 (): rows filled, at most capacity
    layout: RowLayout = struct.field(pytree_node=False)

    @property
    def capacity(self) -> int:
        return self.storage.shape[-2]


def init(example: Transition, capacity: int) -> ReplayState:
    """An empty buffer of `capacity` rows shaped like the unbatched `example`."""
    if capacity < 1:
        raise ValueError(f"capacity ({capacity}) must be at least 1")
    layout = RowLayout.of(example)
    return ReplayState(storage=jnp.zeros((capacity, layout.width), jnp.float32), insert_pos=jnp.int32(0),
                       size=jnp.int32(0), layout=layout)


def add(state: ReplayState, batch: Transition, mask: jax.Array | None = None) -> ReplayState:
    """Write the rows of `batch` (leading axis n <= capacity) after the last one written.

    With `mask` (bool, shape (n,)), only the rows where it is true are written, packed
    together in order; the others leave the buffer untouched.
    """
    capacity = state.capacity
    rows, count = write_rows(state, jax.tree.leaves(batch)[0].shape[0], mask)
    rows = jnp.where(rows >= 0, rows, capacity)  # out of range: dropped by the scatter
    return state.replace(
        storage=state.storage.at[rows].set(state.layout.pack(batch), mode="drop"),
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
    """Uniform row indices in [0, size), with replacement; (batch_size,) int32.

    Raw 32-bit random words reduced modulo size: one generator call, where
    `jax.random.randint` makes three. The modulo bias is at most size / 2^32 relative
    (2e-5 for 100,000 rows).
    """
    bits = jax.random.bits(key, (batch_size,), jnp.uint32)
    return (bits % jnp.maximum(state.size, 1).astype(jnp.uint32)).astype(jnp.int32)


def gather(state: ReplayState, rows: jax.Array) -> Transition:
    """The stored transitions at `rows` (batch,)."""
    return state.layout.unpack(state.storage[rows])


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Transition:
    """A uniform batch of stored transitions. The caller checks `can_sample` first."""
    return gather(state, sample_indices(state, key, batch_size))


def contents(state: ReplayState) -> Transition:
    """Every row of the buffer, filled or not, as transitions (for inspection and tests)."""
    return state.layout.unpack(state.storage)


def can_sample(state: ReplayState, min_size: int | jax.Array = 1) -> jax.Array:
    """Whether at least `min_size` transitions are stored (bool scalar)."""
    return state.size >= min_size
