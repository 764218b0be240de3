"""`q_function: auto` picks the network the observations call for, and the generic presets
build on each kind of observation."""

import dataclasses

import jax
import numpy as np
import pytest

from qlax import envs
from qlax.components import networks
from qlax.settings import presets
from qlax.settings.config import TrainConfig
from user_env import Corridor

AUTO = TrainConfig(q_function="auto")


def frames_spec():
    """A spec of Atari-like stacked pixel frames (4, 84, 84) of 0..255."""
    spec = envs.env_spec("CartPole-v1")
    size = 4 * 84 * 84
    return dataclasses.replace(spec, id="frames", obs_shape=(4, 84, 84), obs_dim=size, obs_dtype="uint8",
                               obs_low=np.zeros(size, np.float32), obs_high=np.full(size, 255, np.float32))


@pytest.mark.parametrize("spec, kind, torso", [
    (lambda: envs.env_spec("CartPole-v1"), "vector", "mlp"),
    (lambda: envs.env_spec(envs.register(Corridor())), "one_hot", "mlp"),  # a Discrete state, one-hot
    (lambda: envs.env_spec("Breakout-MinAtar"), "grid", "conv"),  # a 10x10x4 grid
    (frames_spec, "image", "nature"),
], ids=["vector", "one-hot", "grid", "pixel frames"])
def test_auto_picks_the_network_the_observations_call_for(spec, kind, torso):
    spec = spec()
    assert networks.observation_kind(spec) == kind
    assert networks.torso_of(AUTO, spec) == torso
    params = jax.eval_shape(networks.build(AUTO, spec).init, jax.random.PRNGKey(0), AUTO.hparams())
    kernels = [leaf.shape for leaf in jax.tree.leaves(params["net"])]
    assert any(len(k) == 4 for k in kernels) == (torso != "mlp")  # a convolution's kernel where one is chosen
    if torso == "nature":  # pixels are divided by 255 whatever obs_scaling says, never standardized
        scaler = networks.observation_scaler(AUTO.replace(obs_scaling="statistics"), spec)
        assert not scaler.tracks


@pytest.mark.parametrize("name", ["dqn", "pqn", "rainbow"])
@pytest.mark.parametrize("env", ["CartPole-v1", "Breakout-MinAtar", "user_env:corridor"])
def test_the_generic_presets_build_on_every_kind_of_observation(name, env):
    from qlax.program.trainer import make_train

    config = presets.load(name).replace(env=env).validated()
    trainer = make_train(config)  # the settings by observation resolved for the env's kind
    params = jax.eval_shape(trainer.init, jax.random.PRNGKey(0), trainer.config.hparams())
    assert params is not None and trainer.env.spec.id and trainer.config.by_observation is None
    grid_batch = (config.by_observation or {}).get("grid", {}).get("batch_size", config.batch_size)
    assert trainer.config.batch_size == (grid_batch if env == "Breakout-MinAtar" else config.batch_size)


def test_pytorch_init_starts_every_layer_as_torch_does():
    """`weight_init: pytorch` draws every weight and bias, the Q head's and the convolution's
    included, uniform in +-1/sqrt(fan-in), as torch.nn.Linear and nn.Conv2d do: within the
    bound, spread as a uniform there is (standard deviation bound / sqrt(3)), biases not 0."""
    config = TrainConfig(q_function="conv", conv_channels=[16], hidden_sizes=[64, 64], weight_init="pytorch",
                         dueling=True)
    spec = envs.env_spec("Breakout-MinAtar")  # 10 x 10 x 4, 3 actions
    layers = jax.jit(networks.build(config, spec).init)(jax.random.PRNGKey(0), config.hparams())["net"]["params"]
    fan_ins = {"Conv3x3_0": 9 * 4, "Dense_0": 10 * 10 * 16, "Dense_1": 64, "Dense_2": 64, "Dense_3": 64}
    assert sorted(layers) == sorted(fan_ins)  # the torso, then the value and advantage heads
    for name, fan_in in fan_ins.items():
        bound = 1.0 / np.sqrt(fan_in)
        for part in ("kernel", "bias"):
            values = np.asarray(layers[name][part]).ravel()
            assert np.all(np.abs(values) <= bound) and np.all(values != 0), (name, part)
        kernel = np.asarray(layers[name]["kernel"]).ravel()
        assert abs(kernel.std() - bound / np.sqrt(3)) < 5 * bound / np.sqrt(3) / np.sqrt(2 * kernel.size), name
    lecun = jax.jit(networks.build(config.replace(weight_init="lecun_normal"), spec).init)(
        jax.random.PRNGKey(0), config.hparams())["net"]["params"]
    assert all(not np.any(lecun[name]["bias"]) for name in fan_ins)  # flax's biases start at 0
