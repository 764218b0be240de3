"""rejax's PQN, a population of seeds in one vmapped program, then a greedy evaluation.

Run by `peers.py` with the Python of its separate rejax venv (rejax 0.1.3 needs gymnax
0.0.9, qlax needs gymnax >= 1.0, so the two never share an interpreter):

    benchmarks/.venv-rejax/bin/python benchmarks/_rejax_worker.py --case cartpole [--seeds 32] [--steps N]

Progress goes to stderr; the last line on stdout is one JSON object. This file imports
neither qlax nor `_timing` (neither is installed in that venv).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from rejax import PQN
from rejax.evaluate import evaluate_single

# gymnax 0.0.9's MinAtar and CartPole steps scatter ints into bools, which jax 0.5 warns
# about on every trace; the warning says nothing about this benchmark.
warnings.filterwarnings("ignore", category=FutureWarning, module="jax")

# rejax's published CartPole PQN config, `pqn:` in configs/gymnax/cartpole.yaml of
# keraJLi/rejax at tag v0.1.3, verbatim.
CARTPOLE_PQN = dict(
    env="CartPole-v1", num_envs=16, num_steps=128, num_minibatches=16, max_grad_norm=10,
    learning_rate=0.0003, num_epochs=5, total_timesteps=524288, eval_freq=16384, eps_start=1,
    eps_end=0.05, exploration_fraction=0.5, gamma=0.99, td_lambda=0.9, normalize_observations=False,
)
# rejax 0.1.3 publishes no PQN config for MinAtar (benchmark/breakout_1m.yaml has sac, ppo
# and dqn only; configs/ covers gymnax classic control, brax and navix): PQN.create's
# defaults (64 envs x 64 steps, 16 minibatches, 1 epoch, lr 3e-4, gamma 0.99, lambda 0.9,
# epsilon 1 -> 0.05 over the first 10% of the budget, no gradient clipping, no observation
# or reward normalization, a 64x64 LayerNorm-ReLU MLP on the flattened grid, eval_freq
# 4096); the budget comes from the command line.
BREAKOUT_PQN = dict(env="Breakout-MinAtar")
CASES = {"cartpole": CARTPOLE_PQN, "breakout": BREAKOUT_PQN}
SOURCES = {"cartpole": "rejax v0.1.3 configs/gymnax/cartpole.yaml (pqn)",
           "breakout": "rejax v0.1.3 PQN.create defaults (no published MinAtar PQN config)"}


def log(message: str) -> None:
    print(f"  [rejax] {message}", file=sys.stderr, flush=True)


def env_steps_run(algo: PQN) -> int:
    """Env steps per seed that `algo.train` runs: its loop rounds the budget up to whole
    iterations (num_envs x num_steps) per evaluation period, and to whole periods."""
    iteration = algo.num_envs * algo.num_steps
    periods = math.ceil(algo.total_timesteps / algo.eval_freq)
    return periods * math.ceil(algo.eval_freq / iteration) * iteration


def greedy_returns(algo: PQN, q_params, seeds: int, episodes: int) -> np.ndarray:
    """(seeds, episodes) undiscounted returns of each seed's final Q-network acting greedily.

    rejax's own `make_act` acts with epsilon 0.005; this is the same call to the agent's
    `act` with epsilon 0, run with rejax's `evaluate_single` episode loop (which stops at
    the env's done or `max_steps_in_episode`), vmapped over episodes and over seeds.
    """
    def one_seed(params, rng):
        def act(obs, key):
            return jnp.squeeze(algo.agent.apply(params, obs[None], key, epsilon=0.0, method="act"))

        keys = jax.random.split(rng, episodes)
        _, returns = jax.vmap(evaluate_single, in_axes=(None, None, None, 0, None))(
            act, algo.env, algo.env_params, keys, algo.env_params.max_steps_in_episode)
        return returns

    keys = jax.random.split(jax.random.PRNGKey(10_007), seeds)
    return np.asarray(jax.jit(jax.vmap(one_seed))(q_params, keys))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: the config's)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--devices", type=int, default=1,
                        help="CPU devices; above 1 the seeds' keys are sharded over them (default: JAX's one)")
    parser.add_argument("--periodic-eval", action="store_true",
                        help="keep rejax's evaluation of 128 episodes every eval_freq steps inside train "
                             "(default: a no-op callback, so train is training only)")
    args = parser.parse_args()
    if args.devices > 1:
        jax.config.update("jax_num_cpu_devices", args.devices)  # before anything runs on JAX

    config = dict(CASES[args.case])
    if args.steps is not None:
        config["total_timesteps"] = args.steps
    if "total_timesteps" not in config:
        parser.error(f"--steps is needed for {args.case}: rejax publishes no PQN budget for it")
    algo = PQN.create(**config)
    if not args.periodic_eval:
        # train() still loops per eval_freq, but each period ends in nothing.
        algo = algo.replace(eval_callback=lambda algo, ts, rng: (), skip_initial_evaluation=True)
    steps = env_steps_run(algo)
    if steps != algo.total_timesteps:
        log(f"budget {algo.total_timesteps:,} runs as {steps:,} env steps per seed (whole iterations)")

    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)  # as in rejax's README
    if args.devices > 1:  # same program; XLA partitions the vmapped seed axis over the devices
        if args.seeds % args.devices:
            parser.error(f"--seeds {args.seeds} is not a multiple of --devices {args.devices}")
        mesh = Mesh(np.array(jax.devices()), ("seeds",))
        keys = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("seeds")))
    train = jax.jit(jax.vmap(algo.train))
    started = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - started
    log(f"{args.case}: compiled in {compile_s:.1f} s; training {args.seeds} seeds x {steps:,} env steps ...")
    started = time.perf_counter()
    train_state, _ = compiled(keys)
    jax.block_until_ready(train_state)
    train_s = time.perf_counter() - started
    log(f"{args.case}: trained in {train_s:.1f} s; greedy evaluation, {args.eval_episodes} episodes per seed ...")

    started = time.perf_counter()
    returns = greedy_returns(algo, train_state.q_ts.params, args.seeds, args.eval_episodes)
    eval_s = time.perf_counter() - started  # compile included

    public = {k: v for k, v in config.items() if k != "env"}
    print(json.dumps({
        "library": "rejax", "case": args.case, "env": config["env"], "seeds": args.seeds,
        "env_steps_per_seed": steps, "compile_s": round(compile_s, 3), "train_s": round(train_s, 3),
        "eval_s": round(eval_s, 3), "wall_s": round(compile_s + train_s + eval_s, 3),
        "env_steps_per_s": round(steps * args.seeds / train_s, 1),
        "eval_mean_return": [round(float(m), 3) for m in returns.mean(axis=1)],
        "eval_episodes": args.eval_episodes, "periodic_eval": args.periodic_eval, "config": public,
        "config_source": SOURCES[args.case],
        "versions": {name: version(name) for name in ("rejax", "gymnax", "jax", "flax", "optax")},
        "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
    }), flush=True)


if __name__ == "__main__":
    main()
