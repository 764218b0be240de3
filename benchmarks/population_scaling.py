"""Aggregate env steps/s of cartpole-rbf populations of 1 to 512 members, and what a sweep costs.

    python benchmarks/population_scaling.py [--sizes 1,8,32,128,512] [--chunks 3] [--plot PNG]

Part 1: for each population size, the `cartpole-rbf` settings with that many members in
one jitted, vmapped program sharded over the devices, early stop off (every member steps
through every timed chunk): one untimed chunk, then `--chunks` timed chunks of 500 vector
steps; aggregate env steps/s over all members, compile excluded. The curve goes to
`--plot` (default benchmarks/population_scaling.png).

Part 2, the sweep goal: `qlax.sweep` of cartpole-rbf with 4 learning rates x 8 seeds (32
members) against 1 learning rate x 8 seeds (8 members), each the whole call (compile,
training with early stop, greedy evaluation), 160,000 env steps per member at most.
Goal: the 32-member sweep at most 1.5x the wall time of the 8-member one.
"""

from __future__ import annotations

import argparse
import time

from _timing import emit, machine, qlax_steps_per_s

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import qlax  # noqa: E402
from population import cartpole_rbf_config  # noqa: E402

GOAL_RATIO = 1.5
SWEEP_LRS = [2.5e-3, 5e-3, 7.5e-3, 1e-2]


def sweep_wall_s(learning_rates: list[float], seeds: int) -> float:
    config = qlax.presets.load("cartpole-rbf")
    started = time.perf_counter()
    qlax.sweep(config, {"lr": learning_rates}, seeds=seeds, progress=False)
    return time.perf_counter() - started


def plot(sizes: list[int], rates: list[float], out: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    left.plot(sizes, rates, "o-")
    left.set(xscale="log", yscale="log", xlabel="members", ylabel="aggregate env steps/s",
             title="cartpole-rbf population throughput")
    right.plot(sizes, [r / n for r, n in zip(rates, sizes)], "o-")
    right.set(xscale="log", yscale="log", xlabel="members", ylabel="env steps/s per member",
              title="per member")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(machine(), fontsize="small")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8,32,128,512", help="population sizes, comma-separated")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks of 500 vector steps per size")
    parser.add_argument("--plot", default="benchmarks/population_scaling.png")
    parser.add_argument("--no-sweep", action="store_true", help="skip part 2")
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    rates = []
    print(f"cartpole-rbf, early stop off, 1 untimed + {args.chunks} timed chunks of 500 vector steps of 16 envs "
          f"({machine()})", flush=True)
    for size in sizes:
        measured = qlax_steps_per_s(cartpole_rbf_config(size), args.chunks)
        rates.append(measured["steps_per_s"])
        print(f"  {size:4d} members: {measured['steps_per_s']:12,.0f} env steps/s aggregate, "
              f"{measured['steps_per_s'] / size:10,.0f} per member  (compile {measured['compile_s']:.1f} s)",
              flush=True)
    plot(sizes, rates, args.plot)
    print(f"plot: {args.plot}")
    result = {"benchmark": "population_scaling", "sizes": sizes, "steps_per_s": [round(r, 1) for r in rates]}

    if not args.no_sweep:
        eight = sweep_wall_s(SWEEP_LRS[1:2], 8)
        thirty_two = sweep_wall_s(SWEEP_LRS, 8)
        ratio = thirty_two / eight
        print(f"sweep, whole call, 160,000 env steps per member at most, early stop on:\n"
              f"  1 lr x 8 seeds:  {eight:6.1f} s\n  4 lrs x 8 seeds: {thirty_two:6.1f} s\n"
              f"  ratio {ratio:.2f}x   goal <= {GOAL_RATIO}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'}")
        result.update(sweep_8_members_s=round(eight, 2), sweep_32_members_s=round(thirty_two, 2),
                      sweep_ratio=round(ratio, 3), goal_ratio=GOAL_RATIO, meets_goal=bool(ratio <= GOAL_RATIO))
    emit(result)


if __name__ == "__main__":
    main()
