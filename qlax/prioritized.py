"""Proportional prioritized replay (Schaul et al. 2016) as pure functions over a sum-tree.

The transitions live in a plain `replay.ReplayState`; beside it, a sum-tree holds one
priority per row, so sampling proportional to priority costs O(log capacity) per draw.
New rows get the largest priority seen so far; the learner's TD errors set priorities
to (|delta| + eps)^alpha afterwards. Importance weights (N P(i))^-beta, divided by the
batch's largest, correct the bias; beta is annealed to 1 by the caller.
"""

import jax
import jax.numpy as jnp
from flax import struct

from qlax import replay
from qlax.types import Transition

PRIORITY_EPS = 1e-6  # keeps every stored row sampleable


@struct.dataclass
class PrioritizedState:
    replay: replay.ReplayState
    tree: jax.Array  # (2 * leaves,) float32: tree[1] is the total, leaves start at index `leaves`
    max_priority: jax.Array  # float32 (): given to new rows

    @property
    def size(self) -> jax.Array:
        return self.replay.size


def _leaves(capacity: int) -> int:
    return 1 << max(capacity - 1, 1).bit_length()


def init(example: Transition, capacity: int) -> PrioritizedState:
    return PrioritizedState(replay=replay.init(example, capacity),
                            tree=jnp.zeros(2 * _leaves(capacity), jnp.float32), max_priority=jnp.float32(1.0))


def _set_leaves(tree: jax.Array, rows: jax.Array, priorities: jax.Array) -> jax.Array:
    """Write leaf priorities and recompute their ancestors; rows < 0 are left alone."""
    size = tree.shape[0]
    leaves = size // 2
    valid = rows >= 0
    nodes = rows + leaves
    tree = tree.at[jnp.where(valid, nodes, size)].set(priorities, mode="drop")
    for _ in range(leaves.bit_length() - 1):  # one level up per pass, the root last
        nodes = nodes // 2
        sums = tree[2 * nodes] + tree[2 * nodes + 1]
        tree = tree.at[jnp.where(valid, nodes, size)].set(sums, mode="drop")
    return tree


def add(state: PrioritizedState, batch: Transition, mask: jax.Array | None = None) -> PrioritizedState:
    """`replay.add`, and the written rows get the maximum priority."""
    n = jax.tree.leaves(batch)[0].shape[0]
    capacity = state.replay.capacity
    written = jnp.ones(n, bool) if mask is None else mask
    offsets = jnp.cumsum(written, dtype=jnp.int32) - 1
    rows = jnp.where(written, (state.replay.insert_pos + offsets) % capacity, -1)
    tree = _set_leaves(state.tree, rows, jnp.full(n, state.max_priority))
    return state.replace(replay=replay.add(state.replay, batch, mask), tree=tree)


def sample_indices(state: PrioritizedState, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """(rows (batch_size,), their sampling probabilities), drawn proportional to priority.

    Stratified: draw i falls in the i-th of batch_size equal slices of the total mass.
    """
    tree = state.tree
    leaves = tree.shape[0] // 2
    total = tree[1]
    targets = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) * (total / batch_size)
    nodes = jnp.ones(batch_size, jnp.int32)
    for _ in range(leaves.bit_length() - 1):
        left = tree[2 * nodes]
        go_right = targets >= left
        targets = jnp.where(go_right, targets - left, targets)
        nodes = 2 * nodes + go_right
    rows = jnp.minimum(nodes - leaves, jnp.maximum(state.replay.size - 1, 0))  # float round-off at the edge
    return rows, tree[rows + leaves] / total


def sample(state: PrioritizedState, key: jax.Array, batch_size: int, beta: jax.Array | float):
    """(batch, rows, importance weights normalized to a maximum of 1)."""
    rows, probabilities = sample_indices(state, key, batch_size)
    weights = (state.replay.size * probabilities) ** (-beta)
    batch = jax.tree.map(lambda buf: buf[rows], state.replay.storage)
    return batch, rows, weights / jnp.max(weights)


def update_priorities(state: PrioritizedState, rows: jax.Array, td_errors: jax.Array,
                      alpha: float) -> PrioritizedState:
    """Priorities (|td| + eps)^alpha for the sampled rows; the running maximum follows."""
    priorities = (jnp.abs(td_errors) + PRIORITY_EPS) ** alpha
    return state.replace(tree=_set_leaves(state.tree, rows, priorities),
                         max_priority=jnp.maximum(state.max_priority, jnp.max(priorities)))
