"""Stable-Baselines3's DQN trained and evaluated greedily on one seed; run by transfer.py in benchmarks/.venv-sb3.

    python _sb3_transfer_worker.py '{"env": "gymnasium:FrozenLake-v1", "seed": 0, "steps": 100000,
                                     "dqn": {...}, "eval_episodes": 100, "time_limit": 100, "threads": 1}'

env: a qlax name: `gymnasium:ID`, a gymnax id (MinAtar), `navix:ID` or `jumanji:ID`; dqn:
keyword arguments of `stable_baselines3.DQN` (rl-zoo's for the env, or none: SB3's
defaults), `policy` among them. Gymnasium ids are made as they are (a Discrete state is
one-hot encoded by SB3 itself, as qlax does). The JAX environments are wrapped as a
`gymnasium.Env` (`JaxEnv`) that steps one copy through a jitted function and gives SB3
the observation qlax's adapter gives its network before any scaling: every field
flattened to one float32 vector, in the same order. Time limits end an episode as a
truncation, a real end as a termination, as qlax's adapters tell them apart.

Timed: making the env and the model, `learn(steps)`, and `eval_episodes` greedy episodes
(deterministic=True) on the same env object, reset with new seeds (learning is over, so
nothing else steps it, and a JAX env is not compiled twice); imports are not. Prints one JSON line:
the mean greedy return, how many greedy episodes ran to `time_limit` steps (qlax's limit for
the env, given by transfer.py), the seconds of each part and the versions. No qlax here.
"""

import json
import sys
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import DQN


def keyed(fn):
    """`fn(*args, key)` jitted as `(key, *args) -> (next key, *fn's results)`: the key is split
    inside the compiled call."""
    def call(key, *args):
        key, use = jax.random.split(key)
        return (key, *fn(*args, use))
    return jax.jit(call)


class JaxEnv(gymnasium.Env):
    """One copy of a JAX environment as a `gymnasium.Env`: `reset(key) -> (obs, state)` and
    `step(state, action, key) -> (obs, state, reward, terminated, truncated)`, each jitted
    with its key splitting, so a step is one compiled call and one transfer to the host."""

    def __init__(self, reset, step, obs_dim: int, num_actions: int):
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(num_actions)
        self._reset = keyed(reset)
        self._step = keyed(step)
        self._key = jax.random.key(0)
        self._state = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.key(seed)
        self._key, obs, self._state = self._reset(self._key)
        return np.asarray(obs), {}

    def step(self, action):
        self._key, obs, self._state, reward, terminated, truncated = self._step(self._key, self._state,
                                                                               jnp.int32(action))
        obs, reward, terminated, truncated = jax.device_get((obs, reward, terminated, truncated))
        return obs, float(reward), bool(terminated), bool(truncated), {}


def flat(tree) -> jax.Array:
    """Every leaf of an observation flattened to float32 and joined, in JAX's leaf order."""
    return jnp.concatenate([jnp.reshape(leaf, (-1,)).astype(jnp.float32) for leaf in jax.tree.leaves(tree)])


def gymnax_env(env_id: str) -> JaxEnv:
    """A gymnax env through its non-resetting `step_env`; its `is_truncated` is the time limit."""
    import gymnax

    env, params = gymnax.make(env_id)

    def reset(key):
        obs, state = env.reset_env(key, params)
        return flat(obs), state

    def step(state, action, key):
        obs, state, reward, terminated, _ = env.step_env(key, state, action, params)
        return flat(obs), state, reward, terminated, env.is_truncated(state, params) & ~terminated

    return JaxEnv(reset, step, int(np.prod(env.observation_space(params).shape)), env.num_actions)


def navix_env(env_id: str) -> JaxEnv:
    """A navix env with its symbolic, fully observed grid, stepped without its auto-reset;
    the rendering cache is dropped from the state."""
    import navix

    env = navix.make(env_id, observation_fn=navix.observations.symbolic)

    def light(timestep):
        return timestep.replace(state=timestep.state.replace(cache=None))

    def reset(key):
        timestep = env.reset(key)
        return flat(timestep.observation), light(timestep)

    def step(timestep, action, key):
        timestep = light(env._step(timestep, action))
        return (flat(timestep.observation), timestep, timestep.reward, timestep.is_termination(),
                timestep.is_truncation())

    return JaxEnv(reset, step, env.height * env.width * 3, len(env.action_set))


def jumanji_env(env_id: str) -> JaxEnv:
    """A Jumanji env; a last timestep with discount 0 is a termination, above 0 a truncation."""
    import jumanji

    env = jumanji.make(env_id)

    def reset(key):
        state, timestep = env.reset(key)
        return flat(timestep.observation), state

    def step(state, action, key):
        state, timestep = env.step(state, action)
        stops = timestep.discount == 0
        return flat(timestep.observation), state, timestep.reward, timestep.last() & stops, timestep.last() & ~stops

    obs_dim = int(flat(env.observation_spec.generate_value()).shape[0])
    return JaxEnv(reset, step, obs_dim, int(env.action_spec.num_values))


def make_env(name: str) -> gymnasium.Env:
    """The environment a qlax name stands for."""
    source, _, env_id = name.rpartition(":")
    makers = {"gymnasium": gymnasium.make, "": gymnax_env, "navix": navix_env, "jumanji": jumanji_env}
    return makers[source](env_id)


def greedy_episodes(model: DQN, env: gymnasium.Env, episodes: int, seed: int) -> tuple[list[float], list[int]]:
    """The undiscounted return and the steps of `episodes` greedy episodes, each ended by the env."""
    returns, lengths = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_003 + episode)
        total, steps, done = 0.0, 0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total, steps, done = total + reward, steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
    return returns, lengths


def main():
    settings = json.loads(sys.argv[1])
    torch.set_num_threads(settings["threads"])
    dqn = dict(settings["dqn"])
    started = time.perf_counter()
    env = make_env(settings["env"])
    model = DQN(env=env, seed=settings["seed"], device="cpu", verbose=0, **dqn)
    made = time.perf_counter()
    model.learn(total_timesteps=settings["steps"])
    learned = time.perf_counter()
    returns, lengths = greedy_episodes(model, env, settings["eval_episodes"], settings["seed"])
    evaluated = time.perf_counter()
    print(json.dumps({"seed": settings["seed"], "mean_return": float(np.mean(returns)),
                      "at_time_limit": sum(n >= settings["time_limit"] for n in lengths),
                      "make_s": made - started, "learn_s": learned - made, "eval_s": evaluated - learned,
                      "wall_s": evaluated - started, "env_steps": int(model.num_timesteps),
                      "torch_threads": torch.get_num_threads(),
                      "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                                   "gymnasium": gymnasium.__version__, "jax": jax.__version__}}), flush=True)


if __name__ == "__main__":
    main()
