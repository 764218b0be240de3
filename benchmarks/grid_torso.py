"""What one update of the generic `dqn`'s network costs on a MinAtar grid: the 3x3
convolution that `q_function: auto` picks for grids, at stride 1 and at stride 2 (`dqn`'s
`conv_stride`), against the MLP over the grid flattened.

    python benchmarks/grid_torso.py [--members 5] [--batch 64] [--grid 10,10,7] [--repeats 7]

All are `dqn`'s network (`hidden_sizes: [64, 64]`, 3 actions; the convolution with
`conv_channels: [16]`) over sparse 0/1 cells, each member with its own parameters and the
member axis vmapped, as in a population. An update is what the DQN family's loss asks of
the network: Q at obs (differentiated), online and target Q at next_obs (double Q), all
three over `--batch` observations per member. Timed jitted, taking turns, median
milliseconds; also the multiply-adds per observation of one pass. docs/results.md (the
transfer suite) uses it to say where Freeway's wall time goes.
"""

from __future__ import annotations

import argparse
import statistics

from _timing import emit, interleaved_timings
import jax
import jax.numpy as jnp
import numpy as np

from qlax.components.networks import QNetwork

HIDDEN, CHANNELS, NUM_ACTIONS = (64, 64), 16, 3


def multiply_adds(grid: tuple[int, int, int], stride: int | None) -> int:
    """Multiply-adds of one forward pass for one observation (biases left out); stride
    None: the MLP."""
    height, width, channels = grid
    if stride is None:
        conv_part, width_in = 0, height * width * channels
    else:
        cells = -(-height // stride) * -(-width // stride)
        conv_part, width_in = cells * 9 * channels * CHANNELS, cells * CHANNELS
    dense = 0
    for units in (*HIDDEN, NUM_ACTIONS):
        dense += width_in * units
        width_in = units
    return conv_part + dense


def update_fn(network: QNetwork, members: int, obs: jax.Array, next_obs: jax.Array):
    """A jitted, member-vmapped gradient of a double-Q-shaped squared TD loss. The target
    parameters are other numbers than the online ones, as in training, so XLA cannot merge
    the two passes at next_obs into one."""
    def init(seed):
        return jax.vmap(lambda key: network.init(key, obs[0, :1]))(jax.random.split(jax.random.PRNGKey(seed), members))

    params, target_params = init(0), init(1)

    def loss(p, target_p, o, o_next):
        q = network.apply(p, o)
        selector = network.apply(jax.lax.stop_gradient(p), o_next)
        target = network.apply(target_p, o_next)
        best = jnp.argmax(selector, axis=-1)
        y = jnp.take_along_axis(target, best[:, None], axis=-1)[:, 0]
        return jnp.mean((q[:, 0] - jax.lax.stop_gradient(y)) ** 2)

    grad = jax.jit(jax.vmap(jax.grad(loss)))
    return lambda: grad(params, target_params, obs, next_obs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5, help="population members (vmapped)")
    parser.add_argument("--batch", type=int, default=64, help="observations per update, per member")
    parser.add_argument("--grid", default="10,10,7", help="height,width,channels (Freeway-MinAtar's 10,10,7)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    grid = tuple(int(n) for n in args.grid.split(","))
    cells = np.random.default_rng(0).random((2, args.members, args.batch, int(np.prod(grid)))) < 0.1
    obs, next_obs = jnp.asarray(cells, jnp.float32)
    strides = {"conv": 1, "conv/2": 2, "mlp": None}
    networks = {name: QNetwork(HIDDEN, NUM_ACTIONS) if stride is None else
                QNetwork(HIDDEN, NUM_ACTIONS, obs_shape=grid, conv_channels=(CHANNELS,), conv_stride=stride)
                for name, stride in strides.items()}
    fns = {name: update_fn(network, args.members, obs, next_obs) for name, network in networks.items()}
    ms = {name: 1e3 * statistics.median(t) for name, t in interleaved_timings(fns, args.repeats).items()}
    macs = {name: multiply_adds(grid, stride) for name, stride in strides.items()}
    for name in networks:
        print(f"{name:>6}: {ms[name]:7.2f} ms per update (median of {args.repeats}), "
              f"{macs[name]:,} multiply-adds per observation and pass")
    for name in ("conv", "conv/2"):
        print(f"{name} / mlp: {ms[name] / ms['mlp']:.1f}x the time, {macs[name] / macs['mlp']:.1f}x the multiply-adds "
              f"({args.members} members, {args.batch} observations per update)")
    emit({"benchmark": "grid_torso", "members": args.members, "batch": args.batch, "grid": grid,
          "median_ms": ms, "multiply_adds": macs})


if __name__ == "__main__":
    main()
