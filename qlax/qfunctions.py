"""Q-functions: `init(key, hparams) -> params` and `apply(params, obs) -> q_values`.

Every model here shares this interface, so the learner, the training loop and the
evaluation never know which one they run. `apply` is `head(params, features(params, obs))`:
`features` is the part that is never trained (fixed RBF features; the identity for a
network), so the learner computes it once for a batch's observations and next
observations together and reuses it for the online and the target head.
"""

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qlax import features, normalization


class QFunction(NamedTuple):
    """init(key, hparams) -> params; apply(params, obs (batch, obs_dim)) -> (batch, num_actions).

    `hparams` (a `config.HParams`) carries the member's dynamic settings that shape its
    parameters: the RBF width and the initial weight scale.

    features(params, obs) -> (batch, num_features), held fixed (no gradient);
    head(params, features) -> (batch, num_actions).
    """

    init: Callable
    features: Callable
    head: Callable

    def apply(self, params, obs):
        return self.head(params, self.features(params, obs))


def linear_rbf(obs_dim: int, num_actions: int, num_centers: int, obs_low: np.ndarray,
               obs_high: np.ndarray) -> QFunction:
    """A linear Q over random RBF features of the observation scaled to [-1, 1].

    params = {"centers": (num_centers, obs_dim), "sigma": (), "w": (num_centers, num_actions),
    "obs_scale": see `normalization`}, with sigma from hparams.sigma and
    w ~ N(0, hparams.init_scale^2) at init. Centers, sigma and the scaling live in the
    params so each member has its own, but they are held fixed: `features` reads them
    through `stop_gradient`, so their gradient is zero.
    """

    def init(key, hparams):
        k_centers, k_w = jax.random.split(key)
        return {
            "centers": features.init_centers(k_centers, num_centers, obs_dim),
            "sigma": jnp.asarray(hparams.sigma, jnp.float32),
            "w": hparams.init_scale * jax.random.normal(k_w, (num_centers, num_actions)),
            "obs_scale": normalization.fixed_scale(obs_low, obs_high),
        }

    def rbf_features(params, obs):
        x = normalization.apply(params["obs_scale"], obs)
        centers = jax.lax.stop_gradient(params["centers"])
        width = jax.lax.stop_gradient(params["sigma"])
        return features.rbf(x, centers, width)

    def head(params, phi):
        return phi @ params["w"]

    return QFunction(init=init, features=rbf_features, head=head)


class MLPNetwork(nn.Module):
    """Dense layers with an activation (and optional layer norm), then a Q head.

    The dueling head computes V(s) + A(s, a) - mean_a A(s, a).
    """

    hidden_sizes: tuple[int, ...]
    num_actions: int
    activation: str = "relu"
    layer_norm: bool = False
    dueling: bool = False

    @nn.compact
    def __call__(self, x):
        activation = getattr(nn, self.activation)
        for width in self.hidden_sizes:
            x = nn.Dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = activation(x)
        if not self.dueling:
            return nn.Dense(self.num_actions)(x)
        value = nn.Dense(1)(x)
        advantage = nn.Dense(self.num_actions)(x)
        return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


def mlp(obs_dim: int, num_actions: int, hidden_sizes: list[int], activation: str, layer_norm: bool,
        dueling: bool, obs_low: np.ndarray, obs_high: np.ndarray) -> QFunction:
    """A neural Q-network (flax.linen) over the observation scaled to about [-1, 1].

    params = {"net": the flax variables, "obs_scale": see `normalization`}. Its fixed
    `features` are just that scaling; every network parameter is trained.
    """
    network = MLPNetwork(tuple(hidden_sizes), num_actions, activation, layer_norm, dueling)

    def init(key, hparams):
        return {"net": network.init(key, jnp.zeros((1, obs_dim))),
                "obs_scale": normalization.fixed_scale(obs_low, obs_high)}

    def scaled(params, obs):
        return normalization.apply(params["obs_scale"], obs)

    def head(params, phi, **kwargs):
        return network.apply(params["net"], phi, **kwargs)

    return QFunction(init=init, features=scaled, head=head)
