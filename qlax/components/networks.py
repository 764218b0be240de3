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
- `legal(obs)` is the actions legal in each observation (`envs.base.legal_actions`), None
  for an environment whose actions are all legal; `masked(q, obs)` sets the others' Q-values
  to -inf, so an argmax or a max over them picks a legal action;
- `act_values(params, obs, noise=None)` is the masked Q-values acting and targets choose by;
- `apply(params, obs)` is the greedy (masked) Q-values: what evaluation, policies and render use.

The torsos (registered in `TORSOS`, the one list of their names): `linear_rbf`, `mlp`,
`conv` (a small convolution over grid or image observations such as MinAtar's, then the
MLP layers), and `nature` (the Nature DQN's three convolutions over stacked pixel frames,
divided by 255, then the MLP layers: Mnih et al. 2015).
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qlax.components import features, normalization
from qlax.envs.base import one_hot_entries

# Initial weights of the hidden layers and convolutions (`weight_init`): flax's default,
# LeCun normal (variance 1 / fan-in), or He normal (2 / fan-in, for relu layers), which
# purejaxql's PQN uses on Atari; with either the Q head starts LeCun normal and every
# bias at 0. `pytorch` starts every layer, the head included, as PyTorch's nn.Linear and
# nn.Conv2d do (what SB3's DQN trains from): weights and biases uniform in +-1/sqrt(fan-in)
# (its kaiming_uniform with a = sqrt(5): variance 1 / (3 fan-in)).
PYTORCH = "pytorch"
WEIGHT_INITS = {"lecun_normal": nn.initializers.lecun_normal(), "he_normal": nn.initializers.he_normal(),
                PYTORCH: nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")}


def uniform_fan_in(fan_in: int):
    """An initializer uniform in +-1/sqrt(fan_in): PyTorch's biases, noisy layers' means."""
    bound = 1.0 / np.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def bias_init(weight_init: str, fan_in: int):
    """A layer's initial biases: PyTorch's uniform +-1/sqrt(fan-in) with `pytorch`, else 0."""
    return uniform_fan_in(fan_in) if weight_init == PYTORCH else nn.initializers.zeros_init()


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
    legal: Callable = lambda obs: None

    def outputs(self, params, obs, noise=None):
        return self.head(params, self.features(params, obs), noise)

    def masked(self, q, obs):
        """q (batch, num_actions) with the actions illegal in `obs` at -inf (q itself without a mask)."""
        legal = self.legal(obs)
        return q if legal is None else jnp.where(legal, q, -jnp.inf)

    def act_values(self, params, obs, noise=None):
        """Masked Q-values (batch, num_actions) at obs: with `noise`, the noisy layers' sample."""
        return self.masked(self.q_values(self.outputs(params, obs, noise)), obs)

    def apply(self, params, obs):
        """Greedy Q-values (batch, num_actions): noise off, the mean of a distribution, illegal
        actions at -inf."""
        return self.act_values(params, obs)


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


def layer_noise(key: jax.Array, shapes: list[tuple[int, int]]) -> list[tuple[jax.Array, jax.Array]]:
    """Factorised noise (f(e_in), f(e_out)) for noisy layers of (fan_in, features) `shapes`,
    every entry an independent standard normal through f, all from one draw: the random
    numbers of a pass compile once, not three times per layer (cartpole-rainbow's training
    program compiled in 9.6-10.7 s instead of 12.4-12.8 s, 7.5-8.5 s instead of 12.6-13.1 s
    with the test suite's XLA flags; this 2-core CPU)."""
    sizes = [size for shape in shapes for size in shape]
    parts = jnp.split(_scale_noise(jax.random.normal(key, (sum(sizes),))), np.cumsum(sizes)[:-1])
    return list(zip(parts[0::2], parts[1::2]))


class NoisyDense(nn.Module):
    """A dense layer with factorised Gaussian noise on its weights (Fortunato et al. 2018).

    w = mu_w + sigma_w * (f(e_in) f(e_out)^T), f(x) = sign(x) sqrt(|x|); mu ~ U(+-1/sqrt(p)),
    sigma = sigma0 / sqrt(p) for p inputs. `noise` is (f(e_in), f(e_out)) (`layer_noise`);
    without it the layer uses mu alone.
    """

    features: int
    sigma0: float

    @nn.compact
    def __call__(self, x, noise: tuple[jax.Array, jax.Array] | None = None):
        fan_in = x.shape[-1]
        uniform = uniform_fan_in(fan_in)
        constant = lambda key, shape: jnp.full(shape, self.sigma0 * (1.0 / np.sqrt(fan_in)))  # noqa: E731
        mu_w = self.param("mu_w", uniform, (fan_in, self.features))
        mu_b = self.param("mu_b", uniform, (self.features,))
        sigma_w = self.param("sigma_w", constant, (fan_in, self.features))
        sigma_b = self.param("sigma_b", constant, (self.features,))
        if noise is None:
            return x @ mu_w + mu_b
        e_in, e_out = noise
        return x @ (mu_w + sigma_w * jnp.outer(e_in, e_out)) + mu_b + sigma_b * e_out


class Conv3x3(nn.Module):
    """A 3x3 convolution with same padding, as one matmul over the nine shifted views.

    The same numbers as `nn.Conv(features, (3, 3), (stride, stride), padding="SAME")` (and
    its parameter shapes): `stride` 2 keeps every other cell's neighbourhood, a quarter of
    the outputs. Written as a matmul because a population vmaps it with one kernel per
    member: XLA's CPU backend runs that as a grouped convolution several times slower than
    the batched matmul it becomes here.
    """

    features: int
    weight_init: str = "lecun_normal"
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        channels, stride = x.shape[-1], self.stride
        kernel = self.param("kernel", WEIGHT_INITS[self.weight_init], (3, 3, channels, self.features))
        bias = self.param("bias", bias_init(self.weight_init, 9 * channels), (self.features,))
        height, width = x.shape[-3], x.shape[-2]
        pads = jax.lax.padtype_to_pads((height, width), (3, 3), (stride, stride), "SAME")  # nn.Conv's own
        padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [*pads, (0, 0)])
        out_h, out_w = -(-height // stride), -(-width // stride)
        reach_h, reach_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
        views = [padded[..., i:i + reach_h:stride, j:j + reach_w:stride, :] for i in range(3) for j in range(3)]
        patches = jnp.concatenate(views, axis=-1)  # (..., out_h, out_w, 9 C), in the kernel's (i, j, c) order
        return patches @ kernel.reshape(9 * channels, self.features) + bias


class ValidConv(nn.Module):
    """A convolution without padding whose stride divides its kernel size, as one matmul.

    The same numbers as `nn.Conv(features, (size, size), (stride, stride), padding="VALID")`
    (and its parameter shapes). The input is cut into stride x stride blocks (space to
    depth), so a size x size kernel at that stride is a (size/stride)^2 kernel at stride 1
    over the blocks: its patches are that many shifted views side by side, and the
    convolution one matmul against the kernel's rows reordered to match. Under a
    population's vmap (one kernel per member) this is a batched matmul, several times
    faster on a CPU than the grouped convolution XLA makes of `nn.Conv`
    (benchmarks/nature_conv.py).
    """

    features: int
    size: int
    stride: int
    weight_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x):
        channels, size, stride = x.shape[-1], self.size, self.stride
        kernel = self.param("kernel", WEIGHT_INITS[self.weight_init], (size, size, channels, self.features))
        bias = self.param("bias", bias_init(self.weight_init, size * size * channels), (self.features,))
        blocks_per_kernel = size // stride
        out_h, out_w = (x.shape[-3] - size) // stride + 1, (x.shape[-2] - size) // stride + 1
        rows, cols = out_h + blocks_per_kernel - 1, out_w + blocks_per_kernel - 1  # blocks the output reads
        lead = x.shape[:-3]
        x = x[..., :rows * stride, :cols * stride, :].reshape(lead + (rows, stride, cols, stride, channels))
        x = jnp.swapaxes(x, -4, -3).reshape(lead + (rows, cols, stride * stride * channels))  # (dy, dx, c) per block
        views = [x[..., i:i + out_h, j:j + out_w, :] for i in range(blocks_per_kernel)
                 for j in range(blocks_per_kernel)]
        patches = jnp.concatenate(views, axis=-1)  # features in (block i, block j, dy, dx, c) order
        weights = kernel.reshape(blocks_per_kernel, stride, blocks_per_kernel, stride, channels, self.features)
        weights = weights.transpose(0, 2, 1, 3, 4, 5).reshape(-1, self.features)  # the same order
        return patches @ weights + bias


# The Nature DQN's convolutions (Mnih et al. 2015): (channels, kernel size, stride), no padding.
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


class QNetwork(nn.Module):
    """An optional convolution, dense layers with an activation (and optional layer norm),
    then a Q head with `outputs_per_action` numbers per action.

    The dueling head computes V(s) + A(s, a) - mean_a A(s, a) (per atom or quantile).
    `obs_shape` set: observations are reshaped to it (H, W, C) and convolved first; with
    `nature`, it is (frames, H, W), frames as channels, through `NATURE_CONVS` (each
    followed by layer norm when `layer_norm` is set, as PQN's network does).
    `noisy_sigma0` set: every dense layer is a `NoisyDense`. `weight_init` names the
    initial weights (`WEIGHT_INITS`) of the convolutions and the non-noisy hidden layers.

    `fractions` set (IQN, Dabney et al. 2018): the last hidden layer's output is multiplied
    by an embedding of each quantile fraction tau (ReLU of a dense layer over cos(pi i tau),
    i < `embedding`), and the head gives each action's quantile at each fraction. The
    fractions are `fractions` uniform samples from the "taus" RNG stream, or without it
    their midpoints (acting and evaluation: deterministic). It returns (quantiles
    (..., num_actions, fractions), taus (..., fractions)).
    """

    hidden_sizes: tuple[int, ...]
    num_actions: int
    activation: str = "relu"
    layer_norm: bool = False
    dueling: bool = False
    outputs_per_action: int = 1
    obs_shape: tuple[int, ...] | None = None
    conv_channels: tuple[int, ...] = ()
    conv_stride: int = 1
    noisy_sigma0: float | None = None
    nature: bool = False
    weight_init: str = "lecun_normal"
    fractions: int = 0
    embedding: int = 64

    @property
    def rng_streams(self) -> tuple[str, ...]:
        """The RNG streams a pass with a key draws: noisy layers' noise, IQN's fractions."""
        return (("noise",) if self.noisy_sigma0 is not None else ()) + (("taus",) if self.fractions else ())

    def noisy_shapes(self, width: int) -> list[tuple[int, int]]:
        """(fan_in, features) of the dense layers, in the order `__call__` makes them, from
        the `width` that enters the first hidden layer."""
        shapes = []
        for units in self.hidden_sizes:
            shapes.append((width, units))
            width = units
        if self.fractions:
            shapes.append((self.embedding, width))
        k = self.outputs_per_action
        return shapes + [(width, n) for n in ([k, self.num_actions * k] if self.dueling else [self.num_actions * k])]

    def dense(self, features: int, fan_in: int, noise: Iterator, hidden: bool = False):
        """A dense layer of `features` units over `fan_in` inputs (`hidden`: not the Q head);
        a noisy one takes the next of the pass's `noise` (none: its mean)."""
        if self.noisy_sigma0 is not None:
            layer = NoisyDense(features, self.noisy_sigma0)
            return lambda x: layer(x, next(noise, None))
        own = hidden or self.weight_init == PYTORCH  # PyTorch starts the head as it does the rest
        return nn.Dense(features, kernel_init=WEIGHT_INITS[self.weight_init if own else "lecun_normal"],
                        bias_init=bias_init(self.weight_init, fan_in))

    @nn.compact
    def __call__(self, x):
        activation = getattr(nn, self.activation)
        if self.obs_shape is not None:
            x = x.reshape(x.shape[:-1] + tuple(self.obs_shape))
            if self.nature:
                x = jnp.moveaxis(x, -3, -1)  # frames last, as channels
                for channels, size, stride in NATURE_CONVS:
                    x = ValidConv(channels, size, stride, self.weight_init)(x)
                    x = activation(nn.LayerNorm()(x) if self.layer_norm else x)
            for channels in self.conv_channels:
                x = activation(Conv3x3(channels, self.weight_init, self.conv_stride)(x))
            x = x.reshape(x.shape[:-3] + (-1,))
        noisy = self.noisy_sigma0 is not None and self.has_rng("noise")
        noise = iter(layer_noise(self.make_rng("noise"), self.noisy_shapes(x.shape[-1])) if noisy else ())
        for width in self.hidden_sizes:
            x = self.dense(width, x.shape[-1], noise, hidden=True)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = activation(x)
        taus = None
        if self.fractions:
            x, taus = self.embed_fractions(x, noise)
        k = self.outputs_per_action
        per_action = x.shape[:-1] + (self.num_actions, k)
        if self.dueling:
            value = self.dense(k, x.shape[-1], noise)(x).reshape(x.shape[:-1] + (1, k))
            advantage = self.dense(self.num_actions * k, x.shape[-1], noise)(x).reshape(per_action)
            outputs = value + advantage - jnp.mean(advantage, axis=-2, keepdims=True)
        else:
            outputs = self.dense(self.num_actions * k, x.shape[-1], noise)(x).reshape(per_action)
        outputs = outputs[..., 0] if k == 1 else outputs
        return outputs if taus is None else (jnp.swapaxes(outputs, -1, -2), taus)

    def embed_fractions(self, x, noise: Iterator):
        """(x (..., fractions, width) scaled by each fraction's embedding, the fractions (..., fractions))."""
        if self.has_rng("taus"):
            taus = jax.random.uniform(self.make_rng("taus"), x.shape[:-1] + (self.fractions,))
        else:
            midpoints = (2.0 * jnp.arange(self.fractions, dtype=jnp.float32) + 1.0) / (2.0 * self.fractions)
            taus = jnp.broadcast_to(midpoints, x.shape[:-1] + (self.fractions,))
        cosines = jnp.cos(jnp.pi * jnp.arange(self.embedding, dtype=jnp.float32) * taus[..., None])
        embedded = nn.relu(self.dense(x.shape[-1], self.embedding, noise, hidden=True)(cosines))
        return x[..., None, :] * embedded, taus


def network(network: QNetwork, obs_dim: int, obs_scale: dict,
            q_values: Callable = lambda outputs: outputs) -> QFunction:
    """A flax Q-network over the observation scaled by `obs_scale` (see `normalization`).

    params = {"net": the flax variables, "obs_scale": obs_scale}. Its fixed `features`
    are just that scaling; every network parameter is trained.
    """

    def init(key, hparams):
        return {"net": network.init(key, jnp.zeros((1, obs_dim))), "obs_scale": obs_scale}

    def scaled(params, obs):
        return normalization.apply(params["obs_scale"], obs)

    streams = network.rng_streams

    def head(params, phi, noise=None, **kwargs):
        """The outputs at phi; `noise`, a key, drives the network's RNG streams (one: the key
        itself; both: a key each)."""
        if noise is None or not streams:
            rngs = None
        else:
            rngs = {streams[0]: noise} if len(streams) == 1 else dict(zip(streams, jax.random.split(noise)))
        return network.apply(params["net"], phi, rngs=rngs, **kwargs)

    return QFunction(init=init, features=scaled, head=head, q_values=q_values)


def mlp(obs_dim: int, num_actions: int, hidden_sizes: list[int], activation: str, layer_norm: bool,
        dueling: bool, obs_low: np.ndarray, obs_high: np.ndarray) -> QFunction:
    """A scalar-output MLP Q-network (the DQN family's)."""
    return network(QNetwork(tuple(hidden_sizes), num_actions, activation, layer_norm, dueling),
                   obs_dim, normalization.fixed_scale(obs_low, obs_high))


TORSOS = ("linear_rbf", "mlp", "conv", "nature", "auto")
_NETWORK_SETTINGS = ("hidden_sizes", "activation", "layer_norm", "dueling", "weight_init")
# The settings each torso reads (`config.owners`).
TORSO_SETTINGS = {
    "linear_rbf": ("num_centers", "sigma", "init_scale"),
    "mlp": _NETWORK_SETTINGS,
    "conv": ("conv_channels", "conv_stride", *_NETWORK_SETTINGS),
    "nature": _NETWORK_SETTINGS,
    "auto": ("conv_channels", "conv_stride", *_NETWORK_SETTINGS),  # whichever network the observations pick
}


# The kinds of observation a generic preset tells apart (`observation_kind`), each with the
# network `q_function: auto` gives it; `by_observation` settings are keyed by them.
OBSERVATION_KINDS = {"vector": "mlp", "one_hot": "mlp", "grid": "conv", "image": "nature"}


def observation_kind(spec) -> str:
    """What `spec`'s observations are: image (stacked pixel frames, `is_frames`), grid (other
    (height, width, channels) arrays, MinAtar's and Navix's), one_hot (a Discrete observation,
    every entry one-hot) or vector (anything else, flattened)."""
    if is_frames(spec):
        return "image"
    if len(spec.obs_shape) == 3:
        return "grid"
    return "one_hot" if spec.one_hot is not None and bool(np.all(spec.one_hot)) else "vector"


def torso_of(config, spec) -> str:
    """The network `config.q_function` names; for `auto`, the one the observations call for
    (`OBSERVATION_KINDS`): the Nature convolutions over pixel frames, a 3x3 convolution over
    other grids, an MLP over vectors and one-hot states."""
    if config.q_function != "auto":
        return config.q_function
    return OBSERVATION_KINDS[observation_kind(spec)]


def observation_bounds(config, spec) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per observation dimension: the settings', else the observation space's;
    [-1, 1] (the identity scaling) everywhere for `obs_scaling: none`, and always for a
    Discrete observation's one-hot entries, so they stay 0/1."""
    from qlax.core.errors import ConfigError, short

    if config.obs_scaling == "none":
        return -np.ones(spec.obs_dim, np.float32), np.ones(spec.obs_dim, np.float32)
    for name in ("obs_low", "obs_high"):
        given = getattr(config, name)
        if given is not None and len(given) != spec.obs_dim:
            raise ConfigError(f"{name} = {short(given)}: env '{spec.id}' needs {spec.obs_dim} numbers")
    low = np.asarray(config.obs_low if config.obs_low is not None else spec.obs_low, np.float32)
    high = np.asarray(config.obs_high if config.obs_high is not None else spec.obs_high, np.float32)
    if spec.one_hot is None:
        return low, high
    return np.where(spec.one_hot, -1.0, low).astype(np.float32), np.where(spec.one_hot, 1.0, high).astype(np.float32)


def observation_scaler(config, spec) -> normalization.Tracker:
    """The running statistics an agent keeps to scale observations (`config.obs_scaling`):
    never over a Discrete observation's one-hot entries."""
    scaling = "bounds" if torso_of(config, spec) == "nature" else config.obs_scaling  # pixels: divided by 255
    return normalization.tracker(*observation_bounds(config, spec), scaling, fixed=one_hot_entries(spec))


def build(config, spec, outputs_per_action: int = 1, q_values: Callable = lambda outputs: outputs,
          fractions: int = 0) -> QFunction:
    """The Q-function `config.q_function` names, for the environment `spec`, with
    `outputs_per_action` outputs per action turned into Q-values by `q_values`, acting
    among the actions `spec`'s mask allows; `fractions`: IQN's quantile fractions per pass
    (`QNetwork.fractions`), embedded with `config.quantile_embedding` cosines."""
    from qlax.envs.base import legal_actions

    return _torso(config, spec, outputs_per_action, q_values, fractions)._replace(
        legal=functools.partial(legal_actions, spec))


def _torso(config, spec, outputs_per_action: int, q_values: Callable, fractions: int = 0) -> QFunction:
    """`build`'s Q-function before its action mask."""
    from qlax.core.errors import ConfigError

    low, high = observation_bounds(config, spec)
    torso = torso_of(config, spec)
    if torso == "linear_rbf":
        return linear_rbf(spec.obs_dim, spec.num_actions, config.num_centers, low, high)
    conv, nature = torso == "conv", torso == "nature"
    if conv and len(spec.obs_shape) != 3:
        raise ConfigError(f"q_function = 'conv': env '{spec.id}' has observations of shape {spec.obs_shape}; "
                          f"the convolution needs (height, width, channels): --set q_function=mlp trains on them")
    if nature:
        check_frames(spec)
    noisy = config.exploration == "noisy"
    net = QNetwork(tuple(config.hidden_sizes), spec.num_actions, config.activation, config.layer_norm,
                   config.dueling, outputs_per_action, obs_shape=tuple(spec.obs_shape) if conv or nature else None,
                   conv_channels=tuple(config.conv_channels) if conv else (),
                   conv_stride=config.conv_stride if conv else 1,
                   noisy_sigma0=config.noisy_sigma0 if noisy else None, nature=nature, weight_init=config.weight_init,
                   fractions=fractions, embedding=config.quantile_embedding if fractions else 64)
    obs_scale = normalization.pixel_scale(spec.obs_dim) if nature else normalization.fixed_scale(low, high)
    return network(net, spec.obs_dim, obs_scale, q_values)


def is_frames(spec) -> bool:
    """Whether `spec`'s observations are stacked pixel frames: (frames, height, width) of values
    0..255 (bytes, or EnvPool's floats), at least 36 x 36 pixels (where the Nature DQN's
    convolutions leave one)."""
    return len(spec.obs_shape) == 3 and min(spec.obs_shape[1:]) >= 36 and \
        bool(np.all(spec.obs_low == 0) and np.all(spec.obs_high == 255))


def check_frames(spec) -> None:
    """The Nature torso reads stacked pixel frames (`is_frames`)."""
    from qlax.core.errors import ConfigError

    if not is_frames(spec):
        raise ConfigError(f"q_function = 'nature': env '{spec.id}' has observations of shape {spec.obs_shape}; "
                          f"the Nature DQN's convolutions read pixel frames (frames, height, width) of values "
                          f"0..255, at least 36 x 36, such as atari:GAME's (4, 84, 84): --set q_function=mlp "
                          f"trains on them (or conv, on grids)")
