"""Exploration: epsilon schedules over vector steps, and the strategies that act on Q-values
(epsilon-greedy, ez-greedy, noisy networks) behind one `Explorer` interface."""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

SCHEDULES = ("exponential", "linear", "constant")
MAX_REPEAT = 10_000  # ez-greedy's longest repeat, in steps


def epsilon_schedule(kind: str) -> Callable:
    """epsilon(t, start, end, decay, decay_steps) for the vector-step count t.

    exponential: max(end, start * decay**t), the seed notebook's curve
    (`optax.exponential_decay(start, 1, decay, end_value=end)`);
    linear: from start to end over `decay_steps`, then end (`optax.linear_schedule`);
    constant: start.
    The formulas are optax's, written out because optax checks its schedules' numbers in
    Python, and here they are traced (one value per member of a population).
    """
    if kind == "exponential":
        def epsilon(t, start, end, decay, decay_steps):
            return jnp.maximum(start * jnp.power(decay, jnp.asarray(t, jnp.float32)), end)
    elif kind == "linear":
        def epsilon(t, start, end, decay, decay_steps):
            done = jnp.clip(jnp.asarray(t, jnp.float32), 0.0, decay_steps) / decay_steps
            return (start - end) * (1.0 - done) + end
    elif kind == "constant":
        def epsilon(t, start, end, decay, decay_steps):
            return jnp.broadcast_to(jnp.asarray(start, jnp.float32), jnp.shape(t))
    else:
        raise ValueError(f"eps_schedule = '{kind}': must be one of {', '.join(SCHEDULES)}")
    return epsilon


def _coins(key: jax.Array, q_values: jax.Array, epsilon: jax.Array | float, legal: jax.Array | None = None):
    """(explore (batch,) bool, uniform random actions (batch,) int32, greedy actions (batch,) int32):
    one coin per row; the coin and the random action use separate keys. With `legal`
    (batch, num_actions) bool, random actions are uniform over each row's legal ones (the
    greedy ones are legal when q_values are masked: `QFunction.masked`)."""
    k_coin, k_action = jax.random.split(key)
    batch, num_actions = q_values.shape
    explore = jax.random.uniform(k_coin, (batch,)) < epsilon
    if legal is None:
        random_actions = jax.random.randint(k_action, (batch,), 0, num_actions, jnp.int32)
    else:
        random_actions = jax.random.categorical(k_action, jnp.where(legal, 0.0, -jnp.inf)).astype(jnp.int32)
    return explore, random_actions, jnp.argmax(q_values, axis=-1).astype(jnp.int32)


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array | float,
                   legal: jax.Array | None = None) -> jax.Array:
    """Greedy actions, each replaced by a uniform (legal) one with probability epsilon.

    q_values: (batch, num_actions) -> actions (batch,) int32.
    """
    explore, random_actions, greedy = _coins(key, q_values, epsilon, legal)
    return jnp.where(explore, random_actions, greedy)


@struct.dataclass
class Repeat:
    """ez-greedy's commitment per env: the random action it repeats and the steps still to go."""

    action: jax.Array  # int32 (batch,)
    left: jax.Array  # int32 (batch,): 0 when acting on coins again


def init_repeat(batch: int) -> Repeat:
    return Repeat(action=jnp.zeros(batch, jnp.int32), left=jnp.zeros(batch, jnp.int32))


def repeat_lengths(key: jax.Array, shape: tuple[int, ...], mu: jax.Array | float) -> jax.Array:
    """Repeat lengths n >= 1 from a discretized power law, P(n >= k) = k^(1 - mu): the tail
    of a zeta(mu) distribution, though not its head (P(n = 1) is 1/2 for mu = 2, not 0.61).
    n = floor(U^(-1 / (mu - 1))) for U uniform on [tiny, 1), capped at MAX_REPEAT."""
    u = jax.random.uniform(key, shape, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    n = jnp.floor(jnp.power(u, -1.0 / (mu - 1.0)))
    return jnp.clip(n, 1, MAX_REPEAT).astype(jnp.int32)


def ez_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array | float, repeat: Repeat,
              mu: jax.Array | float, legal: jax.Array | None = None) -> tuple[jax.Array, Repeat]:
    """Temporally extended epsilon-greedy (Dabney et al. 2021): a row still repeating keeps its
    action while it is legal (`legal` as in `_coins`); otherwise a coin with probability
    epsilon starts a uniform random action held for a `repeat_lengths` number of steps
    (this one included), else the greedy action.

    Returns (actions (batch,) int32, the repeat state after this step). A heavy-tailed
    commitment explores far more of tasks such as MountainCar than one-step dithering.
    """
    k_coins, k_length = jax.random.split(key)
    explore, random_actions, greedy = _coins(k_coins, q_values, epsilon, legal)
    continuing = repeat.left > 0
    if legal is not None:
        continuing = continuing & jnp.take_along_axis(legal, repeat.action[:, None], axis=-1)[:, 0]
    starting = ~continuing & explore
    actions = jnp.where(continuing, repeat.action, jnp.where(starting, random_actions, greedy))
    lengths = repeat_lengths(k_length, explore.shape, mu)
    left = jnp.where(continuing, repeat.left - 1, jnp.where(starting, lengths - 1, 0))
    return actions, Repeat(action=actions, left=left)


class Explorer(NamedTuple):
    """The exploration component: init(num_envs) -> state; act(key, q_values, epsilon, state,
    first, hp, legal) -> (actions, state), where `first` (num_envs,) marks envs starting a new
    episode, q_values are masked (`QFunction.masked`) and `legal` is the legal actions
    (`QFunction.legal`), None where all are.

    `noisy`: acting samples the network's own noise (noisy networks) and epsilon is unused.
    """

    init: Callable
    act: Callable
    noisy: bool = False


def _ez_act(key, q_values, epsilon, repeat, first, hp, legal):
    return ez_greedy(key, q_values, epsilon, repeat.replace(left=jnp.where(first, 0, repeat.left)), hp.ez_mu, legal)


# The settings each schedule and each explorer reads (`config.owners`); noisy networks explore
# without epsilon, so they read no schedule.
SCHEDULE_SETTINGS = {
    "exponential": ("eps_start", "eps_end", "eps_decay"),
    "linear": ("eps_start", "eps_end", "eps_decay_steps"),
    "constant": ("eps_start",),
}
EXPLORER_SETTINGS = {"epsilon_greedy": ("eps_schedule",), "ez_greedy": ("eps_schedule", "ez_mu"),
                     "noisy": ("noisy_sigma0",)}

EXPLORERS = {  # the one list of exploration strategies
    "epsilon_greedy": Explorer(init=lambda num_envs: (),
                               act=lambda key, q, eps, state, first, hp, legal: (epsilon_greedy(key, q, eps, legal),
                                                                                 ())),
    "ez_greedy": Explorer(init=init_repeat, act=_ez_act),
    "noisy": Explorer(init=lambda num_envs: (),
                      act=lambda key, q, eps, state, first, hp, legal: (jnp.argmax(q, axis=-1).astype(jnp.int32),
                                                                        ()),
                      noisy=True),
}
