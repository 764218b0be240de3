"""Env steps/s of qlax on EnvPool (`envpool:ID`, stepped inside the compiled loop) against
gymnax and Gymnasium, on CartPole and on Pong.

    python benchmarks/envpool_throughput.py [--seeds 4] [--num-envs 8] [--chunks 3] [--pong-envs 8]

1. CartPole, training: the `cartpole-dqn` settings (early stop off) on gymnax's
   CartPole-v1 and on envpool:CartPole-v1, the compiled chunk timed as in `population.py`
   (`_timing.qlax_steps_per_s`); gymnax spreads the seeds over every CPU device, EnvPool
   trains on one (its step is one call for the whole population).
2. CartPole and Pong, environment only: a jitted, vmapped `lax.scan` of the VecEnv's steps
   with uniformly random actions, no learning: what the environment alone costs qlax.
   EnvPool's own Python API in a loop shows what the compiled loop adds to its step.
3. Pong, training: a short DQN run (one seed, an MLP on the 4x84x84 frames, small replay)
   on envpool:Pong-v5, compile excluded.
4. Pong through Gymnasium, for the issue's goal (EnvPool at least 2x qlax's own Gymnasium
   path): qlax's `gymnasium:ALE/Pong-v5` when that adapter exists, and, for reference,
   Gymnasium's own synchronous vector env (ale_py) stepped in a plain Python loop, with
   gray frames and 4 frames skipped but no resize or stack (lighter than DQN's preprocessing).

Timings share the machine with whatever else runs; the JSON line at the end holds them all.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

from _timing import emit, qlax_steps_per_s

import jax
import jax.numpy as jnp
import numpy as np

from qlax.envs import EnvError, make_env
from qlax.settings import presets
from qlax.settings.config import TrainConfig

GOAL = 2.0  # EnvPool's Pong against qlax's Gymnasium path


def env_only_steps_per_s(env_id: str, members: int, num_envs: int, steps: int, repeats: int = 3) -> float:
    """Env steps/s of `members` x `num_envs` envs stepped `steps` times with random actions
    in one jitted, vmapped scan (one untimed call compiles it; the best of `repeats`)."""
    env = make_env(env_id, num_envs)

    def run(key):
        obs, state = env.reset(key)

        def body(carry, k):
            obs, state, total = carry
            action = jax.random.randint(k, (num_envs,), 0, env.spec.num_actions)
            step = env.step(k, state, obs, action)
            return (step.obs, step.env_state, total + jnp.sum(step.score)), None

        return jax.lax.scan(body, (obs, state, 0.0), jax.random.split(key, steps))[0][2]

    program = jax.jit(jax.vmap(run))
    keys = jax.random.split(jax.random.key(0), members)
    jax.block_until_ready(program(keys))
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(program(keys))
        best = min(best, time.perf_counter() - started)
    return members * num_envs * steps / best


def gymnasium_vector_steps_per_s(num_envs: int, steps: int) -> float | None:
    """Gymnasium's synchronous vector env of ALE/Pong-v5 (ale_py), 4 frames skipped, gray
    frames, random actions, stepped in a Python loop: less work than DQN's preprocessing (no
    max-pooling, no resize to 84x84, no frame stack; Gymnasium's AtariPreprocessing needs
    OpenCV), so an upper bound on what any host path through Gymnasium reaches."""
    if importlib.util.find_spec("ale_py") is None:
        return None
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    envs = gymnasium.make_vec("ALE/Pong-v5", num_envs, vectorization_mode="sync", frameskip=4,
                              repeat_action_probability=0.0, obs_type="grayscale")
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        envs.step(rng.integers(0, 6, num_envs))
    started = time.perf_counter()
    for _ in range(steps):
        envs.step(rng.integers(0, 6, num_envs))
    elapsed = time.perf_counter() - started
    envs.close()
    return num_envs * steps / elapsed


def envpool_host_steps_per_s(num_envs: int, steps: int) -> float:
    """EnvPool's Pong (qlax's settings) through its own Python API, stepped in a loop with
    random actions: the same envs as `envpool:Pong-v5` without the compiled loop."""
    from qlax.envs import envpool_adapter

    env = envpool_adapter._envpool().make("Pong-v5", env_type="gymnasium", num_envs=num_envs, batch_size=num_envs,
                                          **envpool_adapter.ATARI)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(rng.integers(0, 6, num_envs, dtype=np.int32))
    started = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, 6, num_envs, dtype=np.int32))
    return num_envs * steps / (time.perf_counter() - started)


def pong_config(env_id: str, num_envs: int) -> TrainConfig:
    """A short DQN run on Pong's frames: an MLP, a small replay, learning from the second chunk."""
    return TrainConfig(env=env_id, num_envs=num_envs, seeds=1, chunk_steps=100, q_function="mlp",
                       hidden_sizes=[64], buffer_size=1000, batch_size=32, learning_starts=400,
                       train_freq=4 * num_envs, eps_schedule="linear", eps_decay_steps=1000, lr=1e-4,
                       early_stop=False, eval_episodes=1)


def maybe(fn, *args):
    """fn(*args), or None where the environment source is not there (the Gymnasium adapter)."""
    try:
        return fn(*args)
    except (EnvError, ModuleNotFoundError) as err:
        print(f"  (skipped: {err})", flush=True)
        return None


def show(label: str, value: float | None, unit: str = "env steps/s") -> None:
    print(f"  {label:58s} {'n/a' if value is None else f'{value:>12,.0f} {unit}'}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="CartPole: seeds trained at once")
    parser.add_argument("--num-envs", type=int, default=8, help="CartPole: envs per seed")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks of each training run")
    parser.add_argument("--pong-envs", type=int, default=8, help="Pong: envs (one seed)")
    parser.add_argument("--pong-steps", type=int, default=200, help="Pong, env only: vector steps per timing")
    args = parser.parse_args()
    result = {}

    print(f"CartPole-v1, cartpole-dqn settings, {args.seeds} seeds x {args.num_envs} envs, early stop off:")
    base = presets.load("cartpole-dqn").replace(seeds=args.seeds, num_envs=args.num_envs, early_stop=False,
                                                chunk_steps=500)
    for name, env_id in (("gymnax", "CartPole-v1"), ("envpool", "envpool:CartPole-v1")):
        result[f"cartpole_train_{name}"] = qlax_steps_per_s(base.replace(env=env_id), args.chunks)["steps_per_s"]
        devices = 1 if name == "envpool" else min(jax.device_count(), args.seeds)
        show(f"training, {env_id} ({devices} device{'s' * (devices > 1)})", result[f"cartpole_train_{name}"])
    for name, env_id in (("gymnax", "CartPole-v1"), ("envpool", "envpool:CartPole-v1")):
        result[f"cartpole_env_{name}"] = env_only_steps_per_s(env_id, args.seeds, args.num_envs, 2000)
        show(f"environment only, {env_id}", result[f"cartpole_env_{name}"])

    print(f"Pong, {args.pong_envs} envs, DQN preprocessing (84x84 gray, 4 frames stacked, frame skip 4):")
    result["pong_env_envpool"] = env_only_steps_per_s("envpool:Pong-v5", 1, args.pong_envs, args.pong_steps)
    show("environment only, envpool:Pong-v5", result["pong_env_envpool"])
    result["pong_env_envpool_host"] = envpool_host_steps_per_s(args.pong_envs, args.pong_steps)
    show("environment only, EnvPool's own API in a Python loop", result["pong_env_envpool_host"])
    result["pong_env_gymnasium"] = maybe(env_only_steps_per_s, "gymnasium:ALE/Pong-v5", 1, args.pong_envs,
                                         args.pong_steps)
    show("environment only, gymnasium:ALE/Pong-v5 (qlax)", result["pong_env_gymnasium"])
    result["pong_env_gymnasium_loop"] = gymnasium_vector_steps_per_s(args.pong_envs, args.pong_steps)
    show("environment only, Gymnasium's SyncVectorEnv in a Python loop", result["pong_env_gymnasium_loop"])
    for name, env_id in (("envpool", "envpool:Pong-v5"), ("gymnasium", "gymnasium:ALE/Pong-v5")):
        measured = maybe(qlax_steps_per_s, pong_config(env_id, args.pong_envs), args.chunks)
        result[f"pong_train_{name}"] = None if measured is None else measured["steps_per_s"]
        show(f"DQN training, {env_id}", result[f"pong_train_{name}"])

    reference = result["pong_train_gymnasium"]
    if reference:
        ratio = result["pong_train_envpool"] / reference
        print(f"EnvPool / Gymnasium on Pong, training: {ratio:.2f}x (goal >= {GOAL}x): "
              f"{'met' if ratio >= GOAL else 'NOT met'}")
        result["pong_train_ratio"] = ratio
    emit({"benchmark": "envpool_throughput", **vars(args), **result})


if __name__ == "__main__":
    main()
