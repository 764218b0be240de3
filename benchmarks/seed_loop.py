"""The seed notebook's host loop against qlax on the same config, one seed, in one run.

    python benchmarks/seed_loop.py [--seed-steps 400]

Goals: qlax at least 100,000 env steps/s and at least 85x the seed loop (compile excluded).
"""

import argparse

from _common import emit, qlax_steps_per_s, seed_loop_steps_per_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-steps", type=int, default=400, help="timed vector steps of the seed loop")
    args = parser.parse_args()
    seed = seed_loop_steps_per_s(args.seed_steps)
    print(f"seed notebook loop: {seed:12,.0f} env steps/s (16 envs, host loop)")
    ours, compile_s = qlax_steps_per_s("seed", seeds=1)
    print(f"qlax, 1 seed:       {ours:12,.0f} env steps/s (compile {compile_s:.1f} s, excluded)")
    print(f"ratio:              {ours / seed:12,.1f}x   (goals: >= 100,000 steps/s and >= 85x)")
    emit({"benchmark": "seed_loop", "seed_loop_steps_per_s": round(seed, 1),
          "qlax_steps_per_s": round(ours, 1), "ratio": round(ours / seed, 2)})


if __name__ == "__main__":
    main()
