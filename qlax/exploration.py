"""Epsilon schedules (optax schedules over vector steps) and epsilon-greedy actions."""

import jax
import jax.numpy as jnp
import optax


def epsilon_schedule(kind: str, start: float, end: float, decay: float, decay_steps: int) -> optax.Schedule:
    """Epsilon as a function of the vector-step count.

    exponential: max(end, start * decay**t), the seed notebook's curve;
    linear: from start to end over `decay_steps`, then end;
    constant: start.
    """
    if kind == "exponential":
        return optax.exponential_decay(init_value=start, transition_steps=1, decay_rate=decay,
                                       end_value=end)
    if kind == "linear":
        return optax.linear_schedule(init_value=start, end_value=end, transition_steps=decay_steps)
    if kind == "constant":
        return optax.constant_schedule(start)
    raise ValueError(f"eps_schedule = '{kind}': must be one of exponential, linear, constant")


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
