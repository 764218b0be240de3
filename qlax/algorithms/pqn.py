"""PQN: parallelised Q-networks (Gallici et al., "Simplifying Deep Temporal Difference
Learning", ICLR 2025). No replay buffer and no target network.

The agent acts for `num_steps` vector steps, computes Q(lambda) returns over that rollout
with its current network, then runs `num_epochs` epochs of `num_minibatches` minibatch
updates towards them. A layer-normed network keeps this stable without a target.

Episode ends are where others go wrong: purejaxql and rejax fold a time limit into
`done` and stop the return there as if the episode had terminated. Here a time limit
bootstraps from the final observation (the transition's next_obs) and only termination
stops the return; a step whose next observation is unknown (an environment without final
observations) cuts the return before it and is left out of the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from qlax.algorithms.agent import AgentParts
from qlax.components import losses, networks
from qlax.components.contract import Algorithm, Learned, MemoryParts, Rollout
from qlax.components.learner import LearnerState, guarded, make_learner, schedule
from qlax.settings.config import ConfigError, HParams, TrainConfig


@struct.dataclass
class PQNState:
    learner: LearnerState  # target "online": the bootstrap parameters are the parameters
    explore: object  # the explorer's state; () if it keeps none
    obs_stats: object  # `normalization.ObsStats` of the standardized dimensions; () if none


@struct.dataclass
class Sample:
    """One step of a rollout with its Q(lambda) return, flattened over time and envs."""

    obs: jax.Array
    action: jax.Array
    target: jax.Array  # the lambda-return, held fixed
    weight: jax.Array  # 0 for a step whose next observation is unknown


# What PQN reads (`config.owners`): no replay, no target network; learning_starts only
# says how long observation statistics warm up (obs_stats warmup).
SETTINGS = ("lr", "gamma", "optimizer", "adam_eps", "max_grad_norm", "obs_stats", "learning_starts", "num_steps",
            "num_epochs", "num_minibatches", "td_lambda", "lr_decay", "loss")


def check(config: TrainConfig) -> None:
    """Relations between the settings PQN reads."""
    samples = config.num_steps * config.num_envs
    if samples % config.num_minibatches:
        raise ConfigError(
            f"num_minibatches ({config.num_minibatches}) must divide num_steps x num_envs "
            f"({config.num_steps} x {config.num_envs} = {samples})")


def lambda_targets(rollout: Rollout, next_q: jax.Array, hp: HParams) -> tuple[jax.Array, jax.Array]:
    """(Q(lambda) returns (T, num_envs), sample weights) of a rollout, given max-able
    Q-values at each transition's next observation, (T, num_envs, num_actions), masked to
    its legal actions (`QFunction.apply`)."""
    transition = rollout.transition
    discount = hp.gamma * (1.0 - transition.terminated.astype(jnp.float32))
    # Continue past step t only within an episode, and only into a step whose own next
    # observation is known (else its bootstrap value would be a reset observation's).
    known_next = jnp.concatenate([rollout.known[1:], jnp.ones_like(rollout.known[:1])])
    lambda_ = hp.td_lambda * (~rollout.done & known_next).astype(jnp.float32)
    returns = losses.lambda_returns(transition.reward, discount, jnp.max(next_q, axis=-1), lambda_)
    return returns, rollout.known.astype(jnp.float32)


def make(config: TrainConfig, env) -> Algorithm:
    q_function = networks.build(config, env.spec)
    parts = AgentParts.build(config, env.spec, q_function)
    noisy = parts.explorer.noisy
    rollouts = -(-config.vector_steps // config.num_steps)
    total_updates = rollouts * config.num_epochs * config.num_minibatches
    rates = schedule(config, lambda hp: total_updates)

    def loss(params, target_params, batch: Sample, hp: HParams, key):
        q = losses.select_action_values(q_function.outputs(params, batch.obs, key), batch.action)
        td_error = q - batch.target
        return losses.td_penalty(td_error, config.loss, hp.huber_delta), td_error

    learner = make_learner(loss, rates.optimizer, "online")

    def init(key, hp: HParams, obs) -> PQNState:
        params, obs_stats = parts.init_params(key, hp, obs)
        return PQNState(learner=learner.init(params, hp), explore=parts.explorer.init(obs.shape[0]),
                        obs_stats=obs_stats)

    def epsilon(agent: PQNState, hp: HParams, vector_steps) -> jax.Array:
        return parts.scheduled_epsilon(hp, vector_steps)

    def act(agent: PQNState, obs, first, key, hp: HParams, vector_steps, active):
        key, k_noise = jax.random.split(key)  # drawn every step, noisy or not
        actions, explore = parts.act(agent.learner.params, agent.explore, obs, first, key, k_noise if noisy else None,
                                     epsilon(agent, hp, vector_steps), hp, active)
        return actions, agent.replace(explore=explore)

    def learn(agent: PQNState, rollout: Rollout, key, hp: HParams, vector_steps, active):
        steps, num_envs = rollout.done.shape
        flat = lambda x: x.reshape((steps * num_envs,) + x.shape[2:])  # noqa: E731
        next_q = q_function.apply(agent.learner.params, flat(rollout.transition.next_obs))
        returns, weights = lambda_targets(rollout, next_q.reshape(steps, num_envs, -1), hp)
        samples = Sample(obs=flat(rollout.transition.obs), action=flat(rollout.transition.action),
                         target=jax.lax.stop_gradient(flat(returns)), weight=flat(weights))

        def epoch(carry, k):
            k_perm, k_noise = jax.random.split(k)
            order = jax.random.permutation(k_perm, steps * num_envs)
            minibatches = jax.tree.map(lambda x: x[order].reshape((config.num_minibatches, -1) + x.shape[1:]),
                                       samples)

            def update(carry, xs):
                state, loss_sum = carry
                batch, k_batch = xs
                state, value, _ = learner.update(state, batch, hp, batch.weight, k_batch if noisy else None)
                return (state, loss_sum + value), None

            keys = jax.random.split(k_noise, config.num_minibatches)
            return jax.lax.scan(update, carry, (minibatches, keys))[0], None

        (new_learner, loss_sum), _ = jax.lax.scan(epoch, (agent.learner, jnp.float32(0.0)),
                                                  jax.random.split(key, config.num_epochs))
        learner_state, accept, diverged = guarded(active, new_learner, agent.learner, loss_sum)
        env_steps = vector_steps * num_envs
        refresh = active if config.obs_stats == "always" else active & (env_steps < hp.learning_starts)
        learner_state, obs_stats = parts.refresh_stats(learner_state, agent.obs_stats, flat(rollout.obs), refresh)
        updates = config.num_epochs * config.num_minibatches
        return agent.replace(learner=learner_state, obs_stats=obs_stats), Learned(
            loss_sum=jnp.where(accept, loss_sum, 0.0), updates=jnp.where(accept, updates, 0), diverged=diverged)

    return Algorithm(q_function=q_function, rollout_steps=config.num_steps, init=init, act=act, learn=learn,
                     params=lambda agent: agent.learner.params, epsilon=epsilon,
                     updates=lambda agent: agent.learner.updates,
                     learning_rate=lambda agent, hp: rates.learning_rate(hp, agent.learner.updates),
                     memory_parts=lambda agent: MemoryParts(learner=agent.learner))
