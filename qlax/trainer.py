"""The pure training program: one member's state and a compiled chunk of vector steps.

`make_train(config)` composes the leaves (environment, Q-function, replay, exploration,
learner) into `Trainer.init(key, hparams) -> TrainState` and `Trainer.run_chunk(state) ->
(state, ChunkMetrics)`, a `lax.scan` over `config.chunk_steps` vector steps. Nothing in
it calls back to the host. A population (seeds, or seeds x settings of a sweep) is the
same functions under `jax.vmap`, its member axis sharded over the devices (`placement`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from qlax import episodes, normalization, nstep, prioritized, replay
from qlax.config import DYNAMIC_SETTINGS, ConfigError, HParams, TrainConfig, static_key
from qlax.envs import VecEnv, make_env
from qlax.evaluate import make_evaluate
from qlax.exploration import Repeat, epsilon_greedy, epsilon_schedule, ez_greedy, init_repeat
from qlax.learner import Learner, LearnerState, make_learner
from qlax.placement import Placement
from qlax.qfunctions import QFunction, linear_rbf, mlp
from qlax.types import Transition


@struct.dataclass
class TrainState:
    """Everything a member trains with and on: its dynamic settings and all that changes."""

    hparams: HParams  # the member's dynamic settings; constant through a run
    learner: LearnerState
    replay: replay.ReplayState | prioritized.PrioritizedState
    env_state: object
    obs: jax.Array  # (num_envs, obs_dim)
    key: jax.Array
    vector_steps: jax.Array  # int32 (): vector steps taken
    stats: episodes.EpisodeStats
    window: nstep.NStepWindow | tuple  # the last n_step transitions per env; () when n_step is 1
    stopped: jax.Array  # bool (): early-stopped; the state is frozen from then on
    diverged: jax.Array  # bool (): an update went non-finite; frozen at the last finite state
    obs_stats: normalization.ObsStats | tuple  # moments of unbounded observation dims; () if none
    repeat: Repeat | tuple  # exploration ez_greedy: the random actions being repeated; () otherwise


@struct.dataclass
class ChunkMetrics:
    """What the host sees after a chunk (one value per member)."""

    env_steps: jax.Array
    epsilon: jax.Array
    avg_return_100: jax.Array
    episodes: jax.Array
    loss: jax.Array  # mean over the chunk's gradient steps; NaN if none ran
    stopped: jax.Array
    diverged: jax.Array
    greedy_return: jax.Array  # stop_on greedy: the chunk's greedy check; NaN otherwise


GREEDY_CHECK_STREAM = 0x6EED  # fold_in tag of the greedy checks' keys


class Trainer(NamedTuple):
    config: TrainConfig
    env: VecEnv
    q_function: QFunction
    learner: Learner
    init: Callable  # (key, HParams) -> TrainState
    run_chunk: Callable  # TrainState -> (TrainState, ChunkMetrics)
    observe: Callable  # TrainState -> ChunkMetrics (loss NaN): the numbers of a state as it stands


def observation_bounds(config: TrainConfig, env: VecEnv) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per observation dimension: the settings', else the observation space's;
    [-1, 1] everywhere (the identity scaling) for `obs_scaling: none`."""
    spec = env.spec
    if config.obs_scaling == "none":
        return -np.ones(spec.obs_dim, np.float32), np.ones(spec.obs_dim, np.float32)
    for name in ("obs_low", "obs_high"):
        given = getattr(config, name)
        if given is not None and len(given) != spec.obs_dim:
            raise ConfigError(f"{name} = {given}: env '{spec.id}' needs {spec.obs_dim} numbers")
    low = np.asarray(config.obs_low if config.obs_low is not None else spec.obs_low, np.float32)
    high = np.asarray(config.obs_high if config.obs_high is not None else spec.obs_high, np.float32)
    return low, high


def make_q_function(config: TrainConfig, env: VecEnv) -> QFunction:
    spec = env.spec
    low, high = observation_bounds(config, env)
    if config.q_function == "mlp":
        return mlp(spec.obs_dim, spec.num_actions, config.hidden_sizes, config.activation,
                   config.layer_norm, config.dueling, low, high)
    return linear_rbf(spec.obs_dim, spec.num_actions, config.num_centers, low, high)


def make_optimizer(hp: HParams) -> optax.GradientTransformation:
    """Adam at hp.lr after global-norm clipping at hp.max_grad_norm (inf: clipping is a no-op)."""
    return optax.chain(optax.clip_by_global_norm(hp.max_grad_norm), optax.adam(hp.lr))


def solve_threshold(config: TrainConfig, env: VecEnv) -> float | None:
    return config.solve_threshold if config.solve_threshold is not None else env.spec.solve_threshold


_PROGRAMS: dict[str, Trainer] = {}


def make_train(config: TrainConfig) -> Trainer:
    """The pure training program for `config` (validated again here).

    The program depends on the static settings only: configs that differ in dynamic
    settings (or only in seeds) get the very same functions, so whatever JAX compiled
    for one serves the others. The dynamic values come from each member's `HParams`.
    """
    config = config.validated()
    key = static_key(config)
    if key not in _PROGRAMS:
        # Dynamic settings blanked: a stray read of one inside the program fails loudly.
        _PROGRAMS[key] = _build(dataclasses.replace(config, **dict.fromkeys(DYNAMIC_SETTINGS)))
    return _PROGRAMS[key]._replace(config=config)


def _build(config: TrainConfig) -> Trainer:
    env = make_env(config.env, config.num_envs)
    q_function = make_q_function(config, env)
    learner = make_learner(q_function, make_optimizer, loss=config.loss, gradient=config.gradient,
                           target=config.target, double_q=config.double_q)
    epsilon = epsilon_schedule(config.eps_schedule)
    threshold = solve_threshold(config, env)
    early_stop = config.early_stop and threshold is not None
    stop_on_average = early_stop and config.stop_on == "train_average"
    check_greedy = early_stop and config.stop_on == "greedy"
    greedy_returns = make_evaluate(config.env, q_function, config.stop_eval_episodes) if check_greedy else None
    budget = config.vector_steps
    terminal_on_truncation = config.truncation == "terminal"
    per = config.replay == "prioritized"
    extended = config.exploration == "ez_greedy"
    buffer_module = prioritized if per else replay
    # The dimensions scaled by running statistics: all of them, or those without finite bounds.
    bounded = normalization.bounded(*observation_bounds(config, env))
    standardized = np.ones_like(bounded) if config.obs_scaling == "statistics" else ~bounded
    track_stats = bool(standardized.any())  # else every dimension has fixed bounds

    def rescaled(params, stats: normalization.ObsStats):
        """`params` scaling the standardized observation dimensions by `stats`."""
        return {**params, "obs_scale": normalization.with_stats(params["obs_scale"], stats, standardized)}

    def epsilon_at(vector_steps: jax.Array, hp: HParams) -> jax.Array:
        return epsilon(vector_steps, hp.eps_start, hp.eps_end, hp.eps_decay, hp.eps_decay_steps)

    def init(key: jax.Array, hparams: HParams) -> TrainState:
        k_q, k_env, k_run = jax.random.split(key, 3)
        params = q_function.init(k_q, hparams)
        obs, env_state = env.reset(k_env)
        obs_stats = normalization.update_stats(normalization.init_stats(env.spec.obs_dim), obs) if track_stats else ()
        if track_stats:
            params = rescaled(params, obs_stats)
        one_step = Transition(obs=obs, action=jnp.zeros(config.num_envs, jnp.int32),
                              reward=jnp.zeros(config.num_envs), next_obs=obs,
                              terminated=jnp.zeros(config.num_envs, bool))
        stored = one_step if config.n_step == 1 else one_step.replace(discount=jnp.zeros(config.num_envs))
        example = jax.tree.map(lambda x: x[0], stored)
        return TrainState(
            hparams=hparams,
            learner=learner.init(params, hparams),
            replay=buffer_module.init(example, config.buffer_size),
            env_state=env_state,
            obs=obs,
            key=k_run,
            vector_steps=jnp.int32(0),
            stats=episodes.init(config.num_envs),
            window=nstep.init(one_step, config.n_step) if config.n_step > 1 else (),
            stopped=jnp.bool_(False),
            diverged=jnp.bool_(False),
            obs_stats=obs_stats,
            repeat=init_repeat(config.num_envs) if extended else (),
        )

    per_round = config.env_steps_per_round
    max_updates = math.ceil(config.num_envs / per_round) * config.gradient_steps
    fixed_cadence = per_round == config.num_envs  # exactly one round every vector step

    def learn(learner_state: LearnerState, buffer, key: jax.Array, updates_due: jax.Array, hp: HParams,
              beta: jax.Array):
        """The first `updates_due` of `max_updates` updates, each on a fresh batch.

        Returns (state, summed loss, buffer with its priorities updated). With a fixed
        cadence every update is due and no masking is needed; otherwise the updates past
        `updates_due` are computed and dropped (a static loop length keeps it vmappable).
        """

        def one_update(carry, xs):
            state, buf, loss_sum = carry  # buf: the buffer, carried only when priorities change
            k, i = xs
            if per:
                batch, rows, weights = prioritized.sample(buf, k, config.batch_size, beta)
                new_state, loss, td_error = learner.update(state, batch, hp, weights)
                new_buf = prioritized.update_priorities(buf, rows, td_error, hp.per_alpha)
            else:
                new_state, loss, _ = learner.update(state, replay.sample(buffer, k, config.batch_size), hp)
                new_buf = buf
            if fixed_cadence:
                return (new_state, new_buf, loss_sum + loss), None
            due = i < updates_due
            keep_due = lambda new, old: jnp.where(due, new, old)  # noqa: E731
            return (jax.tree.map(keep_due, new_state, state), _select_priorities(due, new_buf, buf),
                    loss_sum + jnp.where(due, loss, 0.0)), None

        xs = (jax.random.split(key, max_updates), jnp.arange(max_updates))
        carried = buffer if per else ()
        (learner_state, carried, loss_sum), _ = jax.lax.scan(
            one_update, (learner_state, carried, jnp.float32(0.0)), xs)
        return learner_state, loss_sum, carried if per else buffer

    def rounds_due(vector_steps: jax.Array) -> jax.Array:
        """Update rounds whose env-step mark this vector step crosses (multiples of per_round)."""
        before = vector_steps * config.num_envs
        return (before + config.num_envs) // per_round - before // per_round

    def vector_step(state: TrainState, _):
        hp = state.hparams
        key, k_act, k_env, k_learn = jax.random.split(state.key, 4)
        active = ~state.stopped & ~state.diverged & (state.vector_steps < budget)
        eps = epsilon_at(state.vector_steps, hp)
        if config.warmup_random:
            eps = jnp.where(replay.can_sample(state.replay, hp.learning_starts), eps, 1.0)
        q = q_function.apply(state.learner.params, state.obs)
        if extended:
            action, repeat = ez_greedy(k_act, q, eps, state.repeat, hp.ez_mu)
        else:
            action, repeat = epsilon_greedy(k_act, q, eps), ()
        obs, env_state, transition, done, known = env.step(k_env, state.env_state, state.obs, action)
        if extended:  # a new episode starts on coins
            repeat = repeat.replace(left=jnp.where(done, 0, repeat.left))
        if terminal_on_truncation:  # the seed's rule: a cut is an end, whatever came next
            transition, known = transition.replace(terminated=done), jnp.ones_like(known)
        if config.n_step > 1:
            window = nstep.push(state.window, transition, done, known)
            stored, storable = nstep.emit(window, hp.gamma)
        else:
            window, stored, storable = (), transition, known
        # A transition whose next observation is unknown (a time limit in an env without
        # final observations) is not stored: neither bootstrapping from a reset observation
        # nor calling the cut terminal would be right.
        buffer = buffer_module.add(state.replay, stored, mask=active & storable)

        updates_due = rounds_due(state.vector_steps) * config.gradient_steps
        ready = active & replay.can_sample(buffer, hp.learning_starts) & (updates_due > 0)
        beta = hp.per_beta + (1.0 - hp.per_beta) * jnp.minimum(state.vector_steps / budget, 1.0)
        new_learner, loss_sum, learned_buffer = learn(state.learner, buffer, k_learn, updates_due, hp, beta)
        finite = jnp.isfinite(loss_sum) & all_finite(new_learner.params)
        accept = ready & finite  # a non-finite update is never taken: the seed freezes instead
        learner_state = jax.tree.map(lambda new, old: jnp.where(accept, new, old),
                                     new_learner, state.learner)
        buffer = _select_priorities(accept, learned_buffer, buffer)
        obs_stats = state.obs_stats
        if track_stats:
            refresh = active if config.obs_stats == "always" else \
                active & ~replay.can_sample(buffer, hp.learning_starts)  # warmup: until learning starts
            obs_stats = jax.tree.map(lambda new, old: jnp.where(refresh, new, old),
                                     normalization.update_stats(obs_stats, obs), obs_stats)
            learner_state = learner_state.replace(params=rescaled(learner_state.params, obs_stats),
                                                  target_params=rescaled(learner_state.target_params, obs_stats))
        stats = episodes.update(state.stats, transition.reward, done)
        solved = episodes.window_full(stats) & (episodes.average_return(stats) >= threshold) \
            if stop_on_average else jnp.bool_(False)

        stepped = TrainState(hp, learner_state, buffer, env_state, obs, key,
                             state.vector_steps + 1, stats, window, solved, ready & ~finite, obs_stats, repeat)
        # A stopped or finished seed keeps its state. The buffer (masked in `add`) and the
        # learner (selected by `accept`, which implies `active`) are left out of this select,
        # so no step copies them twice.
        kept = jax.tree.map(lambda new, old: jnp.where(active, new, old),
                            stepped.replace(replay=(), learner=()), state.replace(replay=(), learner=()))
        new_state = kept.replace(replay=buffer, learner=learner_state)
        updates_run = jnp.where(accept, updates_due, 0)
        return new_state, (jnp.where(accept, loss_sum, 0.0), updates_run)

    def observe(state: TrainState, loss: jax.Array | float = math.nan,
                greedy: jax.Array | float = math.nan) -> ChunkMetrics:
        return ChunkMetrics(
            env_steps=state.vector_steps * config.num_envs,
            epsilon=epsilon_at(state.vector_steps, state.hparams),
            avg_return_100=episodes.average_return(state.stats),
            episodes=state.stats.episodes,
            loss=jnp.asarray(loss, jnp.float32),
            stopped=state.stopped,
            diverged=state.diverged,
            greedy_return=jnp.asarray(greedy, jnp.float32),
        )

    def greedy_check(state: TrainState, was_active: jax.Array) -> tuple[TrainState, jax.Array]:
        """stop_on greedy: greedy episodes after the chunk; a member that was training stops when
        their mean, less stop_eval_z standard errors, reaches the threshold. The episodes draw
        from their own key stream, apart from training's. Returns (state, the mean)."""
        key = jax.random.fold_in(state.key, GREEDY_CHECK_STREAM)
        returns = greedy_returns(key, state.learner.params)
        mean = jnp.mean(returns)
        bound = mean - config.stop_eval_z * jnp.std(returns) / math.sqrt(config.stop_eval_episodes)
        solved = was_active & ~state.diverged & (bound >= threshold)
        return state.replace(stopped=state.stopped | solved), mean

    def run_chunk(state: TrainState):
        was_active = ~state.stopped & ~state.diverged & (state.vector_steps < budget)
        state, (loss_sums, updates_run) = jax.lax.scan(vector_step, state, None, length=config.chunk_steps)
        total_updates = jnp.sum(updates_run)
        loss = jnp.where(total_updates > 0, jnp.sum(loss_sums) / jnp.maximum(total_updates, 1), jnp.nan)
        if not check_greedy:
            return state, observe(state, loss)
        state, greedy = greedy_check(state, was_active)
        return state, observe(state, loss, greedy)

    return Trainer(config=config, env=env, q_function=q_function, learner=learner,
                   init=init, run_chunk=run_chunk, observe=observe)


def _select_priorities(pred: jax.Array, new, old):
    """`new` where pred, else `old`, for what learning changes in a buffer: the priorities.

    The transitions themselves are not selected (learning never writes them), so no
    step copies the storage.
    """
    if not isinstance(old, prioritized.PrioritizedState):
        return old  # a uniform buffer, or nothing carried
    return old.replace(levels=jax.tree.map(lambda n, o: jnp.where(pred, n, o), new.levels, old.levels),
                       max_priority=jnp.where(pred, new.max_priority, old.max_priority))


def all_finite(tree) -> jax.Array:
    """Whether every element of every leaf is finite (bool scalar)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


class Population(NamedTuple):
    """A trainer's jitted functions over a population with a leading member axis."""

    init: Callable  # (keys (padded, 2), HParams with leaves (padded,)) -> TrainState
    run_chunk: Callable  # TrainState -> (TrainState, ChunkMetrics); donates its input
    observe: Callable  # TrainState -> ChunkMetrics
    placement: Placement  # how the member axis is spread over devices


_POPULATIONS: dict[tuple, tuple[Callable, Callable, Callable]] = {}


def population(trainer: Trainer, placement: Placement) -> Population:
    """Jitted, vmapped init and run_chunk for a population laid out by `placement`.

    run_chunk donates its input state, so the replay buffers are updated in place. The
    jitted functions are made once per program and layout, so a second run of the same
    static settings finds them compiled.
    """
    key = (trainer.init, trainer.run_chunk, placement.sharding)
    if key not in _POPULATIONS:
        sharding = placement.sharding
        _POPULATIONS[key] = (
            jax.jit(jax.vmap(trainer.init), in_shardings=(sharding, sharding), out_shardings=sharding),
            jax.jit(jax.vmap(trainer.run_chunk), in_shardings=sharding, out_shardings=sharding, donate_argnums=0),
            jax.jit(jax.vmap(trainer.observe), in_shardings=sharding, out_shardings=sharding),
        )
    init, run_chunk, observe = _POPULATIONS[key]
    return Population(init=init, run_chunk=run_chunk, observe=observe, placement=placement)
