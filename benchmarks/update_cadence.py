"""What a DQN update costs at different cadences: only the updates taken should cost.

    python benchmarks/update_cadence.py [--seeds 1,8] [--chunks 3]

cartpole-dqn's network and batch, early stop off, at three cadences, each timed by
`_timing.qlax_steps_per_s` (compile and one chunk excluded):
  every vector step    cartpole-dqn as it is: 4 envs, an update every 4 env steps;
  rl-zoo's CartPole    1 env, a round of 128 updates every 256 env steps (rl-baselines3-zoo's
                       tuned train_freq and gradient_steps), so 255 of 256 vector steps
                       take no update;
  warmup               before learning_starts, at cartpole-dqn's rate but a round of 2
                       updates every 2 vector steps (train_freq 8): nothing is computed.
                       (At a round every vector step, cartpole-dqn's own cadence, the
                       warmup computes its rounds and drops them: skipping them would
                       cost a collective across devices every vector step.)
Printed per cadence: env steps/s and gradient updates/s (env steps/s times the cadence's
updates per env step). Updates/s that stay level between the first two rows mean the
vector steps between rounds cost nothing beyond acting; warmup is acting and storing
alone. With several seeds the rounds are skipped only where no member is due one
(`algorithms.any_member`).
"""

from __future__ import annotations

import argparse

from _timing import emit, qlax_steps_per_s

import qlax
from qlax.settings.config import TrainConfig


def cadences() -> dict[str, TrainConfig]:
    base = qlax.presets.load("cartpole-dqn").replace(early_stop=False)
    return {
        "every vector step": base,
        "rl-zoo's CartPole": base.replace(num_envs=1, train_freq=256, gradient_steps=128, chunk_steps=2048),
        # learning_starts beyond the untimed and the timed chunks (set per run in main)
        "warmup": base.replace(train_freq=8, gradient_steps=2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,8", help="population sizes, comma-separated")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks")
    args = parser.parse_args()
    rows = []
    for seeds in (int(s) for s in args.seeds.split(",")):
        for name, config in cadences().items():
            if name == "warmup":
                steps = config.num_envs * config.chunk_steps * (args.chunks + 1)
                config = config.replace(learning_starts=steps, buffer_size=max(config.buffer_size, steps))
                per_env_step = 0.0
            else:
                per_env_step = config.gradient_steps / config.env_steps_per_round
            measured = qlax_steps_per_s(config.replace(seeds=seeds), args.chunks)
            updates = measured["steps_per_s"] * per_env_step
            rows.append({"cadence": name, "seeds": seeds, "updates_per_env_step": per_env_step,
                         "updates_per_s": round(updates, 1), **measured})
            print(f"{seeds:>2} seed(s)  {name:<18} {measured['steps_per_s']:>10,.0f} env steps/s "
                  f"{updates:>10,.0f} updates/s", flush=True)
    emit({"benchmark": "update_cadence", "rows": rows})


if __name__ == "__main__":
    main()
