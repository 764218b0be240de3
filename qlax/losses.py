"""TD targets and losses as pure functions over batches."""

import jax
import jax.numpy as jnp
import optax


def q_learning_target(reward: jax.Array, terminated: jax.Array, next_q: jax.Array,
                      gamma: jax.Array | float) -> jax.Array:
    """r + gamma * (1 - terminated) * max_a next_q.

    reward, terminated: (batch,); next_q: (batch, num_actions) from the bootstrap
    parameters -> (batch,).
    """
    return reward + gamma * (1.0 - terminated.astype(reward.dtype)) * jnp.max(next_q, axis=-1)


def double_q_target(reward: jax.Array, terminated: jax.Array, next_q_online: jax.Array,
                    next_q_target: jax.Array, gamma: jax.Array | float) -> jax.Array:
    """r + gamma * (1 - terminated) * next_q_target[argmax_a next_q_online] (van Hasselt et al.).

    The online parameters choose the next action, the target parameters value it, which
    removes most of max's overestimation. next_q_*: (batch, num_actions) -> (batch,).
    """
    best = jnp.argmax(next_q_online, axis=-1)
    bootstrap = select_action_values(next_q_target, best)
    return reward + gamma * (1.0 - terminated.astype(reward.dtype)) * bootstrap


def select_action_values(q: jax.Array, action: jax.Array) -> jax.Array:
    """q[i, action[i]]; q: (batch, num_actions), action: (batch,) -> (batch,)."""
    return jnp.take_along_axis(q, action[:, None], axis=-1)[:, 0]


def td_penalty(td_error: jax.Array, kind: str, huber_delta: float = 1.0) -> jax.Array:
    """Elementwise penalty: 0.5 * err^2 ("squared") or the Huber loss ("huber")."""
    if kind == "squared":
        return 0.5 * td_error**2
    if kind == "huber":
        return optax.huber_loss(td_error, delta=huber_delta)
    raise ValueError(f"loss = '{kind}': must be one of squared, huber")
