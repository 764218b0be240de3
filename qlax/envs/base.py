"""What every environment source gives the trainer: a spec and a vectorized env.

A source (gymnax, a JAX environment object, Gymnasium on the host, ...) adapts its
environments to `VecEnv`: `num_envs` copies with auto-reset, observations flattened to
vectors (float32, or uint8 for pixel frames: `EnvSpec.obs_dtype`), and transitions that
keep `terminated` apart from a time limit and hold the true final observation as `next_obs`.
An environment whose actions are not all legal everywhere names the part of its observation
that says which are (`EnvSpec.action_mask`): the mask travels with the observation through
replay and rollouts, and `legal_actions` reads it wherever an action or a maximum is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qlax.core.types import Transition


class EnvError(ValueError):
    """An unknown environment, or one that breaks the protocol qlax trains on."""


@dataclass(frozen=True)
class EnvSpec:
    id: str
    obs_shape: tuple  # as the environment emits it; () for a discrete state index
    obs_dim: int  # the flattened (or one-hot) size the Q-functions see
    num_actions: int
    max_episode_steps: int | None  # None: the environment has no time limit qlax knows of
    obs_low: np.ndarray  # (obs_dim,) the observation space's bounds, inf where it has none
    obs_high: np.ndarray
    solve_threshold: float | None
    host: bool = False  # stepped on the host (a checkpoint cannot hold its state)
    obs_dtype: str = "float32"  # of the observations a VecEnv emits: "uint8" for pixel frames, kept as bytes
    # (start, stop) of the observation entries that say which actions are legal (num_actions
    # entries, nonzero: legal); None: every action is legal everywhere
    action_mask: tuple[int, int] | None = None
    # (obs_dim,) bool: the entries that one-hot encode a Discrete observation. They reach the
    # Q-function as 0/1 under every obs_scaling (mapped onto -1/+1, or standardized, n states
    # would look nearly alike); None: there are none
    one_hot: np.ndarray | None = None


def one_hot_entries(spec: EnvSpec) -> np.ndarray:
    """(obs_dim,) bool: which observation entries are a Discrete observation's one-hot."""
    return np.zeros(spec.obs_dim, bool) if spec.one_hot is None else np.asarray(spec.one_hot, bool)


def legal_actions(spec: EnvSpec, obs: jax.Array) -> jax.Array | None:
    """(..., num_actions) bool: the actions legal in each observation, read from its mask; None
    for an environment without one. A row that allows nothing (a terminal state's mask)
    allows everything, so its maximum stays finite (its bootstrap is discounted away)."""
    if spec.action_mask is None:
        return None
    start, stop = spec.action_mask
    legal = obs[..., start:stop] != 0
    return legal | ~jnp.any(legal, axis=-1, keepdims=True)


class EnvStep(NamedTuple):
    """One vector step: what the agent sees next and the transitions that led there."""

    obs: jax.Array  # (num_envs, obs_dim) of spec.obs_dtype: the observation acted on next
    env_state: object
    transition: Transition
    done: jax.Array  # (num_envs,) bool: the episode ended (terminated or truncated)
    next_obs_known: jax.Array  # (num_envs,) bool: transition.next_obs is the true next observation
    first: jax.Array  # (num_envs,) bool: obs is the first observation of an episode
    # What returns report, where learning sees something else (Atari: clipped rewards,
    # a lost life as an end): the reward as the game scores it, and the game's end.
    score: jax.Array  # (num_envs,) float32
    game_over: jax.Array  # (num_envs,) bool


def env_step(obs, env_state, transition, done, known) -> EnvStep:
    """An EnvStep of an environment that reports what it learns from: obs after an end is
    a new episode's first, the score is the reward and the game ends with the episode."""
    return EnvStep(obs, env_state, transition, done, known, first=done, score=transition.reward, game_over=done)


class VecEnv(NamedTuple):
    """`num_envs` copies of one environment with auto-reset.

    reset(key) -> (obs (num_envs, obs_dim) of spec.obs_dtype, env_state)
    step(key, env_state, obs, action (num_envs,)) -> EnvStep
    restart(env_state) -> env_state, for an env whose state a checkpoint cannot hold (stepped
        outside the program): after a resume its next step starts fresh episodes and is a
        reset step, no transition (next_obs_known false, done false, score 0, first true),
        so no n-step window spans the resume. None for an env whose state is saved.
    """

    spec: EnvSpec
    num_envs: int
    reset: Callable
    step: Callable
    restart: Callable | None = None
