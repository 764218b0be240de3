"""What a no-op callback costs the host loop: `qlax.train` of `cartpole-rbf` with and without
one, in one process (one compiled program), taking turns.

    python benchmarks/callbacks.py [--seeds 32] [--steps 160000] [--repeats 3]

Each run's env steps/s is summary.json's (training time: the host loop with metrics and
progress, compile excluded). Goal: with a callback at least 98% of without (under 2% cost).
"""

from __future__ import annotations

import argparse
import statistics

from _timing import emit
from population import cartpole_rbf_config

import qlax

GOAL = 0.98


def throughput(config, callbacks) -> float:
    return qlax.train(config, progress=False, callbacks=callbacks).summary["env_steps_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=160_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = cartpole_rbf_config(args.seeds, total_steps=args.steps, eval_episodes=1)
    throughput(config, None)  # compiles; not counted
    bare, called = [], []
    for _ in range(args.repeats):
        bare.append(throughput(config, None))
        called.append(throughput(config, [lambda report: None]))
    ratio = statistics.median(called) / statistics.median(bare)
    print(f"without a callback: {statistics.median(bare):,.0f} env steps/s (runs {[round(x) for x in bare]})")
    print(f"with a no-op one:   {statistics.median(called):,.0f} env steps/s (runs {[round(x) for x in called]})")
    print(f"ratio {ratio:.3f} (goal >= {GOAL})")
    emit({"benchmark": "callbacks", "seeds": args.seeds, "steps": args.steps, "without": statistics.median(bare),
          "with_noop": statistics.median(called), "ratio": ratio, "goal_met": ratio >= GOAL})


if __name__ == "__main__":
    main()
