"""n-step transitions assembled inside the compiled loop from a sliding window per env.

Each vector step pushes the newest one-step transitions; once the window holds n steps,
the transition that starts at its oldest step is emitted:
    reward   = sum_{j<k} gamma^j r_j,   discount = gamma^k,
    next_obs = next_obs of step k-1,    terminated = terminated of step k-1,
where k <= n stops at the first step that ended its episode (terminated or truncated).
After a time limit, next_obs is the final observation and terminated is false, so the
learner bootstraps from it with gamma^k.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from qlax.core.types import Transition


@struct.dataclass
class NStepWindow:
    steps: Transition  # every leaf (n, num_envs, ...): oldest first
    done: jax.Array  # (n, num_envs) bool: the step ended its episode
    known: jax.Array  # (n, num_envs) bool: the step's next_obs is the true next observation
    filled: jax.Array  # int32 (): steps pushed so far, capped at n


def init(example: Transition, n: int) -> NStepWindow:
    """An empty window for one vector step's transitions `example` (leading axis num_envs)."""
    steps = jax.tree.map(lambda x: jnp.zeros((n, *x.shape), x.dtype), example)
    flags = jnp.zeros((n, example.reward.shape[0]), bool)
    return NStepWindow(steps=steps, done=flags, known=flags, filled=jnp.int32(0))


def push(window: NStepWindow, transition: Transition, done: jax.Array, known: jax.Array) -> NStepWindow:
    """Drop the oldest step, append the newest."""
    n = window.done.shape[0]
    shift = lambda old, new: jnp.concatenate([old[1:], new[None]])  # noqa: E731
    return NStepWindow(steps=jax.tree.map(shift, window.steps, transition), done=shift(window.done, done),
                       known=shift(window.known, known), filled=jnp.minimum(window.filled + 1, n))


def emit(window: NStepWindow, gamma: float) -> tuple[Transition, jax.Array]:
    """(the n-step transition starting at the oldest step, per env; whether it can be stored).

    A window stops before the first step whose next observation is unknown (a time limit
    in an env without final observations, the reset step of an env that resets on the
    step after an end) and bootstraps from the step before; a window that starts at such
    a step cannot be stored. Storable also needs a full window.
    """
    n = window.done.shape[0]
    steps = window.steps
    # Step j counts if no earlier step in the window ended the episode and no step up to
    # j has an unknown next observation.
    ended_before = jnp.cumsum(window.done, axis=0) - window.done
    unknown_so_far = jnp.cumsum(~window.known, axis=0) > 0
    counts = (ended_before == 0) & ~unknown_so_far  # (n, num_envs)
    k = jnp.sum(counts, axis=0)  # steps taken, 0..n
    storable = (window.filled == n) & (k > 0)
    k = jnp.maximum(k, 1)
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)[:, None]
    reward = jnp.sum(jnp.where(counts, powers * steps.reward, 0.0), axis=0)
    last = k - 1
    transition = Transition(obs=steps.obs[0], action=steps.action[0], reward=reward,
                            next_obs=_at(steps.next_obs, last), terminated=_at(steps.terminated, last),
                            discount=(gamma ** k.astype(jnp.float32)))
    return transition, storable


def _at(x: jax.Array, index: jax.Array) -> jax.Array:
    """x[index[e], e, ...] for every env e; x: (n, num_envs, ...), index: (num_envs,)."""
    index = index.reshape((1, -1) + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=0)[0]


class Accumulator(NamedTuple):
    """The n-step component: init(one vector step's transitions) -> window;
    step(window, transition, done, known, gamma) -> (window, transition to store, storable).
    For n = 1 it is the identity: no window, every transition stored as it came."""

    n: int
    init: Callable
    step: Callable

    def stored_example(self, transition: Transition) -> Transition:
        """A transition shaped like those `step` emits (n-step ones carry their discount)."""
        return transition if self.n == 1 else transition.replace(discount=jnp.zeros_like(transition.reward))


def accumulator(n: int) -> Accumulator:
    if n == 1:
        return Accumulator(1, lambda transition: (), lambda window, transition, done, known, gamma:
                           ((), transition, known))

    def step(window, transition, done, known, gamma):
        window = push(window, transition, done, known)
        return (window, *emit(window, gamma))

    return Accumulator(n, lambda transition: init(transition, n), step)
