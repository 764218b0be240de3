"""Population-based training against the best fixed setting of a grid, at the same env steps.

    python benchmarks/pbt.py [--envs Catch-bsuite,FourRooms-misc] [--steps 100000]

For each environment (neither has a qlax preset: no setting here was tuned on it), one
generic DQN (a 64x64 MLP, double Q, a hard target every 500 updates, greedy checks of 10
episodes after every chunk) trains 16 members twice, in one process:

- grid: a 4 x 4 grid over lr and eps_decay_steps, one seed each, every setting fixed;
- PBT:  the same 16 starting settings; every 4 chunks the worst quarter copy the best
  quarter's state and perturb lr and eps_end (`qlax.runs.pbt.PBT`).

Both spend 16 x --steps env steps. Reported: the best member's final greedy return (100
episodes, the run's own evaluation), the mean over members, and the wall time of each,
compile excluded (the two share one program; only the first compiles it).
Goal: PBT's best at least the grid's best, in at most the grid's wall time (+10% noise).
"""

from __future__ import annotations

import argparse

from _timing import emit

import numpy as np
import qlax
from qlax.runs.pbt import PBT
from qlax.settings.config import TrainConfig

GRID = {"lr": [3e-4, 1e-3, 3e-3, 1e-2], "eps_decay_steps": [500, 2000, 5000, 10000]}


def generic_dqn(env: str, steps: int) -> TrainConfig:
    return TrainConfig(env=env, num_envs=4, total_steps=steps, chunk_steps=500, q_function="mlp", hidden_sizes=[64, 64],
                       buffer_size=50_000, batch_size=64, learning_starts=1000, gamma=0.99, eps_schedule="linear",
                       eps_end=0.05, double_q=True, target_period=500, early_stop=False, keep_best=False,
                       stop_on="greedy", stop_eval_episodes=10, eval_episodes=100).owned()


def run(config: TrainConfig, pbt: PBT | None) -> tuple[np.ndarray, float]:
    """(each member's final greedy mean return, wall seconds less compiling)."""
    result = qlax.sweep(config, GRID, seeds=1, progress=False, pbt=pbt)
    return np.asarray(result.eval_mean_return), result.summary["wall_s"] - result.summary["compile_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="Catch-bsuite,FourRooms-misc")
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    rows = []
    for env in args.envs.split(","):
        config = generic_dqn(env, args.steps)
        grid, grid_s = run(config, None)
        pbt, pbt_s = run(config, PBT(perturb=("lr", "eps_end"), every=4))
        met = bool(pbt.max() >= grid.max() and pbt_s <= 1.1 * grid_s)
        rows.append({"env": env, "grid_best": float(grid.max()), "grid_mean": float(grid.mean()), "grid_s": grid_s,
                     "pbt_best": float(pbt.max()), "pbt_mean": float(pbt.mean()), "pbt_s": pbt_s, "goal_met": met})
        print(f"{env}: grid best {grid.max():.2f} (mean {grid.mean():.2f}) in {grid_s:.1f} s; "
              f"PBT best {pbt.max():.2f} (mean {pbt.mean():.2f}) in {pbt_s:.1f} s; goal {'met' if met else 'not met'}",
              flush=True)
    emit({"benchmark": "pbt", "steps": args.steps, "rows": rows})


if __name__ == "__main__":
    main()
