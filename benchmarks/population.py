"""32 seeds of cartpole-rbf in one compiled program against the seed loop, in one run.

    python benchmarks/population.py [--seeds 32]

Goal: aggregate env steps/s at least 300x the seed notebook's loop (compile excluded;
early stop off, so every seed steps throughout).
"""

import argparse

from _common import emit, qlax_steps_per_s, seed_loop_steps_per_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--seed-steps", type=int, default=300, help="timed vector steps of the seed loop")
    args = parser.parse_args()
    seed = seed_loop_steps_per_s(args.seed_steps)
    print(f"seed notebook loop:   {seed:12,.0f} env steps/s")
    ours, compile_s = qlax_steps_per_s("cartpole-rbf", seeds=args.seeds)
    print(f"qlax, {args.seeds:3d} seeds:      {ours:12,.0f} env steps/s aggregate (compile {compile_s:.1f} s, excluded)")
    print(f"ratio:                {ours / seed:12,.1f}x   (goal: >= 300x)")
    emit({"benchmark": "population", "seeds": args.seeds, "seed_loop_steps_per_s": round(seed, 1),
          "qlax_steps_per_s": round(ours, 1), "ratio": round(ours / seed, 2)})


if __name__ == "__main__":
    main()
