"""A population of cartpole-rbf seeds in one compiled program against the seed loop, in one run.

    python benchmarks/population.py [--seeds 32] [--chunks 4] [--warmup 200] [--seed-steps 500]

qlax trains `--seeds` seeds of the `cartpole-rbf` settings (built here as a TrainConfig:
the seed's features and buffer, with a semi-gradient, a periodic target, Huber loss,
bootstrapping through time limits and eps_decay 0.9997) as one jitted, vmapped program, its seed axis sharded over the CPU
devices. Early stop is OFF, so every seed steps through every timed chunk (the timer
checks it). Reported: aggregate env steps/s over all seeds, compile and the first chunk
excluded, and its ratio to the seed notebook's loop measured in the same process (a
shorter run of `seed_loop.py`'s measurement).

Goal: at least 300x the seed loop.
"""

from __future__ import annotations

import argparse

from _timing import TrainConfig, emit
from seed_loop import measure_qlax, measure_seed_loop

GOAL_RATIO = 300


def cartpole_rbf_config(seeds: int, **changes) -> TrainConfig:
    """The `cartpole-rbf` preset's settings, `seeds` seeds, early stop off."""
    return TrainConfig(
        env="CartPole-v1", num_envs=16, seeds=seeds, early_stop=False, chunk_steps=500,
        q_function="linear_rbf", num_centers=500, sigma=0.5, init_scale=0.1,
        buffer_size=100_000, learning_starts=1_000, batch_size=32, lr=5e-3, gamma=0.99,
        eps_schedule="exponential", eps_start=1.0, eps_end=0.01, eps_decay=0.9997,
        gradient="semi", target="periodic", target_period=100, loss="huber", huber_delta=1.0,
        truncation="bootstrap",
    ).replace(**changes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32, help="seeds trained at once")
    parser.add_argument("--chunks", type=int, default=4, help="timed qlax chunks of 500 vector steps")
    parser.add_argument("--warmup", type=int, default=200, help="untimed vector steps of the seed loop")
    parser.add_argument("--seed-steps", type=int, default=500, help="timed vector steps of the seed loop")
    args = parser.parse_args()

    seed = measure_seed_loop(args.seed_steps, args.warmup)
    ours = measure_qlax(cartpole_rbf_config(args.seeds), args.chunks, f"cartpole-rbf, {args.seeds} seeds (aggregate)")
    print(f"  per seed: {ours['steps_per_s'] / args.seeds:,.0f} env steps/s", flush=True)

    ratio = ours["steps_per_s"] / seed["steps_per_s"]
    print(f"ratio qlax population / seed loop: {ratio:,.1f}x   goal >= {GOAL_RATIO}x: "
          f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}")
    emit({"benchmark": "population", "seeds": args.seeds, "early_stop": False,
          "seed_loop_steps_per_s": round(seed["steps_per_s"], 1),
          "qlax_steps_per_s": round(ours["steps_per_s"], 1),
          "qlax_steps_per_s_per_seed": round(ours["steps_per_s"] / args.seeds, 1),
          "ratio": round(ratio, 2), "goal_ratio": GOAL_RATIO, "meets_goal": bool(ratio >= GOAL_RATIO),
          "qlax_timed_env_steps": ours["timed_env_steps"], "qlax_compile_s": round(ours["compile_s"], 2)})


if __name__ == "__main__":
    main()
