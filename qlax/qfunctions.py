"""Q-functions: a fixed feature pass, a trained head, and the greedy Q-values of its outputs.

Every model here shares one interface, so the algorithms, the training loop and the
evaluation never know which one they run:
- `features(params, obs)` is the part that is never trained (the observation scaling,
  and the RBF features of the linear model), so a learner computes it once for a batch's
  observations and next observations together and reuses it for online and target heads;
- `head(params, phi, noise=None)` gives the outputs per action: one number each (a Q-value),
  or `outputs_per_action` numbers (a distribution's logits or quantiles). `noise` is a
  PRNG key for noisy layers (Fortunato et al. 2018), None for their mean weights;
- `q_values(outputs)` turns outputs into Q-values (the distribution's mean);
- `apply(params, obs)` is the greedy Q-values: what evaluation, policies and render use.

The torsos (registered in `TORSOS`, the one list of their names): `linear_rbf`, `mlp`, and
`conv` (a small convolution over grid or image observations such as MinAtar's, then the
MLP layers).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qlax import features, normalization


class QFunction(NamedTuple):
    """init(key, hparams) -> params; features(params, obs) -> phi; head(params, phi, noise=None)
    -> outputs; q_values(outputs) -> (batch, num_actions).

    `hparams` (a `config.HParams`) carries the dynamic settings that shape parameters: the
    RBF width and the initial weight scale.
    """

    init: Callable
    features: Callable
    head: Callable
    q_values: Callable = lambda outputs: outputs

    def outputs(self, params, obs, noise=None):
        return self.head(params, self.features(params, obs), noise)

    def apply(self, params, obs):
        """Greedy Q-values (batch, num_actions): noise off, the mean of a distribution."""
        return self.q_values(self.outputs(params, obs))


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

    def head(params, phi, noise=None):
        return phi @ params["w"]

    return QFunction(init=init, features=rbf_features, head=head)


def _scale_noise(x: jax.Array) -> jax.Array:
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


class NoisyDense(nn.Module):
    """A dense layer with factorised Gaussian noise on its weights (Fortunato et al. 2018).

    w = mu_w + sigma_w * (f(e_in) f(e_out)^T), f(x) = sign(x) sqrt(|x|); mu ~ U(+-1/sqrt(p)),
    sigma = sigma0 / sqrt(p) for p inputs. Without a 'noise' RNG stream it uses mu alone.
    """

    features: int
    sigma0: float

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        bound = 1.0 / np.sqrt(fan_in)
        uniform = lambda key, shape: jax.random.uniform(key, shape, minval=-bound, maxval=bound)  # noqa: E731
        constant = lambda key, shape: jnp.full(shape, self.sigma0 * bound)  # noqa: E731
        mu_w = self.param("mu_w", uniform, (fan_in, self.features))
        mu_b = self.param("mu_b", uniform, (self.features,))
        sigma_w = self.param("sigma_w", constant, (fan_in, self.features))
        sigma_b = self.param("sigma_b", constant, (self.features,))
        if not self.has_rng("noise"):
            return x @ mu_w + mu_b
        k_in, k_out = jax.random.split(self.make_rng("noise"))
        e_in = _scale_noise(jax.random.normal(k_in, (fan_in,)))
        e_out = _scale_noise(jax.random.normal(k_out, (self.features,)))
        return x @ (mu_w + sigma_w * jnp.outer(e_in, e_out)) + mu_b + sigma_b * e_out


class Conv3x3(nn.Module):
    """A 3x3 convolution, stride 1, same padding, as one matmul over the nine shifted views.

    The same numbers as `nn.Conv(features, (3, 3), padding="SAME")` (and its parameter
    shapes), written as a matmul because a population vmaps it with one kernel per member:
    XLA's CPU backend runs that as a grouped convolution several times slower than the
    batched matmul it becomes here.
    """

    features: int

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        height, width = x.shape[-3], x.shape[-2]
        padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)])
        views = [padded[..., i:i + height, j:j + width, :] for i in range(3) for j in range(3)]
        patches = jnp.concatenate(views, axis=-1)  # (..., H, W, 9 C), in the kernel's (i, j, c) order
        return patches @ kernel.reshape(9 * channels, self.features) + bias


class QNetwork(nn.Module):
    """An optional convolution, dense layers with an activation (and optional layer norm),
    then a Q head with `outputs_per_action` numbers per action.

    The dueling head computes V(s) + A(s, a) - mean_a A(s, a) (per atom or quantile).
    `obs_shape` set: observations are reshaped to it (H, W, C) and convolved first.
    `noisy_sigma0` set: every dense layer is a `NoisyDense`.
    """

    hidden_sizes: tuple[int, ...]
    num_actions: int
    activation: str = "relu"
    layer_norm: bool = False
    dueling: bool = False
    outputs_per_action: int = 1
    obs_shape: tuple[int, ...] | None = None
    conv_channels: tuple[int, ...] = ()
    noisy_sigma0: float | None = None

    def dense(self, features: int, name: str | None = None):
        if self.noisy_sigma0 is not None:
            return NoisyDense(features, self.noisy_sigma0, name=name)
        return nn.Dense(features, name=name)

    @nn.compact
    def __call__(self, x):
        activation = getattr(nn, self.activation)
        if self.obs_shape is not None:
            x = x.reshape(x.shape[:-1] + tuple(self.obs_shape))
            for channels in self.conv_channels:
                x = activation(Conv3x3(channels)(x))
            x = x.reshape(x.shape[:-3] + (-1,))
        for width in self.hidden_sizes:
            x = self.dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = activation(x)
        k = self.outputs_per_action
        per_action = x.shape[:-1] + (self.num_actions, k)
        if self.dueling:
            value = self.dense(k)(x).reshape(x.shape[:-1] + (1, k))
            advantage = self.dense(self.num_actions * k)(x).reshape(per_action)
            outputs = value + advantage - jnp.mean(advantage, axis=-2, keepdims=True)
        else:
            outputs = self.dense(self.num_actions * k)(x).reshape(per_action)
        return outputs[..., 0] if k == 1 else outputs


def network(network: QNetwork, obs_dim: int, obs_low: np.ndarray, obs_high: np.ndarray,
            q_values: Callable = lambda outputs: outputs) -> QFunction:
    """A flax Q-network over the observation scaled to about [-1, 1].

    params = {"net": the flax variables, "obs_scale": see `normalization`}. Its fixed
    `features` are just that scaling; every network parameter is trained.
    """

    def init(key, hparams):
        return {"net": network.init(key, jnp.zeros((1, obs_dim))),
                "obs_scale": normalization.fixed_scale(obs_low, obs_high)}

    def scaled(params, obs):
        return normalization.apply(params["obs_scale"], obs)

    def head(params, phi, noise=None, **kwargs):
        rngs = {"noise": noise} if noise is not None else None
        return network.apply(params["net"], phi, rngs=rngs, **kwargs)

    return QFunction(init=init, features=scaled, head=head, q_values=q_values)


def mlp(obs_dim: int, num_actions: int, hidden_sizes: list[int], activation: str, layer_norm: bool,
        dueling: bool, obs_low: np.ndarray, obs_high: np.ndarray) -> QFunction:
    """A scalar-output MLP Q-network (the DQN family's)."""
    return network(QNetwork(tuple(hidden_sizes), num_actions, activation, layer_norm, dueling),
                   obs_dim, obs_low, obs_high)


TORSOS = ("linear_rbf", "mlp", "conv")


def observation_bounds(config, spec) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per observation dimension: the settings', else the observation space's;
    [-1, 1] everywhere (the identity scaling) for `obs_scaling: none`."""
    from qlax.config import ConfigError, short

    if config.obs_scaling == "none":
        return -np.ones(spec.obs_dim, np.float32), np.ones(spec.obs_dim, np.float32)
    for name in ("obs_low", "obs_high"):
        given = getattr(config, name)
        if given is not None and len(given) != spec.obs_dim:
            raise ConfigError(f"{name} = {short(given)}: env '{spec.id}' needs {spec.obs_dim} numbers")
    low = np.asarray(config.obs_low if config.obs_low is not None else spec.obs_low, np.float32)
    high = np.asarray(config.obs_high if config.obs_high is not None else spec.obs_high, np.float32)
    return low, high


def build(config, spec, outputs_per_action: int = 1, q_values: Callable = lambda outputs: outputs) -> QFunction:
    """The Q-function `config.q_function` names, for the environment `spec`, with
    `outputs_per_action` outputs per action turned into Q-values by `q_values`."""
    from qlax.config import ConfigError

    low, high = observation_bounds(config, spec)
    if config.q_function == "linear_rbf":
        return linear_rbf(spec.obs_dim, spec.num_actions, config.num_centers, low, high)
    conv = config.q_function == "conv"
    if conv and len(spec.obs_shape) != 3:
        raise ConfigError(f"q_function = 'conv': env '{spec.id}' has observations of shape {spec.obs_shape}; "
                          f"the convolution needs (height, width, channels): --set q_function=mlp trains on them")
    noisy = config.exploration == "noisy"
    net = QNetwork(tuple(config.hidden_sizes), spec.num_actions, config.activation, config.layer_norm,
                   config.dueling, outputs_per_action, obs_shape=tuple(spec.obs_shape) if conv else None,
                   conv_channels=tuple(config.conv_channels) if conv else (),
                   noisy_sigma0=config.noisy_sigma0 if noisy else None)
    return network(net, spec.obs_dim, low, high, q_values)
