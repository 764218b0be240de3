"""The pure training program: what every member does, whatever algorithm it runs.

`make_train(config)` composes the environment and the algorithm (`qlax.algorithms`) into
`Trainer.init(key, hparams) -> TrainState` and `Trainer.run_chunk(state) -> (state,
ChunkMetrics)`: a `lax.scan` over rollouts, each `algorithm.rollout_steps` vector steps
of acting and stepping the environments, then the algorithm's `learn`. Around that, the
member's books: episode records, the budget, early stop and freezing, divergence, greedy
checks after a chunk and the best greedy policy seen. Nothing in it calls back to the
host. A population (seeds, or seeds x settings of a sweep) is the same functions under
`jax.vmap`, its member axis sharded over the devices (`placement`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from qlax.components import contract
from qlax.components.contract import MEMBERS, Algorithm, Rollout
from qlax.components.networks import QFunction, observation_kind
from qlax.core.program_cache import ProgramCache
from qlax.envs import VecEnv, env_spec, make_env
from qlax.program import episodes
from qlax.program.evaluation import make_evaluate
from qlax.program.placement import Placement
from qlax.settings.config import DYNAMIC_SETTINGS, ConfigError, HParams, TrainConfig, static_key


@struct.dataclass
class BestPolicy:
    """The parameters of a member's best greedy check so far, and when it was taken."""

    params: dict
    greedy_return: jax.Array  # float32 (): -inf before the first check
    env_steps: jax.Array  # int32 ()


@struct.dataclass
class TrainState:
    """Everything a member trains with and on: its dynamic settings and all that changes."""

    hparams: HParams  # the member's dynamic settings; constant through a run
    agent: object  # the algorithm's own state (parameters, optimizer, replay, ...)
    env_state: object
    obs: jax.Array  # (num_envs, obs_dim)
    first: jax.Array  # (num_envs,) bool: obs is the first observation of an episode
    key: jax.Array
    vector_steps: jax.Array  # int32 (): vector steps taken
    stats: episodes.EpisodeStats
    stopped: jax.Array  # bool (): early-stopped; the state is frozen from then on
    diverged: jax.Array  # bool (): an update went non-finite; frozen at the last finite state
    best: BestPolicy | tuple  # keep_best: the best greedy check's policy; () otherwise


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
    greedy_return: jax.Array  # the chunk's greedy check; NaN without checks
    best_greedy_return: jax.Array  # keep_best: the best check so far; NaN otherwise
    best_env_steps: jax.Array  # keep_best: env steps at that check; -1 otherwise
    episode_length: jax.Array  # mean length of the last min(episodes, 100) episodes; NaN before the first
    updates: jax.Array  # gradient steps taken so far
    learning_rate: jax.Array  # the learning rate of the next gradient step (decayed, under lr_decay)


GREEDY_CHECK_STREAM = 0x6EED  # fold_in tag of the greedy checks' keys


class Trainer(NamedTuple):
    config: TrainConfig
    env: VecEnv
    algorithm: Algorithm
    init: Callable  # (key, HParams) -> TrainState
    run_chunk: Callable  # TrainState -> (TrainState, ChunkMetrics)
    observe: Callable  # TrainState -> ChunkMetrics (loss NaN): the numbers of a state as it stands
    restart: Callable | None  # TrainState -> TrainState: fresh episodes after a resume (`VecEnv.restart`)
    budget: int  # vector steps per member: the config's, rounded up to whole rollouts
    chunk_vector_steps: int  # vector steps per chunk: whole rollouts

    @property
    def q_function(self) -> QFunction:
        return self.algorithm.q_function

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.budget / self.chunk_vector_steps)

    @property
    def env_steps_budget(self) -> int:
        return self.budget * self.config.num_envs

    def greedy_params(self, state: TrainState, best: bool = False):
        """The parameters of the greedy policy (of the best greedy check, with `best`)."""
        if best:
            if state.best == ():
                raise ConfigError("this run kept no best policy: train with keep_best: true (the greedy "
                                  "checks after every chunk pick it)")
            return state.best.params
        return self.algorithm.params(state.agent)


def solve_threshold(config: TrainConfig, env: VecEnv) -> float | None:
    return config.solve_threshold if config.solve_threshold is not None else env.spec.solve_threshold


_PROGRAMS: ProgramCache[Trainer] = ProgramCache()


def for_observations(config: TrainConfig) -> TrainConfig:
    """`config` with its `by_observation` settings resolved for its env's kind of observation
    (`networks.observation_kind`), as a run trains and saves it."""
    if config.by_observation is None:
        return config
    return config.for_observation(observation_kind(env_spec(config.env)))


def make_train(config: TrainConfig) -> Trainer:
    """The pure training program for `config` (validated again here, its `by_observation`
    resolved: `for_observations`).

    The program depends on the static settings only: configs that differ in dynamic
    settings (or only in seeds) get the very same functions, so whatever JAX compiled
    for one serves the others. The dynamic values come from each member's `HParams`.
    """
    config = for_observations(config.validated())
    # Dynamic settings blanked: a stray read of one inside the program fails loudly.
    program = _PROGRAMS.get(static_key(config),
                            lambda: _build(dataclasses.replace(config, **dict.fromkeys(DYNAMIC_SETTINGS))))
    return program._replace(config=config)


def _build(config: TrainConfig) -> Trainer:
    env = make_env(config.env, config.num_envs)
    algorithm = contract.make(config, env)
    threshold = solve_threshold(config, env)
    early_stop = config.early_stop and threshold is not None
    stop_on_average = early_stop and config.stop_on == "train_average"
    stop_on_greedy = early_stop and config.stop_on == "greedy"
    check_greedy = stop_on_greedy or config.keep_best
    greedy_episodes = make_evaluate(config.env, algorithm.q_function, config.stop_eval_episodes) \
        if check_greedy else None
    rollout_steps = algorithm.rollout_steps
    rollouts_per_chunk = max(1, math.ceil(min(config.chunk_steps, config.vector_steps) / rollout_steps))
    budget = math.ceil(config.vector_steps / rollout_steps) * rollout_steps
    terminal_on_truncation = config.truncation == "terminal"

    def init(key: jax.Array, hparams: HParams) -> TrainState:
        k_agent, k_env, k_run = jax.random.split(key, 3)
        obs, env_state = env.reset(k_env)
        agent = algorithm.init(k_agent, hparams, obs)
        best = BestPolicy(params=algorithm.params(agent), greedy_return=jnp.float32(-jnp.inf),
                          env_steps=jnp.int32(0)) if config.keep_best else ()
        return TrainState(hparams=hparams, agent=agent, env_state=env_state, obs=obs,
                          first=jnp.ones(config.num_envs, bool), key=k_run, vector_steps=jnp.int32(0),
                          stats=episodes.init(config.num_envs), stopped=jnp.bool_(False),
                          diverged=jnp.bool_(False), best=best)

    def is_active(state: TrainState) -> jax.Array:
        return ~state.stopped & ~state.diverged & (state.vector_steps < budget)

    def vector_step(carry, _):
        """Act, step the environments, keep the episode records: one vector step of a rollout."""
        state, active = carry
        hp = state.hparams
        key, k_act, k_env, k_learn = jax.random.split(state.key, 4)
        actions, agent = algorithm.act(state.agent, state.obs, state.first, k_act, hp, state.vector_steps, active)
        step = env.step(k_env, state.env_state, state.obs, actions)
        transition, known = step.transition, step.next_obs_known
        if terminal_on_truncation:  # the seed's rule: a cut is an end, whatever came next
            transition, known = transition.replace(terminated=step.done), known | step.done
        stepped = state.replace(env_state=step.env_state, obs=step.obs, first=step.first, key=key,
                                vector_steps=state.vector_steps + 1,
                                stats=episodes.update(state.stats, step.score, step.game_over,
                                                      step.first & ~step.done))  # a reset step: starts, ends nothing
        # A stopped or finished member keeps its state; the agent freezes itself (`active`),
        # so no step copies its replay buffer.
        kept = jax.tree.map(lambda new, old: jnp.where(active, new, old),
                            stepped.replace(agent=()), state.replace(agent=()))
        return (kept.replace(agent=agent), active), (Rollout(transition, step.done, known, step.obs), k_learn)

    def rollout_and_learn(state: TrainState, _):
        active = is_active(state)
        start = state.vector_steps
        (state, _), (rollout, learn_keys) = jax.lax.scan(vector_step, (state, active), None, length=rollout_steps)
        agent, learned = algorithm.learn(state.agent, rollout, learn_keys[-1], state.hparams, start, active)
        solved = episodes.window_full(state.stats) & (episodes.average_return(state.stats) >= threshold) \
            if stop_on_average else jnp.bool_(False)
        state = state.replace(agent=agent, stopped=jnp.where(active, solved, state.stopped),
                              diverged=jnp.where(active, learned.diverged, state.diverged))
        return state, (learned.loss_sum, learned.updates)

    def observe(state: TrainState, loss: jax.Array | float = math.nan,
                greedy: jax.Array | float = math.nan) -> ChunkMetrics:
        best_return, best_steps = (state.best.greedy_return, state.best.env_steps) if config.keep_best \
            else (jnp.float32(jnp.nan), jnp.int32(-1))
        return ChunkMetrics(
            env_steps=state.vector_steps * config.num_envs,
            epsilon=algorithm.epsilon(state.agent, state.hparams, state.vector_steps),
            avg_return_100=episodes.average_return(state.stats),
            episodes=state.stats.episodes,
            loss=jnp.asarray(loss, jnp.float32),
            stopped=state.stopped,
            diverged=state.diverged,
            greedy_return=jnp.asarray(greedy, jnp.float32),
            best_greedy_return=jnp.where(jnp.isfinite(best_return), best_return, jnp.nan),
            best_env_steps=best_steps,
            episode_length=episodes.average_length(state.stats),
            updates=algorithm.updates(state.agent),
            learning_rate=algorithm.learning_rate(state.agent, state.hparams),
        )

    def greedy_check(state: TrainState, was_active: jax.Array) -> tuple[TrainState, jax.Array]:
        """Greedy episodes after the chunk, from their own key stream apart from training's.

        stop_on greedy: a member still under its budget stops when their mean, less
        stop_eval_z standard errors (ddof 1), reaches the threshold. keep_best: a member
        that trained in this chunk keeps these parameters if they beat its best check.
        Returns (state, the mean).
        """
        key = jax.random.fold_in(state.key, GREEDY_CHECK_STREAM)
        params = algorithm.params(state.agent)
        returns, _ = greedy_episodes(key, params)
        mean = jnp.mean(returns)
        if stop_on_greedy:
            n = config.stop_eval_episodes
            std_error = jnp.std(returns, ddof=1) / math.sqrt(n) if n > 1 else jnp.float32(0.0)
            solved = ~state.stopped & ~state.diverged & (state.vector_steps < budget) & \
                (mean - config.stop_eval_z * std_error >= threshold)
            state = state.replace(stopped=state.stopped | solved)
        if config.keep_best:
            better = was_active & ~state.diverged & (mean > state.best.greedy_return)
            candidate = BestPolicy(params=params, greedy_return=mean, env_steps=state.vector_steps * config.num_envs)
            state = state.replace(best=jax.tree.map(lambda new, old: jnp.where(better, new, old),
                                                    candidate, state.best))
        return state, mean

    def restart(state: TrainState) -> TrainState:
        """After a resume, for an env whose state a checkpoint cannot hold: its next step
        starts fresh episodes (a reset step, no transition: no n-step window spans the
        resume), and the episodes that were under way are dropped from the returns."""
        stats = state.stats.replace(running_return=jnp.zeros_like(state.stats.running_return),
                                    running_length=jnp.zeros_like(state.stats.running_length))
        return state.replace(env_state=env.restart(state.env_state), stats=stats)

    def run_chunk(state: TrainState):
        was_active = is_active(state)
        state, (loss_sums, updates_run) = jax.lax.scan(rollout_and_learn, state, None, length=rollouts_per_chunk)
        total_updates = jnp.sum(updates_run)
        loss = jnp.where(total_updates > 0, jnp.sum(loss_sums) / jnp.maximum(total_updates, 1), jnp.nan)
        if not check_greedy:
            return state, observe(state, loss)
        state, greedy = greedy_check(state, was_active)
        return state, observe(state, loss, greedy)

    return Trainer(config=config, env=env, algorithm=algorithm, init=init, run_chunk=run_chunk, observe=observe,
                   restart=restart if env.restart is not None else None, budget=budget, chunk_vector_steps=rollouts_per_chunk * rollout_steps)


class Population(NamedTuple):
    """A trainer's jitted functions over a population with a leading member axis."""

    init: Callable  # (keys (padded, 2), HParams with leaves (padded,)) -> TrainState
    run_chunk: Callable  # TrainState -> (TrainState, ChunkMetrics); donates its input
    observe: Callable  # TrainState -> ChunkMetrics
    restart: Callable | None  # TrainState -> TrainState (`Trainer.restart`); donates its input
    placement: Placement  # how the member axis is spread over devices


_POPULATIONS: ProgramCache[tuple[Callable, Callable, Callable, Callable | None]] = ProgramCache()


def population(trainer: Trainer, placement: Placement) -> Population:
    """Jitted, vmapped init and run_chunk for a population laid out by `placement`.

    run_chunk donates its input state, so the replay buffers are updated in place. The
    jitted functions are made once per program and layout, so a second run of the same
    static settings finds them compiled.
    """
    sharding = placement.sharding

    def jitted():
        return (
            jax.jit(jax.vmap(trainer.init), in_shardings=(sharding, sharding), out_shardings=sharding),
            jax.jit(jax.vmap(trainer.run_chunk, axis_name=MEMBERS), in_shardings=sharding, out_shardings=sharding,
                    donate_argnums=0),
            jax.jit(jax.vmap(trainer.observe), in_shardings=sharding, out_shardings=sharding),
            None if trainer.restart is None else
            jax.jit(jax.vmap(trainer.restart), in_shardings=sharding, out_shardings=sharding, donate_argnums=0),
        )

    init, run_chunk, observe, restart = _POPULATIONS.get((trainer.init, trainer.run_chunk, sharding), jitted)
    return Population(init=init, run_chunk=run_chunk, observe=observe, restart=restart, placement=placement)
