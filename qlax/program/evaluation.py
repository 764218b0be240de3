"""Greedy evaluation: epsilon = 0, one environment per episode, vmapped over members."""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qlax.components.networks import QFunction
from qlax.core.program_cache import ProgramCache
from qlax.envs import make_env

EVAL_STREAM = 0x5EED  # fold_in tag that separates evaluation keys from training keys
# Steps after which an episode of an environment without a time limit is cut in evaluation.
UNLIMITED_EPISODE_STEPS = 100_000
EVAL_BATCH = 1000  # greedy episodes a member runs side by side; more run in rounds


def episode_limit(spec) -> int:
    """The steps after which a greedy episode ends at the latest: the environment's time
    limit (`spec.max_episode_steps`), or `UNLIMITED_EPISODE_STEPS` where it has none."""
    return spec.max_episode_steps or UNLIMITED_EPISODE_STEPS


def make_evaluate(env_id: str, q_function: QFunction, num_episodes: int) -> Callable:
    """evaluate(key, params) -> (returns, lengths), each (num_episodes,), of complete greedy
    episodes; lengths in steps, so an episode that ran to the time limit is told apart.

    Runs the episodes side by side, at most EVAL_BATCH at a time, so their memory stays
    bounded however many are asked for: more run in equal rounds, one after another, each
    from its own key. Each runs until it has ended once (by termination or time limit);
    rewards after an env's first end are ignored. An environment without a time limit is
    cut after `UNLIMITED_EPISODE_STEPS` steps.
    """
    rounds = -(-num_episodes // EVAL_BATCH)
    per_round = -(-num_episodes // rounds)
    env = make_env(env_id, per_round)
    limit = episode_limit(env.spec)

    def episodes(key, params):
        k_reset, k_run = jax.random.split(key)
        obs, env_state = env.reset(k_reset)

        def not_all_done(carry):
            return ~jnp.all(carry[5]) & (carry[6] < limit)

        def step(carry):
            obs, env_state, key, returns, lengths, finished, t = carry
            key, k_step = jax.random.split(key)
            action = jnp.argmax(q_function.apply(params, obs), axis=-1).astype(jnp.int32)
            step = env.step(k_step, env_state, obs, action)
            returns = returns + jnp.where(finished, 0.0, step.score)
            lengths = lengths + jnp.where(finished, 0, 1)
            return step.obs, step.env_state, key, returns, lengths, finished | step.game_over, t + 1

        carry = (obs, env_state, k_run, jnp.zeros(per_round), jnp.zeros(per_round, jnp.int32),
                 jnp.zeros(per_round, bool), jnp.int32(0))
        return jax.lax.while_loop(not_all_done, step, carry)[3:5]

    def evaluate(key, params):
        if rounds == 1:
            return episodes(key, params)
        returns, lengths = jax.lax.map(lambda k: episodes(k, params), jax.random.split(key, rounds))
        return returns.reshape(-1)[:num_episodes], lengths.reshape(-1)[:num_episodes]

    return evaluate


_EVALUATORS: ProgramCache[Callable] = ProgramCache()


def evaluate_population(env_id: str, q_function: QFunction, params, keys: jax.Array,
                        num_episodes: int) -> tuple[jax.Array, jax.Array]:
    """Greedy (returns, lengths), each (members, num_episodes), for stacked `params` and one
    key per member.

    The jitted evaluation is made once per environment, Q-function and episode count, so
    a second run of the same program finds it compiled.
    """
    evaluator = _EVALUATORS.get((env_id, q_function, num_episodes),
                                lambda: jax.jit(jax.vmap(make_evaluate(env_id, q_function, num_episodes))))
    return evaluator(keys, params)


def evaluate_members(trainer, members, placement, params) -> tuple[np.ndarray, np.ndarray]:
    """Greedy (returns, lengths), each (members, eval_episodes), of a trainer's stacked
    `params`, placed over the devices by `placement` (a `sweep.Members`' own evaluation keys)."""
    config = trainer.config
    keys = placement.put(members.rng_keys(EVAL_STREAM))
    return placement.gather(evaluate_population(config.env, trainer.q_function, params, keys,
                                                config.eval_episodes))
