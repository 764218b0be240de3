"""Proportional prioritized replay (Schaul et al. 2016) as pure functions over a sum-tree.

The transitions live in a plain `uniform.ReplayState`; beside it, a sum-tree holds one
priority per row, so sampling proportional to priority costs O(log capacity) per draw.
The tree is 64-ary (three levels for 100,000 rows): each update or draw walks a few
wide levels with vector operations instead of seventeen narrow ones, which is what
costs time on a CPU.
New rows get the largest priority seen so far; the learner's per-sample signals (TD
errors, or a distributional loss) set priorities to (|signal| + eps)^alpha afterwards. Importance weights (N P(i))^-beta, divided by the
batch's largest, correct the bias; beta is annealed to 1 by the caller.
"""

import jax
import jax.numpy as jnp
from flax import struct

from qlax.components.replay import uniform
from qlax.core.types import Transition

PRIORITY_EPS = 1e-6  # keeps every stored row sampleable
FANOUT = 64


@struct.dataclass
class PrioritizedState:
    replay: uniform.ReplayState
    levels: tuple  # levels[d]: (FANOUT**d,) float32 sums; levels[0] holds the total, levels[-1] the leaves
    max_priority: jax.Array  # float32 (): given to new rows

    @property
    def size(self) -> jax.Array:
        return self.replay.size

    @property
    def total(self) -> jax.Array:
        return self.levels[0][0]

    @property
    def priorities(self) -> jax.Array:
        """Leaf priorities of the buffer's rows, (capacity,)."""
        return self.levels[-1][:self.replay.capacity]


def init(example: Transition, capacity: int) -> PrioritizedState:
    depth = 1
    while FANOUT**depth < capacity:
        depth += 1
    levels = tuple(jnp.zeros(FANOUT**d, jnp.float32) for d in range(depth + 1))
    return PrioritizedState(replay=uniform.init(example, capacity), levels=levels, max_priority=jnp.float32(1.0))


def _set_leaves(levels: tuple, rows: jax.Array, priorities: jax.Array) -> tuple:
    """Write leaf priorities and recompute their ancestors' sums; rows < 0 are left alone."""
    valid = rows >= 0
    leaves = levels[-1]
    out = [leaves.at[jnp.where(valid, rows, leaves.shape[0])].set(priorities, mode="drop")]
    nodes = rows
    for level in reversed(levels[:-1]):
        nodes = nodes // FANOUT
        sums = out[0].reshape(-1, FANOUT)[jnp.maximum(nodes, 0)].sum(axis=1)
        out.insert(0, level.at[jnp.where(valid, nodes, level.shape[0])].set(sums, mode="drop"))
    return tuple(out)


def add(state: PrioritizedState, batch: Transition, mask: jax.Array | None = None) -> PrioritizedState:
    """`uniform.add`, and the written rows get the maximum priority."""
    n = jax.tree.leaves(batch)[0].shape[0]
    rows, _ = uniform.write_rows(state.replay, n, mask)
    levels = _set_leaves(state.levels, rows, jnp.full(n, state.max_priority))
    return state.replace(replay=uniform.add(state.replay, batch, mask), levels=levels)


def sample_indices(state: PrioritizedState, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """(rows (batch_size,), their sampling probabilities), drawn proportional to priority.

    Stratified: draw i falls in the i-th of batch_size equal slices of the total mass.
    """
    total = state.total
    targets = (jnp.arange(batch_size) + jax.random.uniform(key, (batch_size,))) * (total / batch_size)
    nodes = jnp.zeros(batch_size, jnp.int32)
    for level in state.levels[1:]:
        children = level.reshape(-1, FANOUT)[nodes]  # (batch, FANOUT)
        cumulative = jnp.cumsum(children, axis=1)
        choice = jnp.sum(cumulative <= targets[:, None], axis=1)
        last_nonzero = FANOUT - 1 - jnp.argmax(children[:, ::-1] > 0, axis=1)  # round-off guard
        choice = jnp.minimum(choice, last_nonzero)
        below = jnp.where(choice > 0, jnp.take_along_axis(cumulative, jnp.maximum(choice - 1, 0)[:, None], 1)[:, 0], 0.0)
        targets = targets - below
        nodes = nodes * FANOUT + choice
    rows = jnp.minimum(nodes, jnp.maximum(state.replay.size - 1, 0))
    return rows, state.levels[-1][rows] / total


def sample(state: PrioritizedState, key: jax.Array, batch_size: int, beta: jax.Array | float):
    """(batch, rows, importance weights normalized to a maximum of 1)."""
    rows, probabilities = sample_indices(state, key, batch_size)
    weights = (state.replay.size * probabilities) ** (-beta)
    return uniform.gather(state.replay, rows), rows, weights / jnp.max(weights)


def update_priorities(state: PrioritizedState, rows: jax.Array, signals: jax.Array,
                      alpha: float) -> PrioritizedState:
    """Priorities (|signal| + eps)^alpha for the sampled rows; the running maximum follows.

    The signal is the learner's per-sample priority: the TD error for scalar Q-learning,
    the per-sample loss for distributional losses."""
    priorities = (jnp.abs(signals) + PRIORITY_EPS) ** alpha
    return state.replace(levels=_set_leaves(state.levels, rows, priorities),
                         max_priority=jnp.maximum(state.max_priority, jnp.max(priorities)))
