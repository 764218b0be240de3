"""Gymnasium's table environments (FrozenLake, Taxi, CliffWalking) stepped compiled, from
their own transition tables.

These environments step by nothing but their table: `P[state][action]` lists (probability,
next state, reward, terminated) rows, a step draws one row (`categorical_sample`: the first
row whose cumulative probability exceeds a uniform draw), and a reset draws the state from
`initial_state_distrib`. qlax reads the table from a copy of the environment and steps it
inside the compiled program: no host call per vector step (Taxi trained 5 seeds several
times faster), and a checkpoint holds the episodes, so a resumed run continues them exactly.

A copy is stepped from its table only where nothing else can change what it does:
- its class is exactly FrozenLakeEnv, TaxiEnv or CliffWalkingEnv (a subclass may step
  otherwise), and a Taxi is without `fickle_passenger` (a change of destination the table
  does not hold);
- its wrappers are only those `gymnasium.make` adds itself (TimeLimit, whose limit qlax
  keeps, OrderEnforcing, PassiveEnvChecker).
Every other environment, and any name that asks for a host mode (`@sync`, `@async`), is
stepped on the host as before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qlax.envs.jax_adapter import Discrete
from qlax.envs.gymnasium_adapter.source import Source, gymnasium_module


@dataclass(frozen=True, eq=False)
class Table:
    """A table environment as a JAX environment (qlax's protocol: `jax_adapter`). Rows past a
    (state, action)'s own are padding of probability 0."""

    probabilities: np.ndarray  # (states, actions, rows) float32
    next_states: np.ndarray  # (states, actions, rows) int32
    rewards: np.ndarray  # (states, actions, rows) float32
    terminated: np.ndarray  # (states, actions, rows) bool
    initial: np.ndarray  # (states,) float32: the reset's distribution

    @property
    def observation_space(self) -> Discrete:
        return Discrete(self.probabilities.shape[0])

    @property
    def action_space(self) -> Discrete:
        return Discrete(self.probabilities.shape[1])

    def reset(self, key):
        state = _draw(key, jnp.asarray(self.initial))
        return state, state

    def step(self, key, state, action):
        pair = (state, action)
        row = _draw(key, jnp.asarray(self.probabilities)[pair])
        chosen = pair + (row,)
        next_state = jnp.asarray(self.next_states)[chosen]
        return (next_state, next_state, jnp.asarray(self.rewards)[chosen], jnp.asarray(self.terminated)[chosen],
                jnp.bool_(False))  # Gymnasium's TimeLimit cuts, here qlax's own (the spec's limit)


def _draw(key, probabilities):
    """Gymnasium's `categorical_sample`: the first index whose cumulative probability exceeds a
    uniform draw (index 0 where none does, as numpy's argmax gives)."""
    return jnp.argmax(jnp.cumsum(probabilities) > jax.random.uniform(key)).astype(jnp.int32)


@functools.lru_cache(maxsize=None)
def table_of(source: Source) -> Table | None:
    """The table that `source` steps by, read from a copy of it; None where it steps by
    anything else, or its name asks for a host mode."""
    if source.mode or source.vector_factory:
        return None
    env = source.one()
    try:
        return _read(env)
    finally:
        env.close()


def _read(env) -> Table | None:
    gymnasium = gymnasium_module()
    from gymnasium.envs.toy_text import CliffWalkingEnv, FrozenLakeEnv, TaxiEnv

    made_by_make = (gymnasium.wrappers.TimeLimit, gymnasium.wrappers.OrderEnforcing,
                    gymnasium.wrappers.PassiveEnvChecker)
    while isinstance(env, gymnasium.Wrapper):
        if type(env) not in made_by_make:
            return None
        env = env.env
    if type(env) not in (FrozenLakeEnv, TaxiEnv, CliffWalkingEnv) or getattr(env, "fickle_passenger", False):
        return None
    states, actions = int(env.observation_space.n), int(env.action_space.n)
    rows = max(len(env.P[s][a]) for s in range(states) for a in range(actions))
    shape = (states, actions, rows)
    probabilities, rewards = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    next_states, terminated = np.zeros(shape, np.int32), np.zeros(shape, bool)
    for s in range(states):
        for a in range(actions):
            for i, (probability, next_state, reward, ends) in enumerate(env.P[s][a]):
                probabilities[s, a, i], next_states[s, a, i] = probability, next_state
                rewards[s, a, i], terminated[s, a, i] = reward, ends
    return Table(probabilities, next_states, rewards, terminated, np.asarray(env.initial_state_distrib, np.float32))
