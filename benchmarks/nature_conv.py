"""The Nature DQN torso under a population's vmap: qlax's matmul convolutions against nn.Conv.

    python benchmarks/nature_conv.py [--members 4] [--batch 32] [--envs 8] [--repeats 7]

Both networks are the `nature` torso (three convolutions 32x8x8/4, 64x4x4/2, 64x3x3/1,
a 512-unit layer, a 6-action head) on (4, 84, 84) uint8 frames divided by 255; one
convolves with qlax's `ValidConv` (space to depth, then one matmul), the other with
flax's `nn.Conv(padding="VALID")`. Each member has its own parameters and the member axis
is vmapped, as in a population. Timed, jitted, taking turns: acting (Q-values of
`--envs` observations per member) and an update's gradient (mean squared Q of `--batch`
observations per member). Reported: the median milliseconds of each and the ratio
nn.Conv / qlax (above 1: qlax's is faster). The two give the same numbers
(tests/envs/test_atari.py checks it).
"""

from __future__ import annotations

import argparse
import statistics

from _timing import emit, interleaved_timings
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qlax.components.networks import NATURE_CONVS, QNetwork

NUM_ACTIONS = 6


class FlaxConvNature(nn.Module):
    """The nature torso with flax's own convolutions."""

    @nn.compact
    def __call__(self, x):
        x = jnp.moveaxis(x.reshape(x.shape[:-1] + (4, 84, 84)), -3, -1)
        for channels, size, stride in NATURE_CONVS:
            x = nn.relu(nn.Conv(channels, (size, size), (stride, stride), padding="VALID")(x))
        x = nn.relu(nn.Dense(512)(x.reshape(x.shape[:-3] + (-1,))))
        return nn.Dense(NUM_ACTIONS)(x)


def timed_pair(network: nn.Module, members: int, act_obs, batch_obs) -> dict:
    """Jitted, member-vmapped acting and gradient functions of `network`."""
    params = jax.vmap(lambda key: network.init(key, batch_obs[0, :1] / 255.0))(
        jax.random.split(jax.random.PRNGKey(0), members))

    def q_values(p, obs):
        return network.apply(p, obs / 255.0)

    def loss(p, obs):
        return jnp.mean(q_values(p, obs) ** 2)

    act = jax.jit(jax.vmap(q_values))
    grad = jax.jit(jax.vmap(jax.grad(loss)))
    return {"act": lambda: act(params, act_obs), "grad": lambda: grad(params, batch_obs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4, help="population members (vmapped)")
    parser.add_argument("--batch", type=int, default=32, help="observations per gradient, per member")
    parser.add_argument("--envs", type=int, default=8, help="observations per action step, per member")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    frames = np.random.default_rng(0).integers(0, 256, (args.members, args.batch, 4 * 84 * 84), dtype=np.uint8)
    batch_obs = jnp.asarray(frames)
    act_obs = batch_obs[:, :args.envs]
    qlax_net = QNetwork((512,), NUM_ACTIONS, obs_shape=(4, 84, 84), nature=True)
    fns = {}
    for name, network in (("qlax", qlax_net), ("nn.Conv", FlaxConvNature())):
        for what, fn in timed_pair(network, args.members, act_obs, batch_obs).items():
            fns[f"{name} {what}"] = fn
    times = interleaved_timings(fns, args.repeats)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    for name, value in ms.items():
        print(f"{name:>14}: {value:8.1f} ms (median of {args.repeats})")
    ratios = {what: ms[f"nn.Conv {what}"] / ms[f"qlax {what}"] for what in ("act", "grad")}
    print(f"nn.Conv / qlax: acting {ratios['act']:.2f}x, gradient {ratios['grad']:.2f}x "
          f"({args.members} members, {args.envs} observations to act on, {args.batch} per gradient)")
    emit({"benchmark": "nature_conv", "members": args.members, "batch": args.batch, "envs": args.envs,
          "median_ms": ms, "ratio_nn_conv_over_qlax": ratios})


if __name__ == "__main__":
    main()
