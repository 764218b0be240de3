"""DQN and its family: replay, n-step returns, a target network, and a value loss.

Every vector step the agent acts (an `exploration.Explorer` on the Q-values), the n-step
accumulator turns the step into transitions to store, the replay buffer stores them, and
when an update round is due (every `train_freq` env steps) the learner takes
`gradient_steps` updates on sampled batches. The parts are components with one interface
each (`replay.BUFFERS`, `exploration.EXPLORERS`, `nstep.accumulator`, `learner.TARGETS`);
what is learned is a `Values`: scalar Q-values here, distributions in `c51` and `qrdqn`,
which reuse everything else through `build`.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from qlax.algorithms.agent import AgentParts
from qlax.components import losses, networks, nstep
from qlax.components.contract import Algorithm, Learned, MemoryParts, Rollout, any_member
from qlax.components.exploration import EXPLORERS
from qlax.components.learner import LearnerState, Schedule, guarded, make_learner, schedule
from qlax.components.replay import BUFFERS
from qlax.core.types import Transition
from qlax.settings.config import ConfigError, HParams, TrainConfig


@struct.dataclass
class DQNState:
    learner: LearnerState
    replay: object  # a buffer of `replay.BUFFERS[config.replay]`
    window: nstep.NStepWindow | tuple  # the last n_step transitions per env; () when n_step is 1
    explore: object  # the explorer's state (ez-greedy's repeats); () if it keeps none
    obs_stats: object  # `normalization.ObsStats` of the standardized dimensions; () if none


class Values(NamedTuple):
    """How a DQN-family algorithm represents action values and learns them.

    outputs_per_action: 1 for a Q-value, the atoms or quantiles of a distribution;
    q_values(outputs) -> Q-values (the distribution's mean);
    loss(forward, batch, hp) -> (per-sample loss, per-sample priority), where `forward`
    holds the online outputs at obs, the bootstrap outputs at next_obs, and the Q-values
    that choose the next action;
    residual: bootstrap from the online parameters and differentiate through the target
    (the seed's residual gradient, `gradient: residual`); the distributional losses learn
    semi-gradient only;
    double_q: the online parameters choose the next action (`config.double_q`, where the
    algorithm reads it);
    target_at_obs: the loss also needs the target parameters' outputs at obs (M-DQN's
    log-policy bonus);
    fractions: IQN's quantile fractions, sampled anew by each pass of the network from its
    own key (`networks.QNetwork.fractions`); its outputs are then (quantiles, fractions);
    loss_pairs: how many pairs of atoms or quantiles a sample's loss compares (K x K for a
    distribution of K), which memory plans count (`MemoryParts.loss_pairs`).
    """

    outputs_per_action: int
    q_values: Callable
    loss: Callable
    residual: bool = False
    double_q: bool = False
    target_at_obs: bool = False
    fractions: int = 0
    loss_pairs: int = 0


class Forward(NamedTuple):
    outputs: jax.Array  # online, at obs
    next_outputs: jax.Array  # bootstrap parameters, at next_obs
    next_selector: jax.Array  # Q-values at next_obs that pick the next action, illegal actions at -inf
    target_outputs: jax.Array | None = None  # target parameters, at obs (where `Values.target_at_obs`)


def scalar_values(config: TrainConfig) -> Values:
    """Q-values with a squared or Huber TD penalty, plain or double Q targets."""

    def loss(forward: Forward, batch: Transition, hp: HParams):
        q = losses.select_action_values(forward.outputs, batch.action)
        discount = hp.gamma if batch.discount is None else batch.discount
        if config.double_q:
            y = losses.double_q_target(batch.reward, batch.terminated, forward.next_selector, forward.next_outputs,
                                       discount)
        else:  # the selector is the bootstrap Q-values themselves, masked
            y = losses.q_learning_target(batch.reward, batch.terminated, forward.next_selector, discount)
        if config.gradient == "semi":
            y = jax.lax.stop_gradient(y)
        td_error = q - y
        return losses.td_penalty(td_error, config.loss, hp.huber_delta), td_error

    return Values(outputs_per_action=1, q_values=lambda outputs: outputs, loss=loss,
                  residual=config.gradient == "residual", double_q=config.double_q)


def bootstrap_discount(batch: Transition, hp: HParams) -> jax.Array:
    """gamma (or an n-step transition's gamma^k), zero where the episode terminated."""
    discount = hp.gamma if batch.discount is None else batch.discount
    return discount * (1.0 - batch.terminated.astype(jnp.float32))


# What the DQN family reads (`config.owners`), and which component choices bring their own
# settings; c51 and qrdqn add their heads' and learn by their own losses (no `loss`, no
# residual `gradient`).
FAMILY_SETTINGS = ("lr", "gamma", "optimizer", "adam_eps", "max_grad_norm", "obs_stats", "buffer_size", "batch_size",
                   "replay", "learning_starts", "n_step", "gradient_steps", "train_freq", "warmup_random", "double_q",
                   "target", "lr_decay")
SETTINGS = (*FAMILY_SETTINGS, "gradient", "loss")


def check(config: TrainConfig) -> None:
    """Relations between the settings the DQN family reads."""
    for name, value in (("batch_size", config.batch_size), ("num_envs", config.num_envs),
                        ("learning_starts", config.learning_starts)):
        if value > config.buffer_size:
            why = {"batch_size": "must be at most the replay capacity",
                   "num_envs": "one vector step must fit in the replay buffer",
                   "learning_starts": "the buffer could never hold that many transitions"}[name]
            raise ConfigError(f"{name} ({value}) exceeds buffer_size ({config.buffer_size}): {why}")
    if config.learning_starts > config.total_steps:
        raise ConfigError(
            f"learning_starts ({config.learning_starts}) exceeds total_steps ({config.total_steps}): "
            f"no update would ever run; allowed range is 1..{config.total_steps}")
    if config.gradient_steps == 0:
        raise ConfigError("gradient_steps = 0: out of range, allowed -1 (one per env step of a round, SB3's -1) "
                          "or >= 1")
    if config.double_q and config.target == "online":
        raise ConfigError("double_q needs a target network: set target to 'periodic' or 'polyak'")
    if config.gradient == "residual" and config.target != "online":
        raise ConfigError(
            f"gradient 'residual' differentiates through the bootstrap target, which needs "
            f"target 'online' (got target '{config.target}')")


def make(config: TrainConfig, env) -> Algorithm:
    return build(config, env, scalar_values(config))


def passes_draw(config: TrainConfig, values: Values) -> bool:
    """Whether the network's passes draw random numbers (noisy layers, IQN's fractions), so
    that each learning pass needs its own key."""
    return EXPLORERS[config.exploration].noisy or values.fractions > 0


def updates_in_budget(config: TrainConfig, hp: HParams) -> jax.Array:
    """The gradient steps a member takes over the budget (lr_decay's horizon): a round for
    every multiple of env_steps_per_round that the vector steps cross from the one at which
    its buffer first holds learning_starts transitions (n-step windows and host envs that
    store fewer start a little later, so the rate stays a little above 0 at the end)."""
    n, per_round = config.num_envs, config.env_steps_per_round
    first = jnp.maximum((hp.learning_starts + n - 1) // n - 1, 0)  # the vector step that learns first
    rounds = (config.vector_steps * n) // per_round - (first * n) // per_round
    return jnp.maximum(rounds * config.updates_per_round, 1)


def rates(config: TrainConfig) -> Schedule:
    """The family's optimizer and learning rate: constant, or under lr_decay falling to 0 at
    `updates_in_budget`."""
    return schedule(config, lambda hp: updates_in_budget(config, hp))


def learner_for(config: TrainConfig, q_function: networks.QFunction, values: Values,
                optimizer: Callable[[HParams], optax.GradientTransformation] | None = None):
    """The learner of `values` on `q_function`: online outputs at obs, bootstrap outputs at
    next_obs (the target parameters, or the online ones for the residual gradient), and
    the online Q-values choosing the next action for double Q (else the bootstrap Q-values
    do), masked to the actions legal at next_obs, and the target outputs at obs where the
    values ask for them. With noisy layers (or IQN's sampled fractions) each pass draws with
    its own key. `optimizer(hp)` defaults to the family's (`rates`)."""
    residual = values.residual
    keyed = passes_draw(config, values)

    def loss(params, target_params, batch: Transition, hp: HParams, key):
        # One feature pass for obs and next_obs together: the features are never trained,
        # so the online and the target head share them.
        phi = q_function.features(params, jnp.concatenate([batch.obs, batch.next_obs]))
        phi_obs, phi_next = jnp.split(phi, 2)
        passes = 4 if values.target_at_obs else 3  # a key per pass
        k_online, k_next, k_select, k_target = (*jax.random.split(key, passes), None)[:4] if keyed else (None,) * 4
        next_outputs = q_function.head(params if residual else target_params, phi_next, k_next)
        if values.double_q:
            selector = jax.lax.stop_gradient(values.q_values(q_function.head(params, phi_next, k_select)))
        else:
            selector = values.q_values(next_outputs)
        selector = q_function.masked(selector, batch.next_obs)
        target_outputs = q_function.head(target_params, phi_obs, k_target) if values.target_at_obs else None
        return values.loss(Forward(q_function.head(params, phi_obs, k_online), next_outputs, selector, target_outputs),
                           batch, hp)

    return make_learner(loss, optimizer or rates(config).optimizer, config.target)


def build(config: TrainConfig, env, values: Values) -> Algorithm:
    """A DQN-family algorithm learning `values`, with the components `config` names."""
    q_function = networks.build(config, env.spec, values.outputs_per_action, values.q_values, values.fractions)
    buffer = BUFFERS[config.replay]
    parts = AgentParts.build(config, env.spec, q_function)
    accumulator = nstep.accumulator(config.n_step)
    budget = config.vector_steps
    per_round = config.env_steps_per_round
    max_updates = math.ceil(config.num_envs / per_round) * config.updates_per_round
    fixed_cadence = per_round == config.num_envs  # exactly one round every vector step
    family_rates = rates(config)
    learner = learner_for(config, q_function, values, family_rates.optimizer)
    draws = passes_draw(config, values)

    def init(key: jax.Array, hp: HParams, obs: jax.Array) -> DQNState:
        num_envs = obs.shape[0]
        params, obs_stats = parts.init_params(key, hp, obs)
        one_step = Transition(obs=obs, action=jnp.zeros(num_envs, jnp.int32), reward=jnp.zeros(num_envs),
                              next_obs=obs, terminated=jnp.zeros(num_envs, bool))
        example = jax.tree.map(lambda x: x[0], accumulator.stored_example(one_step))
        return DQNState(learner=learner.init(params, hp), replay=buffer.init(example, config.buffer_size),
                        window=accumulator.init(one_step), explore=parts.explorer.init(num_envs), obs_stats=obs_stats)

    def epsilon(agent: DQNState, hp: HParams, vector_steps: jax.Array) -> jax.Array:
        eps = parts.scheduled_epsilon(hp, vector_steps)
        if config.warmup_random:
            eps = jnp.where(buffer.can_sample(agent.replay, hp.learning_starts), eps, 1.0)
        return eps

    def act(agent: DQNState, obs, first, key, hp: HParams, vector_steps, active):
        noise = None
        if parts.explorer.noisy:
            key, noise = jax.random.split(key)
        # A noisy network still acts at random until learning starts where warmup_random asks it to
        warmup = EXPLORERS["epsilon_greedy"] if parts.explorer.noisy and config.warmup_random else None
        actions, explore = parts.act(agent.learner.params, agent.explore, obs, first, key, noise,
                                     epsilon(agent, hp, vector_steps), hp, active, warmup)
        return actions, agent.replace(explore=explore)

    def learn_rounds(learner_state: LearnerState, buf, key: jax.Array, updates_due: jax.Array, ready: jax.Array,
                     hp: HParams, beta: jax.Array):
        """The first `updates_due` of `max_updates` updates, each on a fresh batch.

        Returns (state, summed loss, buffer with its priorities updated). With a fixed
        cadence every update is due and none is masked. Otherwise the updates run only
        where some member of the population is `ready` (due one: `any_member`), so nothing
        runs between the rounds of a train_freq longer than a vector step; the updates past
        a member's `updates_due` are computed and dropped (a static loop length keeps it
        vmappable). A fixed cadence computes its updates before learning_starts too, and
        drops them: skipping them would cost a collective across devices every vector step.
        The buffer is carried through the updates only when learning writes priorities.
        """

        def one_update(carry, xs):
            state, carried, loss_sum = carry
            k, i = xs
            source = carried if buffer.learns_priorities else buf
            k_sample, k_loss = jax.random.split(k) if draws else (k, None)
            batch, rows, weights = buffer.sample(source, k_sample, config.batch_size, beta)
            new_state, value, priorities = learner.update(state, batch, hp, weights, k_loss)
            new_carried = buffer.update(carried, rows, priorities, hp.per_alpha) if buffer.learns_priorities else ()
            if fixed_cadence:
                return (new_state, new_carried, loss_sum + value), None
            due = i < updates_due
            keep_due = lambda new, old: jnp.where(due, new, old)  # noqa: E731
            kept_buffer = buffer.keep_learned(due, new_carried, carried) if buffer.learns_priorities else ()
            return (jax.tree.map(keep_due, new_state, state), kept_buffer, loss_sum + jnp.where(due, value, 0.0)), None

        xs = (jax.random.split(key, max_updates), jnp.arange(max_updates))
        carried = buf if buffer.learns_priorities else ()
        updates = lambda carry: jax.lax.scan(one_update, carry, xs)[0]  # noqa: E731
        carry = (learner_state, carried, jnp.float32(0.0))
        if fixed_cadence:
            learner_state, carried, loss_sum = updates(carry)
        else:  # between rounds, where no member is due an update, none runs
            learner_state, carried, loss_sum = jax.lax.cond(any_member(ready), updates, lambda carry: carry, carry)
        return learner_state, loss_sum, carried if buffer.learns_priorities else buf

    def rounds_due(vector_steps: jax.Array) -> jax.Array:
        """Update rounds whose env-step mark this vector step crosses (multiples of per_round)."""
        before = vector_steps * config.num_envs
        return (before + config.num_envs) // per_round - before // per_round

    def learn(agent: DQNState, rollout: Rollout, key, hp: HParams, vector_steps, active):
        step = jax.tree.map(lambda x: x[0], rollout)  # rollout_steps is 1
        window, stored, storable = accumulator.step(agent.window, step.transition, step.done, step.known, hp.gamma)
        # A transition whose next observation is unknown (a time limit in an env without
        # final observations) is not stored: neither bootstrapping from a reset observation
        # nor calling the cut terminal would be right.
        buf = buffer.add(agent.replay, stored, mask=active & storable)
        updates_due = rounds_due(vector_steps) * config.updates_per_round
        ready = active & buffer.can_sample(buf, hp.learning_starts) & (updates_due > 0)
        beta = hp.per_beta + (1.0 - hp.per_beta) * jnp.minimum(vector_steps / budget, 1.0)
        new_learner, loss_sum, learned_buffer = learn_rounds(agent.learner, buf, key, updates_due, ready, hp, beta)
        learner_state, accept, diverged = guarded(ready, new_learner, agent.learner, loss_sum)
        buf = buffer.keep_learned(accept, learned_buffer, buf) if buffer.learns_priorities else buf
        refresh = active if config.obs_stats == "always" else \
            active & ~buffer.can_sample(buf, hp.learning_starts)  # warmup: until learning starts
        learner_state, obs_stats = parts.refresh_stats(learner_state, agent.obs_stats, step.obs, refresh)
        window = jax.tree.map(lambda new, old: jnp.where(active, new, old), window, agent.window)
        agent = DQNState(learner=learner_state, replay=buf, window=window, explore=agent.explore, obs_stats=obs_stats)
        return agent, Learned(loss_sum=jnp.where(accept, loss_sum, 0.0), updates=jnp.where(accept, updates_due, 0),
                              diverged=diverged)

    return Algorithm(q_function=q_function, rollout_steps=1, init=init, act=act, learn=learn,
                     params=lambda agent: agent.learner.params, epsilon=epsilon,
                     updates=lambda agent: agent.learner.updates,
                     learning_rate=lambda agent, hp: family_rates.learning_rate(hp, agent.learner.updates),
                     memory_parts=lambda agent: MemoryParts(learner=agent.learner, replay=agent.replay,
                                                            storage=buffer.storage(agent.replay), window=agent.window,
                                                            loss_pairs=values.loss_pairs))
