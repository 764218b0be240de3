"""Uniform circular replay buffer as pure functions over a pytree state.

In the style of flashbax: `init`, `add`, `sample`, `can_sample`, all jittable and
vmappable. Capacity is exact, in transitions; `add` takes any batch up to capacity and
wraps around; `sample` draws uniformly, with replacement, from filled rows only.

Each stored transition is one row holding every field side by side (see `RowLayout`),
so adding a batch is one scatter and sampling one is one gather, whatever the number of
fields: on a CPU that, and drawing indices from raw random bits, is what makes the
buffer several times cheaper than one array per field. Rows are float32, or bytes when a
field is uint8 (pixel observations): a 4x84x84 Atari frame stack then costs 28 KB a
copy, not the 113 KB it would take widened to float32.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from qlax.core.types import Transition

_BITCAST = ("int32", "uint32")  # stored bit for bit in a float32 slot
_WIDENED = ("bool", "int8", "int16", "uint16", "float16", "bfloat16")  # exact as float32
_WORDS = ("float32",) + _BITCAST  # stored as their 4 bytes in a byte row


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """Where each field of a transition sits in a row, and how to get it back exactly.

    Without uint8 fields a row is float32: float32 fields as they are, 32-bit integers
    bit for bit (bitcast), narrower types (bool, 8- and 16-bit) widened, which float32
    represents exactly. With a uint8 field (frames) a row is bytes: uint8 and bool
    fields one byte per value, 32-bit fields their four bytes (bitcast).
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @staticmethod
    def of(example: Transition) -> RowLayout:
        leaves, treedef = jax.tree.flatten(example)
        dtypes = tuple(jnp.asarray(leaf).dtype.name for leaf in leaves)
        layout = RowLayout(treedef, tuple(tuple(jnp.shape(leaf)) for leaf in leaves), dtypes)
        allowed = ("uint8", "bool") + _WORDS if layout.dtype == jnp.uint8 else ("float32",) + _BITCAST + _WIDENED
        for dtype in dtypes:
            if dtype not in allowed:
                raise ValueError(f"the replay buffer stores {', '.join(allowed)} fields"
                                 f"{' beside uint8 ones' if layout.dtype == jnp.uint8 else ''}; got {dtype}")
        return layout

    @property
    def dtype(self):
        """The row's element type: bytes when a field is uint8, float32 otherwise."""
        return jnp.dtype(jnp.uint8) if "uint8" in self.dtypes else jnp.dtype(jnp.float32)

    @property
    def widths(self) -> list[int]:
        """Row elements per field."""
        bytes_per = 4 if self.dtype == jnp.uint8 else 1
        return [math.prod(shape) * (bytes_per if dtype in _WORDS else 1)
                for shape, dtype in zip(self.shapes, self.dtypes)]

    @property
    def width(self) -> int:
        return sum(self.widths)

    def pack(self, batch: Transition) -> jax.Array:
        """(n, width) rows of a batch with leading axis n."""
        leaves = jax.tree.leaves(batch)
        n = leaves[0].shape[0]
        columns = []
        for leaf, dtype in zip(leaves, self.dtypes):
            leaf = jnp.asarray(leaf).reshape(n, -1)
            if self.dtype == jnp.uint8:
                column = jax.lax.bitcast_convert_type(leaf, jnp.uint8) if dtype in _WORDS else leaf.astype(jnp.uint8)
            else:
                column = jax.lax.bitcast_convert_type(leaf, jnp.float32) if dtype in _BITCAST \
                    else leaf.astype(jnp.float32)
            columns.append(column.reshape(n, -1))
        return jnp.concatenate(columns, axis=1)

    def unpack(self, rows: jax.Array) -> Transition:
        """The transitions of (..., width) rows, every field bit for bit as it was added."""
        lead = rows.shape[:-1]
        leaves, start = [], 0
        for shape, dtype, width in zip(self.shapes, self.dtypes, self.widths):
            column = rows[..., start:start + width]
            start += width
            if self.dtype == jnp.uint8 and dtype in _WORDS:  # four bytes per value
                column = jax.lax.bitcast_convert_type(column.reshape(lead + shape + (4,)), jnp.dtype(dtype))
            elif dtype in _BITCAST:
                column = jax.lax.bitcast_convert_type(column.reshape(lead + shape), jnp.dtype(dtype))
            else:
                column = column.reshape(lead + shape).astype(jnp.dtype(dtype))
            leaves.append(column)
        return jax.tree.unflatten(self.treedef, leaves)


@struct.dataclass
class ReplayState:
    storage: jax.Array  # (capacity, layout.width) of layout.dtype: one packed transition per row
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
    return ReplayState(storage=jnp.zeros((capacity, layout.width), layout.dtype), insert_pos=jnp.int32(0),
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
    """Whether at least `min_size` transitions, and at least one, are stored (bool scalar):
    learning_starts 0 (SB3's) learns from the first transition stored."""
    return state.size >= jnp.maximum(min_size, 1)
