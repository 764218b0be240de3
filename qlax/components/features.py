"""Random radial-basis-function features of an observation."""

import jax
import jax.numpy as jnp


def init_centers(key: jax.Array, num_centers: int, obs_dim: int) -> jax.Array:
    """Centers uniform in [-1, 1]^obs_dim; (num_centers, obs_dim)."""
    return jax.random.uniform(key, (num_centers, obs_dim), minval=-1.0, maxval=1.0)


def rbf(x: jax.Array, centers: jax.Array, sigma: jax.Array | float) -> jax.Array:
    """exp(-|x - c|^2 / (2 sigma^2)) for every row of x and every center.

    x: (batch, obs_dim), centers: (num_centers, obs_dim) -> (batch, num_centers).
    Distances use the matmul form |x|^2 - 2 x.c + |c|^2: one GEMM instead of a
    (batch, num_centers, obs_dim) broadcast, several times faster on CPU.
    """
    sq_dist = (
        jnp.sum(x * x, axis=-1, keepdims=True)
        - 2.0 * x @ centers.T
        + jnp.sum(centers * centers, axis=-1)
    )
    sq_dist = jnp.maximum(sq_dist, 0.0)  # rounding can make it slightly negative
    return jnp.exp(sq_dist * (-0.5 / sigma**2))  # one scalar divide, not one per element
