"""Epsilon schedules over vector steps, and epsilon-greedy actions."""

from typing import Callable

import jax
import jax.numpy as jnp

SCHEDULES = ("exponential", "linear", "constant")


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


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array | float) -> jax.Array:
    """Greedy actions, each replaced by a uniform one with probability epsilon.

    q_values: (batch, num_actions) -> actions (batch,) int32. One coin per row; the coin
    and the random action use separate keys.
    """
    k_coin, k_action = jax.random.split(key)
    batch, num_actions = q_values.shape
    explore = jax.random.uniform(k_coin, (batch,)) < epsilon
    random_actions = jax.random.randint(k_action, (batch,), 0, num_actions)
    return jnp.where(explore, random_actions, jnp.argmax(q_values, axis=-1)).astype(jnp.int32)
