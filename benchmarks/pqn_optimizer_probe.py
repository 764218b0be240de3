"""How far the first updates of breakout-pqn's network on Pong frames keep Q state-dependent, per optimizer.

    python benchmarks/pqn_optimizer_probe.py [--updates 160] [--optimizers adam,radam]

A CPU-sized look at why qlax's PQN with Adam did not learn Pong on a GPU where an
independent PQN with RAdam did (docs/results.md, On a GPU). It plays 32 steps of 32
EnvPool Pong games at random, builds breakout-pqn's network (the Nature torso with layer
norm) and, from the same initial weights, takes --updates PQN-style updates with each
optimizer: Q(lambda 0.65, gamma 0.99) targets over those frames from the current network
(refreshed every 16 updates), minibatches of 128, gradients clipped to norm 10, learning
rate 2.5e-4. Every 30 updates it prints the loss, the spread of max_a Q across states
(how much Q depends on what the screen shows), the spread across actions, and how the
greedy actions of 128 frames fall on Pong's 6 actions.
"""

from __future__ import annotations

import argparse

import envpool
import jax
import jax.numpy as jnp
import numpy as np
import optax

import qlax
from qlax.components import losses, networks
from qlax.components.learner import clipped_optimizer
from qlax.envs import env_spec
from qlax.envs.envpool_adapter import ATARI

GAMES, STEPS, MINIBATCH, REFRESH = 32, 32, 128, 16
ENV = "envpool:Pong-v5"


def random_frames(seed: int = 0):
    """(frames (STEPS + 1, GAMES, 28224) uint8, clipped rewards (STEPS, GAMES), ends (STEPS, GAMES))."""
    env = envpool.make("Pong-v5", env_type="gymnasium", num_envs=GAMES, seed=seed, **ATARI)
    obs, _ = env.reset()
    frames, rewards, ends = [obs], [], []
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, (STEPS, GAMES))
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        frames.append(obs)
        rewards.append(reward)
        ends.append(terminated | truncated)
    return (jnp.asarray(np.stack(frames).reshape(STEPS + 1, GAMES, -1)), jnp.asarray(np.stack(rewards), jnp.float32),
            jnp.asarray(np.stack(ends), jnp.float32))


def probe(name: str, updates: int, q_function, params, frames, rewards, ends) -> None:
    optimizer = clipped_optimizer(name, 2.5e-4, 10.0)
    flat = frames[:-1].reshape(STEPS * GAMES, -1)

    @jax.jit
    def targets(params):
        next_max = jax.vmap(lambda f: q_function.apply(params, f))(frames[1:]).max(-1)
        return losses.lambda_returns(rewards, 0.99 * (1.0 - ends), next_max, 0.65 * (1.0 - ends)).reshape(-1)

    @jax.jit
    def update(params, opt_state, key, returns):
        k_rows, k_actions = jax.random.split(key)
        rows = jax.random.choice(k_rows, STEPS * GAMES, (MINIBATCH,), replace=False)
        actions = jax.random.randint(k_actions, (MINIBATCH,), 0, 6)

        def loss(params):
            q = losses.select_action_values(q_function.apply(params, flat[rows]), actions)
            return 0.5 * jnp.mean((q - returns[rows]) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, changes), opt_state, value

    opt_state, key = optimizer.init(params), jax.random.key(1)
    for i in range(updates):
        key, k = jax.random.split(key)
        if i % REFRESH == 0:
            returns = targets(params)
        params, opt_state, value = update(params, opt_state, k, returns)
        if i % 30 == 0 or i == updates - 1:
            q = np.asarray(q_function.apply(params, flat[::8]))
            greedy = np.bincount(q.argmax(-1), minlength=q.shape[-1])
            print(f"{name:5s} update {i:4d}  loss {float(value):.5f}  max Q across states: std "
                  f"{q.max(-1).std():.4f}  max - min over actions {np.mean(q.max(-1) - q.min(-1)):.4f}  "
                  f"greedy actions {greedy}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=160)
    parser.add_argument("--optimizers", default="adam,radam")
    args = parser.parse_args()
    config = qlax.presets.load("breakout-pqn").replace(env=ENV)
    q_function = networks.build(config, env_spec(ENV))
    params = q_function.init(jax.random.key(0), config.hparams())
    data = random_frames()
    for name in args.optimizers.split(","):
        probe(name, args.updates, q_function, params, *data)


if __name__ == "__main__":
    main()
