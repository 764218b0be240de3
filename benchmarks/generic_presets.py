"""The generic presets against a tuned showcase with its environment switched, on
environments that no preset was tuned on.

    python benchmarks/generic_presets.py [--envs Catch-bsuite,FourRooms-misc,MetaMaze-misc,DeepSea-bsuite]
                                         [--presets dqn,cartpole-dqn] [--steps 100000] [--seeds 4]

What a user does first with a new environment: take a preset and change `env`. Each preset
trains `--seeds` seeds for `--steps` env steps per seed on each environment; a `cartpole-*`
preset loses its CartPole observation bounds (as `--set env=` drops them). Reported per
environment and preset: each seed's final greedy 100-episode mean (the run's own
evaluation), their mean, and the whole run's wall time (compile included). The SB3 + rl-zoo
transfer benchmark (issue #21) is a separate, larger one.
"""

from __future__ import annotations

import argparse
import time

from _timing import emit

import numpy as np
import qlax
from qlax.settings import presets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="Catch-bsuite,FourRooms-misc,MetaMaze-misc,DeepSea-bsuite")
    parser.add_argument("--presets", default="dqn,cartpole-dqn")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for env in args.envs.split(","):
        for name in args.presets.split(","):
            config = presets.load(name).replace(env=env, total_steps=args.steps, seeds=args.seeds)
            started = time.perf_counter()
            result = qlax.train(config, progress=False)
            returns = [round(float(r), 3) for r in result.eval_mean_return]
            rows.append({"env": env, "preset": name, "returns": returns, "mean": round(float(np.mean(returns)), 3),
                         "wall_s": round(time.perf_counter() - started, 1)})
            print(f"{env:18s} {name:14s} mean {np.mean(returns):8.3f}  seeds {returns}  {rows[-1]['wall_s']} s",
                  flush=True)
    emit({"benchmark": "generic_presets", "steps": args.steps, "seeds": args.seeds, "rows": rows})


if __name__ == "__main__":
    main()
