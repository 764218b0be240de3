"""Shared pieces of the benchmarks: the seed notebook's loop, qlax timing, output."""

from __future__ import annotations

import json
import platform
import time

import qlax  # noqa: F401  (first: it gives JAX one CPU device per core before anything starts JAX)
import gymnax
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax

from qlax import presets
from qlax.trainer import make_train, population, seed_keys


def machine() -> str:
    return f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}"


def emit(result: dict) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps({**result, "machine": machine()}))


class SeedReplayBuffer:
    """The notebook's buffer, unchanged (bugs included)."""

    def __init__(self, capacity, obs_dim, n_envs):
        self.capacity, self.n_envs, self.ptr, self.size = capacity, n_envs, 0, 0
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
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng, batch_size):
        idxs = jax.random.randint(rng, (batch_size,), 0, self.size)
        return (self.obs_buf[idxs], self.actions_buf[idxs], self.rewards_buf[idxs],
                self.next_obs_buf[idxs], self.dones_buf[idxs])


def seed_loop_steps_per_s(vector_steps: int, warmup: int = 100) -> float:
    """Env steps/s of the notebook's host loop (16 envs, 500 centers, batch 32), after warm-up.

    The loop is the notebook's, adapted only to gymnax >= 1.0's step signature. Warm-up
    steps compile its jitted pieces; the buffer is pre-filled past 1,000 transitions so
    the timed steps include an update each, as in the notebook's steady state.
    """
    env, env_params = gymnax.make("CartPole-v1")
    num_envs, n_centers, sigma, gamma, lr, batch_size = 16, 500, 0.5, 0.99, 5e-3, 32
    scale = jnp.array([2.4, 3.0, 0.2, 3.0])

    def rbf_features(x, centers):
        x = x / scale
        diffs = x[None] - centers if x.ndim == 1 else x[:, None] - centers
        return jnp.exp(-jnp.sum(diffs**2, axis=-1) / (2 * sigma**2))

    def q_values(W, obs, centers):
        return jnp.dot(rbf_features(obs, centers), W)

    def select_action(W, obs, rng, centers, epsilon):
        q = q_values(W, obs, centers)
        greedy = jnp.argmax(q, axis=-1)
        explore = jax.random.bernoulli(rng, epsilon, shape=greedy.shape)
        random_actions = jax.random.randint(rng, greedy.shape, 0, q.shape[-1])
        return jnp.where(explore, random_actions, greedy)

    def td_loss(W, obs, action, reward, next_obs, done, centers):
        q = q_values(W, obs, centers)
        q_selected = jnp.take_along_axis(q, action[:, None], axis=-1).squeeze()
        next_q = jnp.max(q_values(W, next_obs, centers), axis=-1)
        return jnp.mean(0.5 * (q_selected - (reward + gamma * (1 - done) * next_q)) ** 2)

    rng = jax.random.PRNGKey(0)
    rng, centers_rng, init_rng = jax.random.split(rng, 3)
    centers = jax.random.uniform(centers_rng, (n_centers, 4), minval=-1, maxval=1)
    W = jax.random.normal(init_rng, (n_centers, 2)) * 0.1
    opt = optax.adam(lr)
    opt_state = opt.init(W)
    vmap_reset = jax.vmap(env.reset, in_axes=(0, None))
    vmap_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    vmap_select_action = jax.vmap(select_action, in_axes=(None, 0, 0, None, None))

    @jax.jit
    def update_batch(W, opt_state, obs, actions, rewards, next_obs, dones):
        grads = jax.grad(td_loss)(W, obs, actions, rewards, next_obs, dones, centers)
        updates, opt_state = opt.update(grads, opt_state, W)
        return optax.apply_updates(W, updates), opt_state

    rng, *env_rngs = jax.random.split(rng, num_envs + 1)
    obs, states = vmap_reset(jnp.array(env_rngs), env_params)
    episode_rewards = jnp.zeros(num_envs)
    all_rewards = []
    buffer = SeedReplayBuffer(100_000, 4, num_envs)
    buffer.size = 1000  # steady state: every timed step also runs an update

    started = None
    for step in range(warmup + vector_steps):
        if step == warmup:
            jax.block_until_ready(W)
            started = time.perf_counter()
        rng, action_rng = jax.random.split(rng)
        action_rngs = jax.random.split(action_rng, num_envs)
        epsilon = max(0.01, 0.999**step)
        actions = vmap_select_action(W, obs, jnp.array(action_rngs), centers, epsilon)
        rng, *step_rngs = jax.random.split(rng, num_envs + 1)
        next_obs, next_states, rewards, terminated, truncated, _ = vmap_step(
            jnp.array(step_rngs), states, actions, env_params)
        dones = jnp.logical_or(terminated, truncated)
        buffer.add(obs, actions, rewards, next_obs, dones.astype(jnp.float32))
        episode_rewards += rewards
        all_rewards.extend(episode_rewards[dones.astype(bool)].tolist())
        episode_rewards = episode_rewards * (1 - dones.astype(jnp.float32))
        rng, reset_rng = jax.random.split(rng)
        reset_obs, reset_states = vmap_reset(jax.random.split(reset_rng, num_envs), env_params)
        obs = jnp.where(dones[:, None], reset_obs, next_obs)
        states = jtu.tree_map(lambda r, n: jnp.where(dones, r, n), reset_states, next_states)
        if buffer.size >= 1000:
            rng, sample_rng = jax.random.split(rng)
            W, opt_state = update_batch(W, opt_state, *buffer.sample(sample_rng, batch_size))
    jax.block_until_ready(W)
    return vector_steps * num_envs / (time.perf_counter() - started)


def qlax_steps_per_s(preset: str, seeds: int, chunks: int = 4, **changes) -> tuple[float, float]:
    """(aggregate env steps/s with compile excluded, compile seconds) of a qlax population.

    Early stop is off so every seed steps for the whole timed stretch.
    """
    config = presets.load(preset).replace(seeds=seeds, early_stop=False, **changes)
    config = config.replace(total_steps=config.chunk_steps * config.num_envs * (chunks + 1))
    init, run_chunk, _ = population(make_train(config))
    started = time.perf_counter()
    state = init(seed_keys(config))
    compiled = run_chunk.lower(state).compile()
    compile_s = time.perf_counter() - started
    state, metrics = compiled(state)  # the first chunk: untimed (first-touch allocations)
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for _ in range(chunks):
        state, metrics = compiled(state)
    jax.block_until_ready(metrics)
    steps = chunks * config.chunk_steps * config.num_envs * seeds
    assert int(np.min(metrics.env_steps)) == (chunks + 1) * config.chunk_steps * config.num_envs
    return steps / (time.perf_counter() - started), compile_s
