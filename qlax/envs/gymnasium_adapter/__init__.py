"""Gymnasium environments stepped on the host from inside the compiled trainer.

    gymnasium:CartPole-v1           any id Gymnasium makes; its copies in one SyncVectorEnv
    gymnasium:CartPole-v1@async     the copies spread over worker processes, one per CPU core
    gymnasium:FrozenLake-v1         a table environment (FrozenLake, Taxi, CliffWalking as
                                    Gymnasium makes them) is stepped compiled, from its own
                                    transition table (`tables`); @sync or @async steps it on the host
    gymnasium:my.module:factory     `factory()` builds one environment; a factory with a
                                    `num_envs` parameter builds the whole vector env itself
                                    (any autoreset mode, Gymnasium's AsyncVectorEnv, ...)
    qlax.train(config, env=obj)     a `gymnasium.Env` object (`object:NAME`): its copies are
                                    deep copies of it, wrappers and attributes as they stand,
                                    else re-made from its `env.spec`; stepped in this process

The object itself is never stepped. A `gymnasium.vector.VectorEnv` object is refused: its
number of copies is fixed, while qlax needs members x num_envs of them to train and other
counts to evaluate (a factory taking `num_envs` builds a vector env of any size).

Acting, learning and the replay buffer stay compiled on the device. Each vector step is one
host call (`jax.pure_callback`, batched over the population with vmap_method
"broadcast_all"), which steps every member's environments at once as one Gymnasium vector
env of members x num_envs copies: seeds train as one larger vector environment. Each
`make` owns its host copies (the greedy evaluation's are not the training ones), one vector
env per population size, made on first use.

Autoreset: qlax builds its vector envs in SAME_STEP mode (the ended copy's final observation
comes in `info["final_obs"]`, the observation returned is already the next episode's), the
cheapest. A vector env built by a factory may use any mode:
  NEXT_STEP  the step after an end resets the copy and ignores its action: that step is no
             transition (next_obs_known false, done false, reward and score 0) and its
             observation is a new episode's first;
  SAME_STEP  the final observation comes from info["final_obs"] where info["_final_obs"];
  DISABLED   qlax resets the ended copies itself, reset(options={"reset_mask": ended}).
Either way the learner sees the true final observation as next_obs, termination apart from
a time limit. A wrapper that learns from something else than it reports (Atari's clipped
rewards, a lost life as an end) puts the game's reward in info[vector.SCORE_KEY] and the game's
end in info[vector.GAME_OVER_KEY]; returns count those.

Seeds: each reset seeds its copies with integers drawn from the reset key, so one config
and seed give the same run. The device holds only a token per member naming the host's
episodes; a checkpoint cannot hold a host environment, so a resumed run (`VecEnv.restart`)
starts fresh episodes: its first vector step is a reset step, as in NEXT_STEP.

By job: `source` (names, copies, spaces), `saved_spec` (an object's spec saved and re-made),
`observations` (flat rows), `vector` (autoreset modes, the packed records), `pool` (worker
processes), `host` (the callbacks' host side), `tables` (table environments compiled),
`rendering`; this module is the adapter the registry (`qlax.envs.SOURCES`) names: `spec`
and `make`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from qlax.core.errors import short
from qlax.core.types import Transition
from qlax.envs import jax_adapter
from qlax.envs.base import EnvError, EnvSpec, EnvStep, VecEnv
from qlax.envs.gymnasium_adapter.host import Host
from qlax.envs.gymnasium_adapter.observations import observation_dtype
from qlax.envs.gymnasium_adapter.source import described, source_of
from qlax.envs.gymnasium_adapter.tables import table_of
from qlax.envs.gymnasium_adapter.vector import Record, packed_width


def spec(env_id: str, env=None) -> EnvSpec:
    """Spaces, time limit and reward threshold of `gymnasium:env_id` (of the Gymnasium
    environment object `env`, registered as env_id), checked for Q-learning."""
    source = source_of(env_id, env)
    obs_space, action_space, limit, threshold = described(source)
    found = jax_adapter.spaces_spec(source.name, obs_space, action_space, limit, threshold,
                                    host=table_of(source) is None)
    return dataclasses.replace(found, obs_dtype=observation_dtype(obs_space).name)


def _seeds(key: jax.Array, num_envs: int) -> jax.Array:
    """Integer seeds for the copies' resets, drawn from `key`."""
    return jax.random.bits(key, (num_envs,), jnp.uint32)


def make(env_id: str, num_envs: int, env=None) -> VecEnv:
    """`num_envs` copies per member (of the object `env`, registered as env_id), stepped on the
    host by one callback per vector step (a table environment: compiled, `tables`)."""
    source = source_of(env_id, env)
    env_spec = spec(env_id, env)
    if (table := table_of(source)) is not None:
        return jax_adapter.vectorize(table, env_spec, num_envs)
    if jax.process_count() > 1:
        raise EnvError(f"env = {short(source.name)}: Gymnasium environments are stepped on this host; a run "
                       f"of several processes cannot step them")
    host = Host(source, num_envs)
    obs_dtype = host.dtype  # the spec's too: frames travel as bytes
    obs = jax.ShapeDtypeStruct((num_envs, env_spec.obs_dim), obs_dtype)
    token = jax.ShapeDtypeStruct((), jnp.uint32)
    packed = (jax.ShapeDtypeStruct((num_envs, packed_width(env_spec.obs_dim, obs_dtype)), jnp.uint8),
              jax.ShapeDtypeStruct((num_envs, 5), jnp.bool_))

    def reset(key):
        return jax.pure_callback(host.reset, (obs, token), _seeds(key, num_envs), vmap_method="broadcast_all")

    def step(key, env_state, obs_now, action):
        action = action.astype(jnp.int32)
        seeds_actions = jnp.stack([_seeds(key, num_envs), action.astype(jnp.uint32)], axis=-1)
        values, flags, new_token = jax.pure_callback(host.step, (*packed, token), seeds_actions, env_state,
                                                     vmap_method="broadcast_all")
        record = Record.unpacked(values, flags, env_spec.obs_dim, obs_dtype)
        transition = Transition(obs=obs_now, action=action, reward=record.reward, next_obs=record.next_obs,
                                terminated=record.terminated)
        return EnvStep(record.obs, new_token, transition, record.done, record.known, record.first,
                       record.score, record.game_over)

    return VecEnv(spec=env_spec, num_envs=num_envs, reset=reset, step=step, restart=jnp.zeros_like)
