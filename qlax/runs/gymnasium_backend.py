"""Trained policies on Gymnasium's own environments: the reference implementation check.

gymnax reimplements the classic-control tasks in JAX; evaluating the same greedy policy
on Gymnasium's CartPole-v1, Acrobot-v1 or MountainCar-v0 shows that what was learned
transfers. This runs on the host, one step at a time. gymnasium is an optional extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from qlax.envs import env_spec
from qlax.runs.policy import load_policy
from qlax.runs.rundir import load_members, load_run_config
from qlax.settings.config import ConfigError


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise ConfigError("backend 'gymnasium' needs the gymnasium package: pip install 'qlax[gymnasium]'") from None
    return gymnasium


def gymnasium_policy(run_dir: str | Path, seed: int, env, setting: int = 0,
                     best: bool = False) -> Callable[[np.ndarray], int]:
    """Seed `seed`'s (of setting `setting`, for a sweep) greedy policy as `obs -> int action`
    for a Gymnasium env with matching spaces."""
    gymnasium = _gymnasium()
    spec = env_spec(load_run_config(run_dir).env)
    obs_space, action_space = env.observation_space, env.action_space
    if not isinstance(action_space, gymnasium.spaces.Discrete) or int(action_space.n) != spec.num_actions:
        raise ConfigError(f"the policy has {spec.num_actions} discrete actions; the Gymnasium env's "
                          f"action space is {action_space}")
    if tuple(obs_space.shape) != spec.obs_shape:
        raise ConfigError(f"the policy expects observations of shape {spec.obs_shape}; the Gymnasium "
                          f"env's are {tuple(obs_space.shape)}")
    policy, _ = load_policy(run_dir, seed, setting, best)
    return lambda obs: int(policy(np.asarray(obs, np.float32).reshape(-1)))


def evaluate_gymnasium(run_dir: str | Path, episodes: int, env_id: str | None = None,
                       best: bool = False) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Greedy (returns, lengths), each (members, episodes), on Gymnasium's `env_id` (default:
    the run's env id), and its time limit (None where it has none)."""
    gymnasium = _gymnasium()
    members = load_members(run_dir)
    config = members.config
    env_id = env_id or config.env
    try:
        env = gymnasium.make(env_id)
    except gymnasium.error.Error as err:
        raise ConfigError(f"Gymnasium has no environment '{env_id}' ({err})") from None
    returns = np.zeros((members.count, episodes))
    lengths = np.zeros((members.count, episodes), np.int64)
    for member in range(members.count):
        seed = members.seed_of(member)
        act = gymnasium_policy(run_dir, seed, env, members.setting_of(member), best)
        for episode in range(episodes):
            obs, _ = env.reset(seed=config.seed * 1_000_003 + seed * 10_007 + episode)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                returns[member, episode] += reward
                lengths[member, episode] += 1
                done = terminated or truncated
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    return returns, lengths, limit
