"""Replay buffers behind one interface: uniform (`uniform`) or prioritized (`prioritized`).

`BUFFERS` is the one list of their names. `sample` returns the batch, the rows it came
from and importance weights (None for uniform draws); `update` takes the learner's
per-sample priorities for those rows (a no-op for uniform draws).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qlax.components.replay import prioritized, uniform


class Buffer(NamedTuple):
    """init(example, capacity); add(state, batch, mask); sample(state, key, batch_size, beta) ->
    (batch, rows, weights); update(state, rows, priorities, alpha); keep_learned(pred, new, old):
    `new` where pred else `old`, for what learning changes (the priorities), so no step
    copies the stored transitions; can_sample(state, min_size): whether learning may start;
    storage(state): the array of stored transitions (rows, bytes per row), for memory plans."""

    init: Callable
    add: Callable
    sample: Callable
    update: Callable
    keep_learned: Callable
    learns_priorities: bool  # whether learning writes into the buffer at all
    can_sample: Callable
    storage: Callable


def _keep_priorities(pred: jax.Array, new: prioritized.PrioritizedState, old: prioritized.PrioritizedState):
    return old.replace(levels=jax.tree.map(lambda n, o: jnp.where(pred, n, o), new.levels, old.levels),
                       max_priority=jnp.where(pred, new.max_priority, old.max_priority))


UNIFORM = Buffer(
    init=uniform.init,
    add=uniform.add,
    sample=lambda state, key, batch_size, beta: (uniform.sample(state, key, batch_size), None, None),
    update=lambda state, rows, priorities, alpha: state,
    keep_learned=lambda pred, new, old: old,
    learns_priorities=False,
    can_sample=uniform.can_sample,
    storage=lambda state: state.storage,
)

PRIORITIZED = Buffer(
    init=prioritized.init,
    add=prioritized.add,
    sample=prioritized.sample,
    update=prioritized.update_priorities,
    keep_learned=_keep_priorities,
    learns_priorities=True,
    can_sample=lambda state, min_size=1: uniform.can_sample(state.replay, min_size),
    storage=lambda state: state.replay.storage,
)

BUFFERS = {"uniform": UNIFORM, "prioritized": PRIORITIZED}
BUFFER_SETTINGS = {"uniform": (), "prioritized": ("per_alpha", "per_beta")}  # what each reads
