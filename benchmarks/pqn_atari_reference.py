"""An independent single-file PQN on EnvPool Atari, to set qlax's PQN learning curve beside.

    python benchmarks/pqn_atari_reference.py [--game Pong-v5] [--seconds 200] [--decay-steps 500000]

Written from the PQN paper (Gallici et al. 2025) and purejaxql's published Atari settings,
sharing no code with qlax: EnvPool's XLA step inside one jitted update, the Nature network
with layer norm after every layer (He-normal init), 128 envs, rollouts of 32 steps,
Q(lambda) targets (lambda 0.65, gamma 0.99) from the network that acted, 2 epochs of 32
minibatches, RAdam 2.5e-4 after clipping the global norm to 10, epsilon from 1 to 0.001
over --decay-steps env steps. It trains for --seconds of wall time (compile excluded) and
prints, every --report-steps env steps, the mean game score of the last 100 finished games:
the number `qlax train breakout-pqn --set env=envpool:Pong-v5` reports as avg100.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import envpool
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

ENVS, STEPS, EPOCHS, MINIBATCHES = 128, 32, 2, 32
GAMMA, LAMBDA, LR, MAX_NORM = 0.99, 0.65, 2.5e-4, 10.0
EPS_END = 0.001


class Network(nn.Module):
    actions: int

    @nn.compact
    def __call__(self, frames):
        x = jnp.transpose(frames, (0, 2, 3, 1)).astype(jnp.float32) / 255.0
        init = nn.initializers.he_normal()
        for features, size, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = nn.relu(nn.LayerNorm()(nn.Conv(features, (size, size), (stride, stride), "VALID", kernel_init=init)(x)))
        x = nn.relu(nn.LayerNorm()(nn.Dense(512, kernel_init=init)(x.reshape(x.shape[0], -1))))
        return nn.Dense(self.actions)(x)


def lambda_returns(rewards, dones, q_next_max, last_value):
    """Q(lambda) targets backwards over a rollout: G_t = r_t + gamma (1 - d_t) [lambda G_{t+1}
    + (1 - lambda) max_a Q(s_{t+1}, a)], with G beyond the rollout its max Q."""
    def back(carry, xs):
        reward, done, next_max = xs
        target = reward + GAMMA * (1.0 - done) * (LAMBDA * carry + (1.0 - LAMBDA) * next_max)
        return target, target

    _, targets = jax.lax.scan(back, last_value, (rewards, dones, q_next_max), reverse=True)
    return targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong-v5")
    parser.add_argument("--seconds", type=float, default=200.0)
    parser.add_argument("--decay-steps", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-steps", type=int, default=100_000, help="env steps between printed lines")
    args = parser.parse_args()

    env = envpool.make(args.game, env_type="gymnasium", num_envs=ENVS, batch_size=ENVS, seed=args.seed,
                       episodic_life=True, reward_clip=True, noop_max=30, frame_skip=4,
                       repeat_action_probability=0.0)
    handle, _, _, xla_step = env.xla()
    obs, _ = env.reset()
    network = Network(int(env.action_space.n))
    params = network.init(jax.random.key(args.seed), jnp.zeros((1, *obs.shape[1:]), jnp.uint8))
    optimizer = optax.chain(optax.clip_by_global_norm(MAX_NORM), optax.radam(LR))
    decay_updates = args.decay_steps / (ENVS * STEPS)

    @partial(jax.jit, donate_argnums=(0,))
    def update(carry, key):
        params, opt_state, handle, obs, score, updates = carry
        eps = jnp.maximum(EPS_END, 1.0 + (EPS_END - 1.0) * updates / decay_updates)

        def act(carry, key):
            handle, obs, score = carry
            q = network.apply(params, obs)
            k_coin, k_random = jax.random.split(key)
            random_actions = jax.random.randint(k_random, (ENVS,), 0, q.shape[-1])
            actions = jnp.where(jax.random.uniform(k_coin, (ENVS,)) < eps, random_actions, jnp.argmax(q, -1))
            handle, (next_obs, reward, terminated, truncated, info) = xla_step(handle, actions.astype(jnp.int32))
            done = (terminated | truncated).astype(jnp.float32)
            score = score + info["reward"]
            game_over = info["terminated"].astype(bool) | truncated
            record = (obs, actions, reward, done, jnp.max(q, -1), jnp.where(game_over, score, jnp.nan))
            return (handle, next_obs, jnp.where(game_over, 0.0, score)), record

        (handle, obs, score), (frames, actions, rewards, dones, q_max, finished) = jax.lax.scan(
            act, (handle, obs, score), jax.random.split(key, STEPS))
        last_value = jnp.max(network.apply(params, obs), -1)
        next_max = jnp.concatenate([q_max[1:], last_value[None]])
        targets = lambda_returns(rewards, dones, next_max, last_value)

        def epoch(carry, key):
            def minibatch(carry, batch):
                params, opt_state = carry
                frames, actions, targets = batch

                def loss(params):
                    q = jnp.take_along_axis(network.apply(params, frames), actions[:, None], -1)[:, 0]
                    return 0.5 * jnp.mean((q - targets) ** 2)

                value, grads = jax.value_and_grad(loss)(params)
                changes, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, changes), opt_state), value

            order = jax.random.permutation(key, ENVS * STEPS)
            batches = jax.tree.map(lambda x: x.reshape(ENVS * STEPS, *x.shape[2:])[order].reshape(
                MINIBATCHES, -1, *x.shape[2:]), (frames, actions, targets))
            return jax.lax.scan(minibatch, carry, batches)

        (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, EPOCHS))
        return (params, opt_state, handle, obs, score, updates + 1), (finished, jnp.mean(losses))

    carry = (params, optimizer.init(params), jnp.asarray(handle), jnp.asarray(obs), jnp.zeros(ENVS), jnp.int32(0))
    key = jax.random.key(args.seed + 1)
    started = time.perf_counter()
    carry, _ = update(carry, key)  # compile (and one update)
    jax.block_until_ready(carry)
    print(f"compiled in {time.perf_counter() - started:.1f} s", flush=True)
    scores, env_steps, next_report = [], ENVS * STEPS, args.report_steps
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        key, k = jax.random.split(key)
        carry, (finished, loss) = update(carry, k)
        env_steps += ENVS * STEPS
        finished = np.asarray(finished).reshape(-1)
        scores.extend(finished[~np.isnan(finished)].tolist())
        if env_steps >= next_report:
            next_report += args.report_steps
            avg = np.mean(scores[-100:]) if scores else float("nan")
            print(f"{env_steps:>10,} env steps  {env_steps / (time.perf_counter() - started):>8,.0f} steps/s  "
                  f"avg100 {avg:6.2f}  games {len(scores)}  loss {float(loss):.4f}", flush=True)


if __name__ == "__main__":
    main()
