"""The contract between the trainer and the algorithms: the interface every algorithm
implements and the registry of algorithms by name.

It sits among the components, below the settings, because the settings validate against
the registry (`config` reads `ALGORITHMS` and each algorithm's `SETTINGS`); the algorithm
modules themselves (`qlax.algorithms`, one module each) sit above the settings and are
imported by name when used. `qlax.algorithms` re-exports this module's names.

The trainer (`qlax.program.trainer`) steps the environments and keeps every member's books
(episode records, early stop and freezing, divergence, greedy checks, metrics); an
algorithm says how its agent acts and how it learns from what was collected:

    algorithm = make(config, env)          # from ALGORITHMS[config.algorithm]
    agent = algorithm.init(key, hparams, first_obs)
    actions, agent = algorithm.act(agent, obs, first, key, hparams, vector_steps, active)
    agent, learned = algorithm.learn(agent, rollout, key, hparams, vector_steps, active)

(`Init`, `Act` and `Learn` type them.)

The trainer vmaps both over the population's members with the axis name `MEMBERS`, so
an algorithm can skip work no member needs (`any_member`) where a per-member condition
would, under vmap, compute it for every member and select.

`learn` runs after every `rollout_steps` vector steps (1 for the DQN family, a PQN
rollout's length for PQN) on a `Rollout` with a leading time axis. Both functions leave
the agent unchanged where `active` is false (a frozen member), so the trainer never
copies an agent's large parts (a replay buffer) to freeze it.

Adding an algorithm is adding its module under `qlax/algorithms/` (a `make(config, env) -> Algorithm` and a
`check(config)` for relations between its settings), a line in `ALGORITHMS`, its presets
and its tests. Modules are imported when their algorithm is used.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from qlax.components.networks import QFunction
from qlax.core.types import Transition

# The one list of algorithms: name -> module under qlax.algorithms.
ALGORITHMS = {
    "dqn": "dqn",  # DQN and its options: double Q, n-step, prioritized replay, dueling, noisy nets
    "c51": "c51",  # categorical distributional DQN (Bellemare et al. 2017)
    "qrdqn": "qrdqn",  # quantile regression DQN (Dabney et al. 2018)
    "iqn": "iqn",  # implicit quantile networks: sampled quantile fractions, cosine embedding (Dabney et al. 2018)
    "mdqn": "mdqn",  # Munchausen-DQN: a scaled log-policy bonus and a soft value (Vieillard et al. 2020)
    "pqn": "pqn",  # parallelised Q-network: rollouts, Q(lambda), epochs, no replay, no target (Gallici et al. 2025)
}


MEMBERS = "members"  # the population's vmap axis (`trainer.population`)


def any_member(flag: jax.Array) -> jax.Array:
    """Whether `flag` (bool ()) holds for some member of the population, as one value shared
    by all: a `lax.cond` on it really skips what no member needs, where a cond on a member's
    own flag becomes, under vmap, both branches and a select. It costs a collective across
    the population's devices. Outside the population's vmap (one agent alone) it is `flag`."""
    try:
        return jax.lax.pmax(flag.astype(jnp.int32), MEMBERS) > 0
    except NameError:  # MEMBERS is not bound here
        return flag


@struct.dataclass
class Rollout:
    """What the trainer collected since the last `learn`: leaves (rollout_steps, num_envs, ...)."""

    transition: Transition  # next_obs is the final observation where a time limit cut the episode
    done: jax.Array  # bool: the episode ended (terminated or truncated)
    known: jax.Array  # bool: transition.next_obs is the true next observation
    obs: jax.Array  # the observation acted on next (after auto-reset, a new episode's first)


@struct.dataclass
class Learned:
    """What one `learn` reports to the trainer."""

    loss_sum: jax.Array  # float32 (): summed loss of the updates taken
    updates: jax.Array  # int32 (): gradient updates taken
    diverged: jax.Array  # bool (): an update went non-finite and was refused


class Init(Protocol):
    def __call__(self, key: jax.Array, hparams: Any, obs: jax.Array) -> Any:
        """A member's agent state, from its key, dynamic settings and first observations (num_envs, ...)."""


class Act(Protocol):
    def __call__(self, agent: Any, obs: jax.Array, first: jax.Array, key: jax.Array, hparams: Any,
                 vector_steps: jax.Array, active: jax.Array) -> tuple[jax.Array, Any]:
        """(actions (num_envs,) int32, agent): `first` marks each env's first observation of an
        episode; where `active` is false the agent comes back unchanged."""


class Learn(Protocol):
    def __call__(self, agent: Any, rollout: Rollout, key: jax.Array, hparams: Any, vector_steps: jax.Array,
                 active: jax.Array) -> tuple[Any, Learned]:
        """(agent, what it learned) after a rollout of `rollout_steps` vector steps."""


class MemoryParts(NamedTuple):
    """What an agent holds, by part, as memory plans count it (`memory.plan`); the rest of
    the agent is counted as other state."""

    learner: Any  # parameters, target parameters, optimizer state
    replay: Any = ()  # the whole replay buffer (none: an algorithm without replay)
    storage: Any = None  # its array of stored transitions (rows, bytes per row)
    window: Any = ()  # the n-step window
    loss_pairs: int = 0  # pairs of atoms or quantiles one sample's loss compares (a distribution's K x K)


class Algorithm(NamedTuple):
    """One algorithm's pure functions for one static config (see the module docstring)."""

    q_function: QFunction  # its greedy Q-values: evaluation, policies, rendering
    rollout_steps: int  # vector steps collected between learns
    init: Init
    act: Act
    learn: Learn
    params: Callable  # agent -> the parameters the greedy policy uses
    epsilon: Callable  # (agent, hparams, vector_steps) -> the exploration rate acting uses now
    updates: Callable  # agent -> the gradient steps it has taken
    learning_rate: Callable  # (agent, hparams) -> the learning rate of its next gradient step
    memory_parts: Callable  # agent -> MemoryParts


def module(name: str):
    """The module of algorithm `name` (imported on first use)."""
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm = '{name}': must be one of {', '.join(ALGORITHMS)}")
    return importlib.import_module(f"qlax.algorithms.{ALGORITHMS[name]}")


def make(config, env) -> Algorithm:
    """The algorithm `config.algorithm` built for `config` and the vectorized `env`."""
    return module(config.algorithm).make(config, env)
