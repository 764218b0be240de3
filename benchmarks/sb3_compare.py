"""qlax's cartpole-dqn (32 seeds) against Stable-Baselines3's DQN (one seed), in one run.

    python benchmarks/sb3_compare.py [--seeds 32] [--sb3-seeds 1] [--steps 50000]

qlax: `qlax.train` of the `cartpole-dqn` preset, `--seeds` seeds of `--steps` env steps
each at most, timed as the whole call (compile, training, the greedy evaluation of 100
episodes per seed).

SB3: `stable_baselines3.DQN` with rl-baselines3-zoo's tuned CartPole-v1 hyperparameters
(lr 2.3e-3, batch 64, buffer 100,000, learning_starts 1,000, gamma 0.99,
target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction 0.16,
final epsilon 0.04, a 256x256 MLP), on Gymnasium's CartPole-v1, `--sb3-seeds` seeds one
after another; `learn(--steps)` is timed, then each model is evaluated greedily for 100
episodes. Install with `pip install -e ".[sb3]"` (it brings PyTorch).

Both count "solved" the same way: a greedy 100-episode mean of at least 475.
Goal: qlax's 32 seeds in less wall time than SB3's one.
"""

from __future__ import annotations

import argparse
import time

from _sb3_transfer_worker import greedy_returns
from _timing import emit

import gymnasium
import numpy as np
import torch
from stable_baselines3 import DQN

import qlax

ZOO_CARTPOLE = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                    target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                    exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))
THRESHOLD = 475.0


def greedy_mean(model, episodes: int, seed: int) -> float:
    return float(np.mean(greedy_returns(model, gymnasium.make("CartPole-v1"), episodes, seed)))


def sb3_run(seed: int, steps: int) -> tuple[float, float]:
    """(seconds in learn, greedy 100-episode mean) of one SB3 seed."""
    model = DQN("MlpPolicy", gymnasium.make("CartPole-v1"), seed=seed, verbose=0, device="cpu", **ZOO_CARTPOLE)
    started = time.perf_counter()
    model.learn(total_timesteps=steps)
    return time.perf_counter() - started, greedy_mean(model, 100, seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32, help="qlax seeds, trained at once")
    parser.add_argument("--sb3-seeds", type=int, default=1, help="SB3 seeds, one after another")
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per seed")
    args = parser.parse_args()

    print(f"qlax cartpole-dqn: {args.seeds} seeds x {args.steps:,} env steps at most, whole call ...", flush=True)
    started = time.perf_counter()
    result = qlax.train(qlax.presets.load("cartpole-dqn").replace(total_steps=args.steps), seeds=args.seeds,
                        progress=False)
    ours = time.perf_counter() - started
    s = result.summary
    solved = sum(s["solved"])
    print(f"  {ours:7.1f} s (compile {s['compile_s']:.1f} s), solved {solved}/{args.seeds} "
          f"(greedy means {min(s['eval_mean_return']):.0f} to {max(s['eval_mean_return']):.0f}), "
          f"median env steps {int(np.median(s['env_steps'])):,}", flush=True)

    print(f"SB3 DQN, rl-zoo CartPole settings, torch {torch.__version__} with {torch.get_num_threads()} threads: "
          f"{args.sb3_seeds} seed(s) x {args.steps:,} env steps ...", flush=True)
    theirs = [sb3_run(seed, args.steps) for seed in range(args.sb3_seeds)]
    for seed, (seconds, mean) in enumerate(theirs):
        print(f"  seed {seed}: {seconds:7.1f} s in learn, greedy mean {mean:6.1f}"
              f"{'  solved' if mean >= THRESHOLD else ''}", flush=True)
    one_seed = float(np.mean([t for t, _ in theirs]))
    ratio = ours / one_seed
    print(f"qlax {args.seeds} seeds / SB3 one seed, wall time: {ratio:.2f}x   goal < 1: "
          f"{'met' if ratio < 1 else 'NOT met'}")
    emit({"benchmark": "sb3_compare", "steps": args.steps, "qlax_seeds": args.seeds, "qlax_wall_s": round(ours, 2),
          "qlax_compile_s": s["compile_s"], "qlax_solved": solved,
          "sb3_seeds": args.sb3_seeds, "sb3_learn_s": [round(t, 2) for t, _ in theirs],
          "sb3_greedy_mean": [round(m, 1) for _, m in theirs],
          "sb3_solved": sum(m >= THRESHOLD for _, m in theirs), "ratio": round(ratio, 3),
          "meets_goal": bool(ratio < 1)})


if __name__ == "__main__":
    main()
