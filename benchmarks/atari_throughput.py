"""Env steps/s of qlax on Atari with the standard preprocessing (the pong-dqn or breakout-pqn preset).

    python benchmarks/atari_throughput.py [--preset pong-dqn] [--steps 20000] [--num-envs 8] [--buffer-size 20000]

- host: one `qlax.envs.atari.Atari` copy of the preset's game stepped in a plain Python loop with random
  actions (emulator, frame skip, pooling, resize, stacking: the host's ceiling per core);
  beside it Gymnasium's AtariPreprocessing + FrameStackObservation on the same loop, where
  OpenCV is installed (it resizes with cv2, qlax with numpy);
- in the loop: the preset's envs stepped through the Gymnasium adapter inside a compiled
  `lax.scan` with random actions, nothing learned (the host loop plus a callback per
  vector step and the frames' trip to the device and back);
- parts: the Nature network's Q-values for one vector step's `--num-envs` observations
  (acting), and a gradient through 64 frame stacks (about one update: the online network
  at 32 observations, the target at their 32 next ones);
- qlax: the preset, `--steps` env steps (one chunk untimed, the rest timed, compile
  excluded: `_timing.qlax_steps_per_s`): the env stepped from inside the compiled loop
  through the Gymnasium adapter, acting, and learning. pong-dqn: `--num-envs` envs, the
  byte replay buffer, an update round per 4 env steps; DQN computes its update rounds
  from the first step and keeps them only once learning_starts transitions are stored
  (one program for every member), so this is the preset's speed throughout; its replay
  buffer is cut to `--buffer-size` transitions (the preset's 100,000 take 5.6 GB) and
  learning_starts to 1,000: the buffer's size does not change the cost of a step.
  breakout-pqn: its 128 envs, a chunk of one 32-step rollout and its 2 epochs.
"""

from __future__ import annotations

import argparse
import time

from _timing import emit, qlax_steps_per_s, repeat_timings
import jax
import jax.numpy as jnp
import numpy as np

import qlax
from qlax.components import networks
from qlax.envs import atari, make_env

CHUNK_VECTOR_STEPS = 250


def host_steps_per_s(env, steps: int) -> float:
    """Env steps/s of one Gymnasium env in a Python loop with random actions (resets included)."""
    actions = np.random.default_rng(0).integers(0, env.action_space.n, steps)
    env.reset(seed=0)
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def gymnasium_reference(game: str):
    """Gymnasium's own preprocessing of `game`, or None without OpenCV."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return None
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    game = atari.gymnasium.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    return FrameStackObservation(AtariPreprocessing(game, terminal_on_life_loss=False), 4)


def in_loop_steps_per_s(env_name: str, num_envs: int, vector_steps: int) -> float:
    """Env steps/s of `num_envs` copies of `env_name` stepped by qlax inside a compiled scan
    with random actions (compile and a first scan excluded; the best of 3; the copies play on
    from where each scan left them)."""
    env = make_env(env_name, num_envs)
    num_actions = env.spec.num_actions

    @jax.jit
    def steps(obs, env_state, key):
        def step(carry, k):
            obs, env_state = carry
            stepped = env.step(k, env_state, obs, jax.random.randint(k, (num_envs,), 0, num_actions))
            return (stepped.obs, stepped.env_state), stepped.transition.reward
        return jax.lax.scan(step, (obs, env_state), jax.random.split(key, vector_steps))

    first = env.reset(jax.random.key(0))
    return num_envs * vector_steps / min(repeat_timings(lambda: steps(*first, jax.random.key(1)), 3))


def network_ms(config, num_envs: int) -> dict:
    """Median ms of acting on `num_envs` frame stacks and of a gradient through 64."""
    spec = atari.spec(config.env.removeprefix("atari:"))
    q = networks.build(config, spec)
    params = q.init(jax.random.PRNGKey(0), config.hparams())
    act = jax.jit(q.apply)
    grad = jax.jit(jax.grad(lambda p, frames: jnp.mean(q.apply(p, frames) ** 2)))
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (64, spec.obs_dim), np.uint8))
    return {"act_ms": 1e3 * float(np.median(repeat_timings(lambda: act(params, frames[:num_envs]), 7))),
            "grad_64_ms": 1e3 * float(np.median(repeat_timings(lambda: grad(params, frames), 7)))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="pong-dqn", choices=("pong-dqn", "breakout-pqn"))
    parser.add_argument("--steps", type=int, default=20_000, help="env steps of the qlax run")
    parser.add_argument("--num-envs", type=int, default=8, help="pong-dqn's envs")
    parser.add_argument("--buffer-size", type=int, default=20_000, help="pong-dqn's replay buffer")
    parser.add_argument("--host-steps", type=int, default=3_000, help="steps of the plain host loops")
    args = parser.parse_args()

    config = qlax.presets.load(args.preset)
    if config.algorithm == "pqn":
        config = config.replace(chunk_steps=config.num_steps)
    else:
        config = config.replace(num_envs=args.num_envs, buffer_size=args.buffer_size,
                                learning_starts=min(1_000, args.buffer_size), chunk_steps=CHUNK_VECTOR_STEPS)
    game = config.env.removeprefix("atari:")
    result = {"benchmark": "atari_throughput", "preset": args.preset, "num_envs": config.num_envs}
    result["host_steps_per_s"] = host_steps_per_s(atari.Atari(game), args.host_steps)
    print(f"host loop, one qlax {game} copy:  {result['host_steps_per_s']:8.0f} env steps/s")
    reference = gymnasium_reference(game)
    if reference is not None:
        result["gymnasium_host_steps_per_s"] = host_steps_per_s(reference, args.host_steps)
        print(f"host loop, Gymnasium's wrappers: {result['gymnasium_host_steps_per_s']:8.0f} env steps/s")

    result["in_loop_steps_per_s"] = in_loop_steps_per_s(config.env, config.num_envs,
                                                        max(1, args.host_steps // config.num_envs))
    print(f"in the loop, {config.num_envs} {config.env} envs: {result['in_loop_steps_per_s']:8.0f} env steps/s")
    result.update(network_ms(config, min(config.num_envs, 64)))
    print(f"Nature network: acting on {min(config.num_envs, 64)} frame stacks {result['act_ms']:.1f} ms, "
          f"a gradient through 64 {result['grad_64_ms']:.1f} ms")
    chunks = max(1, round(args.steps / (config.chunk_steps * config.num_envs)) - 1)
    result["qlax"] = measured = qlax_steps_per_s(config, chunks)
    print(f"qlax {args.preset} ({measured['timed_env_steps']:,} timed env steps): {measured['steps_per_s']:.0f} "
          f"env steps/s (compile {measured['compile_s']:.0f} s)")
    emit(result)


if __name__ == "__main__":
    main()
