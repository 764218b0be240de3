"""The seed notebook's host loop against qlax on the same config, one seed, in one run.

    python benchmarks/seed_loop.py [--warmup 1200] [--seed-steps 1500] [--chunks 10]

The seed loop is the notebook's last training cell (epsilon decay, replay buffer),
copied: a Python for-loop over vector steps of 16 CartPole envs that syncs with the host
every step (`.tolist()` of finished episodes), an un-jitted vmapped action selection, the
notebook's `ReplayBuffer` class, a jitted `update_batch`. Its bugs are kept (one key for
both the explore coin and the random action; the residual gradient; truncation treated as
termination; a manual reset on top of gymnax's own). The only change is gymnax >= 1.0's
step signature: `done = terminated | truncated`. Warm-up steps (untimed) compile its
pieces and fill the buffer past 1,000 transitions, so every timed step runs an update.

qlax runs the same settings (the `seed` preset's, built here as a TrainConfig), one
seed, early stop off; compile and the first chunk are excluded, then `--chunks` chunks
of 500 vector steps are timed.

Goals: qlax at least 100,000 env steps/s and at least 85x the seed loop.
"""

from __future__ import annotations

import argparse
import time

from _timing import TrainConfig, emit, qlax_steps_per_s

import gymnax
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from gymnax.wrappers.purerl import FlattenObservationWrapper

GOAL_STEPS_PER_S = 100_000
GOAL_RATIO = 85


def seed_config(**changes) -> TrainConfig:
    """The notebook's settings as a qlax config (the `seed` preset), one seed, no early stop."""
    return TrainConfig(
        env="CartPole-v1", num_envs=16, seeds=1, early_stop=False, chunk_steps=500,
        q_function="linear_rbf", num_centers=500, sigma=0.5, init_scale=0.1,
        buffer_size=100_000, learning_starts=1_000, batch_size=32, lr=5e-3, gamma=0.99,
        eps_schedule="exponential", eps_start=1.0, eps_end=0.01, eps_decay=0.999,
        gradient="residual", target="online", loss="squared", truncation="terminal",
    ).replace(**changes)


# ----------------------------------------------------------------------------------------
# The notebook, copied. Comments marked "bench:" are the only additions.
# ----------------------------------------------------------------------------------------

class ReplayBuffer:
    def __init__(self, capacity, obs_dim, n_envs):
        self.capacity = capacity
        self.n_envs = n_envs
        self.ptr = 0
        self.size = 0   # number of valid samples

        self.obs_buf = jnp.zeros((capacity, obs_dim))
        self.actions_buf = jnp.zeros((capacity,), dtype=jnp.int32)
        self.rewards_buf = jnp.zeros((capacity,))
        self.next_obs_buf = jnp.zeros((capacity, obs_dim))
        self.dones_buf = jnp.zeros((capacity,))

    def add(self, obs, actions, rewards, next_obs, dones):
        n = obs.shape[0]
        idxs = (jnp.arange(n) + self.ptr) % self.capacity

        self.obs_buf = self.obs_buf.at[idxs].set(obs)
        self.actions_buf = self.actions_buf.at[idxs].set(actions)
        self.rewards_buf = self.rewards_buf.at[idxs].set(rewards)
        self.next_obs_buf = self.next_obs_buf.at[idxs].set(next_obs)
        self.dones_buf = self.dones_buf.at[idxs].set(dones)

        # advance pointer
        self.ptr = (self.ptr + n) % self.capacity
        # track current size
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng, batch_size):
        max_size = self.size  # only sample from valid entries
        idxs = jax.random.randint(rng, (batch_size,), 0, max_size)
        return (self.obs_buf[idxs],
                self.actions_buf[idxs],
                self.rewards_buf[idxs],
                self.next_obs_buf[idxs],
                self.dones_buf[idxs])

    def __len__(self):
        return self.size


env, env_params = gymnax.make("CartPole-v1")
env = FlattenObservationWrapper(env)


def rbf_features(x, centers, sigma=0.5):
    x = x / jnp.array([2.4, 3.0, 0.2, 3.0])  # CartPole observation scaling
    diffs = x[None] - centers if x.ndim == 1 else x[:, None] - centers
    sq_dist = jnp.sum(diffs**2, axis=-1)
    return jnp.exp(-sq_dist / (2 * sigma**2))


def init_params(rng, n_features, n_actions):
    W = jax.random.normal(rng, (n_features, n_actions)) * 0.1
    return W


def q_values(W, obs, centers, sigma=0.5):
    phi = rbf_features(obs, centers, sigma)
    return jnp.dot(phi, W)


def select_action(W, obs, rng, centers, sigma=0.5, epsilon=0.1):
    q = q_values(W, obs, centers, sigma)
    greedy = jnp.argmax(q, axis=-1)
    explore = jax.random.bernoulli(rng, epsilon, shape=greedy.shape)
    random_actions = jax.random.randint(rng, greedy.shape, 0, q.shape[-1])  # same rng: the seed's bug
    return jnp.where(explore, random_actions, greedy)


def td_loss(W, obs, action, reward, next_obs, done, gamma, centers, sigma):
    q = q_values(W, obs, centers, sigma)
    q_selected = jnp.take_along_axis(q, action[:, None], axis=-1).squeeze()

    next_q = jnp.max(q_values(W, next_obs, centers, sigma), axis=-1)  # no stop_gradient: residual
    target = reward + gamma * (1 - done) * next_q

    return jnp.mean(0.5 * (q_selected - target) ** 2)


def epsilon_schedule(step, eps_start=1.0, eps_end=0.05, decay_rate=0.999):
    return jnp.maximum(eps_end, eps_start * (decay_rate ** step))


def train_parallel_simple(num_episodes=500, lr=1e-2, gamma=0.99, n_centers=50,
                          sigma=0.5, num_envs=16, batch_size=16,
                          warmup_steps=1200, timed_steps=1500, verbose=False):
    """bench: the notebook's function, run for warmup_steps + timed_steps vector steps.

    Returns a dict of timings instead of (W, centers, all_rewards).
    """
    obs_dim = env.observation_space(env_params).shape[0]
    n_actions = env.action_space(env_params).n

    rng = jax.random.PRNGKey(0)
    rng, centers_rng, init_rng = jax.random.split(rng, 3)

    # Random RBF centers
    centers = jax.random.uniform(centers_rng, (n_centers, obs_dim), minval=-1, maxval=1)
    W = init_params(init_rng, n_centers, n_actions)

    opt = optax.adam(lr)
    opt_state = opt.init(W)

    # Vectorized functions
    vmap_reset = jax.vmap(env.reset, in_axes=(0, None))
    vmap_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    vmap_select_action = jax.vmap(select_action, in_axes=(None, 0, 0, None, None, None))

    @jax.jit
    def update_batch(W, opt_state, obs, actions, rewards, next_obs, dones):
        def batch_loss(W):
            return td_loss(W, obs, actions, rewards, next_obs, dones, gamma, centers, sigma)

        grads = jax.grad(batch_loss)(W)
        updates, opt_state = opt.update(grads, opt_state, W)
        W = optax.apply_updates(W, updates)
        return W, opt_state

    # Initialize environments
    rng, *env_rngs = jax.random.split(rng, num_envs + 1)
    obs, states = vmap_reset(jnp.array(env_rngs), env_params)

    episode_rewards = jnp.zeros(num_envs)
    all_rewards = []

    buffer = ReplayBuffer(capacity=100000, obs_dim=obs_dim, n_envs=num_envs)   # initialize buffer

    started = None  # bench
    timed_updates = 0  # bench
    timed_episodes = 0  # bench
    for step in range(warmup_steps + timed_steps):  # bench: a fixed number of steps
        if step == warmup_steps:  # bench: start the clock after the warm-up
            jax.block_until_ready((W, opt_state, obs, states, buffer.obs_buf))
            started = time.perf_counter()
            timed_episodes = -len(all_rewards)

        rng, action_rng = jax.random.split(rng)
        action_rngs = jax.random.split(action_rng, num_envs)

        epsilon = epsilon_schedule(step, eps_start=1.0, eps_end=0.01, decay_rate=0.999)

        # Select actions for all environments
        actions = vmap_select_action(W, obs, jnp.array(action_rngs), centers, sigma, epsilon)

        # Step all environments (bench: gymnax >= 1.0 returns terminated and truncated)
        rng, *step_rngs = jax.random.split(rng, num_envs + 1)
        next_obs, next_states, rewards, terminated, truncated, _ = vmap_step(
            jnp.array(step_rngs), states, actions, env_params
        )
        dones = terminated | truncated

        # Store experience in replay buffer
        buffer.add(obs, actions, rewards, next_obs, dones.astype(jnp.float32))

        # Update episode rewards
        episode_rewards += rewards

        # Record completed episodes and reset counters for done envs
        completed_mask = dones.astype(bool)
        completed_rewards = episode_rewards[completed_mask]
        all_rewards.extend(completed_rewards.tolist())

        episode_rewards = episode_rewards * (1 - dones.astype(jnp.float32))

        # Compute resets for all (unconditionally for simplicity)
        rng, reset_rng = jax.random.split(rng)
        reset_rngs = jax.random.split(reset_rng, num_envs)
        reset_obs, reset_states = vmap_reset(jnp.array(reset_rngs), env_params)

        # Apply resets only to done environments
        obs = jnp.where(dones[:, None], reset_obs, next_obs)
        states = jtu.tree_map(lambda r, n: jnp.where(dones, r, n), reset_states, next_states)

        # Train only if buffer is warm enough
        if buffer.size >= 1000:
            rng, sample_rng = jax.random.split(rng)
            batch_obs, batch_actions, batch_rewards, batch_next_obs, batch_dones = \
                buffer.sample(sample_rng, batch_size)

            W, opt_state = update_batch(
                W, opt_state,
                batch_obs, batch_actions, batch_rewards,
                batch_next_obs, batch_dones
            )
            timed_updates += step >= warmup_steps  # bench

        # Print progress (bench: computed as in the notebook, printed only if verbose)
        if step % 100 == 0:
            if all_rewards:
                recent_rewards = all_rewards[-100:] if len(all_rewards) > 100 else all_rewards
                avg_reward = jnp.mean(jnp.array(recent_rewards))
                line = f"Step {step}, Avg reward: {avg_reward:.1f}, Total episodes: {len(all_rewards)}"
                # bench: the notebook breaks here once solved; a fixed step count is timed instead
            else:
                line = f"Step {step}, No episodes completed yet"
            if verbose:
                print("  " + line, flush=True)

        # bench: the notebook also breaks at num_episodes (50,000), far beyond this run
        if len(all_rewards) >= num_episodes:
            raise RuntimeError("num_episodes reached inside the timed run")

    jax.block_until_ready((W, opt_state, obs, states))
    elapsed = time.perf_counter() - started
    recent = all_rewards[-100:]
    return {
        "steps_per_s": timed_steps * num_envs / elapsed,
        "timed_vector_steps": timed_steps,
        "timed_env_steps": timed_steps * num_envs,
        "timed_updates": int(timed_updates),
        "timed_episodes": timed_episodes + len(all_rewards),
        "seconds": elapsed,
        "avg_return_100": sum(recent) / max(len(recent), 1),
    }


def seed_loop_steps_per_s(timed_steps: int = 1500, warmup_steps: int = 1200, verbose: bool = False) -> dict:
    """Env steps/s of the notebook's loop with the notebook's call (16 envs, 500 centers,
    lr 5e-3, batch 32), compile and warm-up excluded; plus what the timed stretch did."""
    if warmup_steps * 16 < 1000 + 16:
        raise ValueError(f"warmup_steps ({warmup_steps}) must fill the buffer past 1,000 transitions (>= 63)")
    result = train_parallel_simple(num_episodes=50000, num_envs=16, n_centers=500, lr=5e-3, batch_size=32,
                                   warmup_steps=warmup_steps, timed_steps=timed_steps, verbose=verbose)
    assert result["timed_updates"] == timed_steps, "every timed step should run an update"
    return result


def measure_seed_loop(timed_steps: int, warmup_steps: int, verbose: bool = False) -> dict:
    """`seed_loop_steps_per_s`, announced and reported on the terminal."""
    print(f"seed notebook loop: {warmup_steps} warm-up + {timed_steps} timed vector steps of 16 envs ...",
          flush=True)
    seed = seed_loop_steps_per_s(timed_steps, warmup_steps, verbose)
    print(f"  {seed['steps_per_s']:12,.0f} env steps/s  ({seed['timed_env_steps']:,} env steps, "
          f"{seed['timed_updates']:,} updates, {seed['timed_episodes']:,} episodes in {seed['seconds']:.1f} s)",
          flush=True)
    return seed


def measure_qlax(config: TrainConfig, chunks: int, label: str) -> dict:
    """`qlax_steps_per_s` of `config`, announced and reported on the terminal."""
    print(f"qlax, {label}, early stop off: 1 untimed + {chunks} timed chunks of {config.chunk_steps} vector "
          f"steps ...", flush=True)
    ours = qlax_steps_per_s(config, chunks)
    print(f"  {ours['steps_per_s']:12,.0f} env steps/s  (total timed steps / total time; chunks ranged "
          f"{ours['worst_chunk_steps_per_s']:,.0f}-{ours['best_chunk_steps_per_s']:,.0f}; "
          f"compile {ours['compile_s']:.1f} s, excluded)", flush=True)
    return ours


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1200, help="untimed vector steps of the seed loop")
    parser.add_argument("--seed-steps", type=int, default=1500, help="timed vector steps of the seed loop")
    parser.add_argument("--chunks", type=int, default=10, help="timed qlax chunks of 500 vector steps")
    parser.add_argument("--verbose", action="store_true", help="print the seed loop's progress lines")
    args = parser.parse_args()

    seed = measure_seed_loop(args.seed_steps, args.warmup, args.verbose)
    ours = measure_qlax(seed_config(), args.chunks, "seed settings, 1 seed")

    ratio = ours["steps_per_s"] / seed["steps_per_s"]
    meets_speed = ours["steps_per_s"] >= GOAL_STEPS_PER_S
    meets_ratio = ratio >= GOAL_RATIO
    print(f"qlax single seed:   {ours['steps_per_s']:12,.0f} env steps/s   goal >= {GOAL_STEPS_PER_S:,}: "
          f"{'met' if meets_speed else 'NOT met'}")
    print(f"ratio qlax / seed:  {ratio:12,.1f}x             goal >= {GOAL_RATIO}x:      "
          f"{'met' if meets_ratio else 'NOT met'}")
    emit({"benchmark": "seed_loop", "seed_loop_steps_per_s": round(seed["steps_per_s"], 1),
          "qlax_steps_per_s": round(ours["steps_per_s"], 1), "ratio": round(ratio, 2),
          "goal_steps_per_s": GOAL_STEPS_PER_S, "goal_ratio": GOAL_RATIO,
          "meets_goals": bool(meets_speed and meets_ratio),
          "seed_loop_timed_vector_steps": seed["timed_vector_steps"], "seed_loop_warmup_vector_steps": args.warmup,
          "qlax_timed_env_steps": ours["timed_env_steps"], "qlax_compile_s": round(ours["compile_s"], 2)})


if __name__ == "__main__":
    main()
