"""The host loop: plan, compile, run chunks, show progress, stop, checkpoint, evaluate, write.

This is the one place that reads results back from the compiled program. A run trains a
population of members (seeds, or settings x seeds for a sweep) as one program. Its
directory holds `config.yaml`, `grid.yaml` (sweeps), `metrics.csv` (one row per chunk per
member), `checkpoints/`, `summary.json`, `sweep.csv` (sweeps) and `learning_curve.png`.

With several processes (`jax.distributed.initialize`, one per host), every process runs
this same loop over its slice of the members; results are gathered to all of them, so
they take the same decisions, and process 0 writes the files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec
import numpy as np
import yaml

from qlax import envs
from qlax.core.devices import any_process, barrier, is_writer
from qlax.core.files import write_text
from qlax.program import memory
from qlax.program.evaluation import episode_limit, evaluate_members
from qlax.program.placement import AXIS, Placement, place
from qlax.program.trainer import (Population, Trainer, TrainState, for_observations, make_train, population,
                                  solve_threshold)
from qlax.runs import checkpoint, reports, tracking
from qlax.runs.callbacks import Callback, ChunkReport, checked
from qlax.runs.interrupt import GracefulInterrupt
from qlax.runs.pbt import LINEAGE_FILE, PBT
from qlax.runs.progress import ProgressDisplay, describe
from qlax.runs.rundir import (CONFIG_FILE, ENV_RECIPE_FILE, GRID_FILE, RunDirError, claim, finished_summary,
                         latest_checkpoint, load_members, load_state, lock, member_template, run_settings,
                         starting_params)
from qlax.settings import presets
from qlax.settings.config import ConfigError, TrainConfig, check_grid_owned, check_owned, short
from qlax.settings.sweep import Members


class DivergedError(RuntimeError):
    """Every member's loss or parameters went non-finite; the run stopped."""


@dataclass
class RunOptions:
    """How the host loop runs; saved in each checkpoint so `resume` continues alike."""

    preset: str | None = None
    checkpoint_every: int = 10  # chunks between checkpoints (one is also saved at the end)
    keep: int = 2  # checkpoints kept
    log: tuple[str, ...] = ()  # trackers: tensorboard, wandb
    callbacks: tuple[Callback, ...] = ()  # called after every chunk (`qlax.runs.callbacks`); not saved
    init_from: dict[str, Any] | None = None  # where the Q parameters started (`InitFrom.describe`), if not afresh
    pbt: PBT | None = None  # population-based training, saved with the run so a resume goes on with it

    def validated(self) -> RunOptions:
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every = {self.checkpoint_every}: out of range, allowed >= 1")
        if self.keep < 1:
            raise ConfigError(f"keep = {self.keep}: out of range, allowed >= 1")
        return self


@dataclass(repr=False)
class RunResult:
    """What `train` returns: the numbers of summary.json and the final population state."""

    summary: dict[str, Any]
    state: TrainState  # leading axis: members (with several processes: the global, padded state)
    eval_returns: np.ndarray | None  # (members, eval_episodes); None if the run was interrupted
    run_dir: Path | None
    members: Members
    already_finished: bool = False  # resume found the run finished and changed nothing

    @property
    def solved(self) -> list[bool] | None:
        return self._per_member("solved")

    @property
    def solved_fraction(self) -> float | None:
        return self.summary["solved_fraction"]

    @property
    def eval_mean_return(self) -> list[float] | None:
        return self._per_member("eval_mean_return")

    @property
    def eval_at_time_limit(self) -> list[int] | None:
        """Per member: how many final greedy episodes ran to the time limit (the env never ended them)."""
        return self._per_member("eval_at_time_limit")

    @property
    def interrupted(self) -> bool:
        return self.summary["interrupted"]

    def __repr__(self) -> str:
        """A line to read, not the replay buffers: where, how many members, how they did."""
        solved = self.solved
        verdict = "interrupted" if self.interrupted else "no threshold" if solved is None or \
            self.summary.get("threshold") is None else f"solved {sum(solved)}/{len(solved)}"
        means = self.eval_mean_return
        mean = "" if means is None else f", mean eval return {np.mean(means):.1f}"
        return (f"RunResult(env={self.summary.get('env')!r}, members={self.members.count}, {verdict}{mean}, "
                f"run_dir={str(self.run_dir) if self.run_dir else None!r})")

    def _per_member(self, key: str) -> list | None:
        if not self.members.grid:
            return self.summary[key]
        values = [m[key] for m in self.summary["members"]]
        return None if values[0] is None else values


def default_run_dir(preset: str, env: str) -> Path:
    """runs/<preset>-<time>, or runs/<preset>-<env>-<time> when the run's `env` is not the preset's."""
    name = Path(preset).stem if env == presets.load(preset).env else f"{Path(preset).stem}-{env}"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name)  # gymnasium:ALE/Pong-v5 names one directory
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


class Started(NamedTuple):
    """A population ready to step: `state, metrics = population.run_chunk(state)`."""

    members: Members
    trainer: Trainer
    population: Population
    state: TrainState  # leading axis: the placement's padded members
    compile_s: float  # seconds spent compiling init


@dataclass(frozen=True)
class InitFrom:
    """Where a new run's Q parameters start (fine-tuning): a saved run's final parameters, or
    its best greedy check's (`best`), member for member, or its `member` for every member."""

    run_dir: Path
    best: bool = False
    member: int | None = None

    @staticmethod
    def of(init_from: str | Path | InitFrom | None) -> InitFrom | None:
        return init_from if init_from is None or isinstance(init_from, InitFrom) else InitFrom(Path(init_from))

    def describe(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "best": self.best, "member": self.member}


def start(config: TrainConfig, grid: dict[str, list] | None = None, *, max_memory: str | int | None = None,
          progress: bool = False, init_from: str | Path | InitFrom | None = None) -> Started:
    """The compiled program for `config` (swept over `grid`), laid out over the devices, with
    every member initialized (from a saved run's parameters with `init_from`). Settings,
    memory and layout are checked before anything compiles."""
    envs.trust(config.env)  # the person names it: its code (a factory) may be imported
    members = _owned(Members.of(for_observations(config.validated()), grid), grid)
    planned = _plan(members, max_memory)
    return _init(members, planned, progress, InitFrom.of(init_from))


def by_observation_line(given: TrainConfig, resolved: TrainConfig) -> str | None:
    """'by_observation: batch_size 32 for this env's observations': what `by_observation` changed, if anything."""
    changed = [f"{name} {short(value)}" for name, value in resolved.to_dict().items()
               if name != "by_observation" and value != getattr(given, name)]
    return f"by_observation: {', '.join(changed)} for this env's observations" if changed else None


def _owned(members: Members, grid: dict[str, list] | None) -> Members:
    """`members`, their config's settings and `grid`'s keys checked to be read by what it
    chose (`config.owners`)."""
    check_owned(members.config)
    check_grid_owned(members.config, grid)
    return members


def train(config: TrainConfig, seeds: int | None = None, *, grid: dict[str, list] | None = None,
          out: str | Path | None = None, overwrite: bool = False, preset: str | None = None,
          progress: bool = True, checkpoint_every: int = 10, keep: int = 2,
          max_memory: str | int | None = None, log: tuple[str, ...] = (), env: Any = None,
          callbacks: Iterable[Callback] | None = None, init_from: str | Path | InitFrom | None = None,
          pbt: PBT | None = None) -> RunResult:
    """Train `seeds` seeds of `config` (of every setting of `grid`) at once, evaluate each
    member greedily, write `out` if given; `log` names trackers (tensorboard, wandb) that
    get every chunk's numbers; `env`, an environment object (qlax's JAX protocol, a gymnax
    `Environment`, or a `gymnasium.Env`, copied), replaces `config.env`, its bounds and threshold;
    `callbacks` are called on the host after every chunk (`qlax.runs.callbacks`: they can stop
    the run or single members, and write files); `init_from`, a saved run's directory (or
    an `InitFrom` choosing its best check's parameters, or one member for all), starts
    every member's Q parameters (and target) from that run's: fine-tuning, on its
    environment or another with the same spaces; optimizer, replay and schedules start afresh;
    `pbt` runs population-based training over the members (`qlax.runs.pbt`), saved with the run.

    Every setting is checked, the environment built, the memory planned and `out` claimed
    (refused if it holds a run, unless `overwrite`; locked until the run ends) before
    anything compiles.
    """
    started = time.perf_counter()
    config = config.replace(seeds=seeds) if seeds is not None else config
    config = config.replace(env=envs.register(env)) if env is not None else config
    envs.trust(config.env)  # the person names it: its code (a factory) may be imported
    given, init_from = config.validated(), InitFrom.of(init_from)
    config = for_observations(given)
    if progress and is_writer() and (line := by_observation_line(given, config)):
        print(line, flush=True)
    options = RunOptions(preset, checkpoint_every, keep, tuple(log), checked(callbacks, config),
                         init_from.describe() if init_from else None, pbt and pbt.check(config)).validated()
    tracking.check(options.log, out)
    members = _owned(Members.of(config, grid), grid)
    planned = _plan(members, max_memory)
    with claim(out, overwrite) if out is not None else nullcontext() as run_dir:
        run = _init(members, planned, progress, init_from)
        if run_dir is not None and is_writer():
            _write_config(run_dir, members.config)
            if env is not None and (recipe := envs.recipe(env)) is not None:
                write_text(run_dir / ENV_RECIPE_FILE, recipe)
            if members.grid:
                grid_text = yaml.safe_dump({k: list(v) for k, v in members.grid}, sort_keys=False)
                write_text(run_dir / GRID_FILE, grid_text)
            reports.MetricsFile(run_dir / reports.METRICS_FILE, members).start()
        return _run(run.trainer, members, run.population, run.state, 0, run_dir, options, progress, started,
                    run.compile_s)


def sweep(config: TrainConfig, grid: dict[str, list], seeds: int | None = None, **options) -> RunResult:
    """`train` over every setting of `grid` (dynamic settings only) x `seeds` seeds, in one program."""
    return train(config, seeds, grid=grid, **options)


def resume(run_dir: str | Path, *, progress: bool = True, max_memory: str | int | None = None,
           env: Any = None, steps: int | None = None, callbacks: Iterable[Callback] | None = None) -> RunResult:
    """Continue the run in `run_dir` from its latest checkpoint, as if it had never stopped;
    `env`: the environment object a run trained with `train(..., env=...)` needs again, or
    the name of a run's factory env (`module:factory`), which qlax never imports from a
    run's files by itself.

    `callbacks`: as for `train` (they are not saved with the run: give them again).

    `steps`: a new budget, env steps per seed (`total_steps`), to train a finished or
    interrupted run further (SB3's `learn(more, reset_num_timesteps=False)`). It goes on
    exactly as a run with that budget from the start would have, where nothing depends on
    the budget itself: prioritized replay's beta anneals over the budget, and
    `lr_decay` over its gradient steps, so those follow the new budget from here on. Members that stopped
    early (solved) stay stopped.

    A finished run (every chunk of its budget done or every member stopped, as its latest
    checkpoint says, and its summary written) is left as it is: the result holds its
    summary and saved state, with `already_finished` set.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    members = load_members(run_dir, env=env)
    if steps is not None:
        members = Members.of(members.config.replace(total_steps=steps), dict(members.grid))
    planned = _plan(members, max_memory, resuming=True)
    with lock(run_dir):
        state, manifest = load_state(run_dir, planned.trainer, members, planned.placement)
        finished = finished_summary(run_dir) if _spent(planned, state) else None
        if finished is not None:
            return RunResult(summary=finished, state=state, eval_returns=None, run_dir=run_dir, members=members,
                             already_finished=True)
        if steps is not None and is_writer():  # the new budget, where every later read of the run finds it
            _write_config(run_dir, members.config)
        if (change := planned.placement.layout_change(manifest.get("layout"))) and is_writer():
            print(change, file=sys.stderr, flush=True)
        options = RunOptions(manifest.get("preset"), manifest["checkpoint_every"], manifest["keep"],
                             tuple(manifest.get("log", ())), checked(callbacks, members.config),
                             manifest.get("init_from"), PBT.saved(manifest.get("pbt"))).validated()
        tracking.check(options.log, run_dir)
        if is_writer():
            reports.MetricsFile(run_dir / reports.METRICS_FILE, members).truncate(manifest["chunk"])
        pop = _build(planned, progress)
        if pop.restart is not None:  # no checkpoint holds its envs: they start afresh
            state = pop.restart(state)
        return _run(planned.trainer, members, pop, state, manifest["chunk"], run_dir, options, progress, started,
                    0.0)


def _title(preset: str | None, env: str) -> str:
    """What progress lines start with: the preset's name, with the env where it trains another."""
    if preset is None:
        return env
    try:
        own = presets.load(preset).env
    except ConfigError:  # a preset file gone since the run started
        own = None
    return Path(preset).stem if env == own else f"{Path(preset).stem} on {env}"


def _spent(planned: Planned, state: TrainState) -> bool:
    """Whether a run whose latest checkpoint holds `state` has nothing left to train: every
    member stopped, diverged or spent the budget."""
    stopped, diverged, steps = planned.placement.gather((state.stopped, state.diverged, state.vector_steps))
    return bool(np.all(stopped | diverged | (steps >= planned.trainer.budget)))


def _chunks_left(trainer: Trainer, metrics) -> int:
    """Chunks until every member still training has spent the budget: the budget's chunks
    from the start, and one more than its count after a resume whose run had a short last
    chunk (`resume --steps`)."""
    training = ~(np.asarray(metrics.stopped) | np.asarray(metrics.diverged))
    if not training.any():
        return 0
    steps_left = trainer.budget - int(np.min(np.asarray(metrics.env_steps)[training])) // trainer.config.num_envs
    return max(0, -(-steps_left // trainer.chunk_vector_steps))


def _write_config(run_dir: Path, config: TrainConfig) -> None:
    """config.yaml, replaced whole (written beside it, then moved into place)."""
    write_text(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))


class Planned(NamedTuple):
    """A population's program and layout, checked against the memory limit; nothing compiled."""

    trainer: Trainer
    placement: Placement
    memory_line: str


def _plan(members: Members, max_memory: str | int | None, resuming: bool = False) -> Planned:
    """The program, its layout over the devices, and the memory check, before any compile.
    The state is held twice for a moment when a resume places its checkpoint, or when a
    padded population is cut to its members at the end."""
    trainer = make_train(members.config)
    if trainer.env.spec.host and jax.process_count() > 1:
        raise ConfigError(f"env = '{members.config.env}' is stepped on the host: it trains in one process, "
                          f"not {jax.process_count()}")
    placement = place(members.count, one_device=trainer.env.spec.host)
    trimmed = jax.process_count() == 1 and placement.padded > placement.members
    plan = memory.plan(trainer, member_template(trainer), *_members_here(placement),
                       copies_state=resuming or trimmed)
    allowed, source = memory.limit(max_memory)
    memory.check(plan, allowed, source)
    detail = plan.describe() if os.environ.get("QLAX_MEMORY_DETAIL") else plan.short()
    more = "" if os.environ.get("QLAX_MEMORY_DETAIL") else "; QLAX_MEMORY_DETAIL=1 itemizes it"
    return Planned(trainer, placement, f"memory: {detail}; limit {memory.size_text(allowed)} ({source}){more}")


def _build(planned: Planned, progress: bool) -> Population:
    """Show the memory plan and build the jitted population."""
    if progress and is_writer():
        print(planned.memory_line, flush=True)
        if planned.placement.note:
            print(planned.placement.note, flush=True)
    return population(planned.trainer, planned.placement)


def _init(members: Members, planned: Planned, progress: bool, init_from: InitFrom | None = None) -> Started:
    """Build the population, compile its init and initialize every member (its Q parameters
    from a saved run's with `init_from`, checked to fit before anything compiles)."""
    params = None
    if init_from is not None:
        template = member_template(planned.trainer).agent.learner.params
        params = starting_params(init_from.run_dir, members.count, template, init_from.best, init_from.member)
    pop = _build(planned, progress)
    compile_started = time.perf_counter()
    keys, hparams = pop.placement.put(members.rng_keys()), pop.placement.put(members.hparams())
    init = pop.init.lower(keys, hparams).compile()
    compile_s = time.perf_counter() - compile_started
    state = init(keys, hparams)
    if params is not None:  # two copies: the state is donated to each chunk, and no buffer may be given twice
        learner = state.agent.learner.replace(params=pop.placement.put(params),
                                              target_params=pop.placement.put(params))
        state = state.replace(agent=state.agent.replace(learner=learner))
    return Started(members, planned.trainer, pop, state, compile_s)


def _members_here(placement: Placement) -> tuple[int, str]:
    """How many members share one memory limit: per device on accelerators, per process on CPUs."""
    if jax.local_devices()[0].platform == "cpu":
        return len(placement.local_rows), "in this process"
    return placement.padded // placement.devices, "per device"


def _run(trainer: Trainer, members: Members, pop: Population, state: TrainState, first_chunk: int,
         run_dir: Path | None, *args) -> RunResult:
    """`_train_and_report`, with a run-directory file that cannot be written (a full disk)
    turned into one line that says what is kept and how to go on."""
    try:
        return _train_and_report(trainer, members, pop, state, first_chunk, run_dir, *args)
    except OSError as err:
        if run_dir is None:
            raise
        name = Path(err.filename).name if err.filename else "a file of the run"
        try:
            kept = f"checkpoint {latest_checkpoint(run_dir).name} is kept: make room, then qlax resume {run_dir}"
        except (RunDirError, checkpoint.CheckpointError):
            kept = "no checkpoint was saved yet: make room, then train again"
        raise RunDirError(f"{name} could not be written ({err.strerror or err}); the run stopped, "
                          f"{kept}") from None


def _train_and_report(trainer: Trainer, members: Members, pop: Population, state: TrainState, first_chunk: int,
                      run_dir: Path | None, options: RunOptions, progress: bool, started: float,
                      compile_s: float) -> RunResult:
    """Run chunks from `first_chunk` until every member stopped or the budget is spent."""
    config, placement = trainer.config, pop.placement
    threshold = solve_threshold(config, trainer.env)
    title = _title(options.preset, config.env)
    meta = {"preset": options.preset, "checkpoint_every": options.checkpoint_every, "keep": options.keep,
            "log": list(options.log), "init_from": options.init_from,
            "pbt": dataclasses.asdict(options.pbt) if options.pbt else None,
            "members": placement.members, "padded": placement.padded, "layout": placement.layout}
    latest = placement.gather(pop.observe(state))
    steps_before = int(np.sum(latest.env_steps))
    last_chunk = first_chunk + _chunks_left(trainer, latest)
    metrics_path = run_dir / reports.METRICS_FILE if run_dir is not None and is_writer() else None
    with ProgressDisplay(title, trainer.env_steps_budget, enabled=progress and is_writer()) as display, \
            reports.MetricsFile(metrics_path, members) as metrics_file, GracefulInterrupt() as interrupt, \
            contextlib.ExitStack() as closing:
        trackers = [closing.enter_context(contextlib.closing(t)) for t in
                    tracking.open_trackers(options.log, run_dir, members.config.to_dict())] \
            if run_dir is not None and is_writer() else []
        compile_started = time.perf_counter()
        run_chunk = pop.run_chunk.lower(state).compile()
        if options.pbt is not None:
            _copier(state, placement, options.pbt.copies(members.count))
        compile_s += time.perf_counter() - compile_started
        train_started = time.perf_counter()
        chunk, saved, interrupted = first_chunk, first_chunk, False
        asked = _Asked(placement.gather(state.hparams))  # what callbacks asked for, until it is carried out

        def report(metrics):
            """Gather a chunk's numbers, append them to metrics.csv, show progress, call the callbacks."""
            latest = placement.gather(metrics)
            metrics_file.write(latest)
            steps_per_s = (float(np.sum(latest.env_steps)) - steps_before) / (time.perf_counter() - train_started)
            best = reports.best_so_far(members, latest.avg_return_100, latest.stopped) if members.grid else None
            display.update(int(np.max(latest.env_steps)), describe(
                int(np.max(latest.env_steps)), steps_per_s, latest.epsilon, latest.avg_return_100,
                None if threshold is None else int(np.sum(latest.stopped)), members.count, best,
                latest.greedy_return))
            for tracker in trackers:
                tracker.log(int(np.max(latest.env_steps)), tracking.chunk_scalars(latest, members, steps_per_s))
            for callback in (*options.callbacks, *([options.pbt] if options.pbt else [])):
                asked.hear(callback, ChunkReport(chunk, last_chunk, _metric_arrays(latest), members, config,
                                                 run_dir, time.perf_counter() - started, asked.hparams_now()))
            return latest

        # The next chunk is dispatched before the host reads the last one's numbers (JAX runs it
        # asynchronously), so the device never waits for metrics, files or progress. A chunk
        # dispatched after every member stopped changes nothing in the state and is dropped;
        # one in flight at an interrupt is finished and saved. A periodic checkpoint is taken
        # before the next dispatch, which consumes (donates) the state.
        in_flight = run_chunk(state) if chunk < last_chunk and not _all_done(latest) else None
        while in_flight is not None:
            state, metrics = in_flight
            chunk += 1
            more = chunk < last_chunk
            state = asked.carry_out(state, placement)  # asked after an earlier chunk
            if run_dir is not None and more and chunk % options.checkpoint_every == 0:
                latest = report(metrics)  # the rows first: a checkpoint never covers a missing row
                state = asked.carry_out(state, placement)  # a checkpoint holds what was asked so far
                _save(run_dir, state, chunk, meta, options.keep, placement, members)
                saved = chunk
                in_flight = run_chunk(state)
            else:
                in_flight = run_chunk(state) if more else None
                latest = report(metrics)
            # read once: the save and the exit agree
            interrupted = any_process(interrupt.requested or asked.stop_run)
            if in_flight is not None and _all_done(latest):
                state, _ = in_flight  # every member is frozen: the state is the same
                in_flight = None
            elif in_flight is not None and interrupted:
                state, metrics = in_flight
                chunk += 1
                latest = report(metrics)
                in_flight = None
        state = asked.carry_out(state, placement)  # what the last reports asked: held by the last checkpoint
        if run_dir is not None and saved != chunk:
            _save(run_dir, state, chunk, meta, options.keep, placement, members)
        jax.block_until_ready(state)
        train_s = time.perf_counter() - train_started

    all_diverged = bool(np.all(latest.diverged))
    returns, lengths = (None, None) if interrupted or all_diverged else \
        evaluate_members(trainer, members, placement, trainer.greedy_params(state))
    best_returns = None if returns is None or not config.keep_best else \
        evaluate_members(trainer, members, placement, trainer.greedy_params(state, best=True))[0]
    limit = episode_limit(trainer.env.spec)
    steps_run = int(np.sum(latest.env_steps)) - steps_before
    run = {"preset": options.preset, "env": config.env, "devices": placement.devices,
           "processes": jax.process_count(), "compile_s": round(compile_s, 3), "train_s": round(train_s, 3),
           "env_steps_per_s": round(steps_run / train_s, 1) if train_s > 0 else None,
           "eval_episodes": config.eval_episodes, "eval_time_limit": limit, "threshold": threshold}
    length_fields = {f"eval_{k}": v for k, v in reports.length_numbers(lengths, limit).items()}
    summary = reports.summary(members, {**reports.train_numbers(latest, config.keep_best),
                                        **reports.eval_numbers(returns, threshold), **length_fields,
                                        **reports.best_eval_numbers(best_returns)}, run)
    summary["interrupted"] = interrupted
    if options.init_from is not None:
        summary["init_from"] = options.init_from
    if options.pbt is not None:
        summary["pbt"] = {**dataclasses.asdict(options.pbt), "lineage": LINEAGE_FILE,
                          "final_hparams": {k: v.tolist() for k, v in asked.hparams_now().items()
                                            if k in options.pbt.perturb}}
    if asked.stop_run:
        summary["stopped_by"] = "callback"
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    if run_dir is not None and is_writer():
        reports.write_summary(run_dir, summary)
        if members.grid and summary["settings"] is not None:
            reports.write_sweep_table(run_dir, members, summary["settings"])
        from qlax.runs.plotting import learning_curve, pbt_lineage  # matplotlib is imported only when plotting

        learning_curve([run_dir], run_dir / "learning_curve.png")
        if (run_dir / LINEAGE_FILE).exists():
            pbt_lineage(run_dir, run_dir / "pbt.png")
    if all_diverged:
        cause = envs.non_finite_output(config.env)
        advice = f"The environment itself returns NaN or infinite {cause}: fix it" if cause else \
            "Try a smaller lr or gradient: semi"
        raise DivergedError(
            "every member diverged (non-finite loss or parameters); each froze at its last finite state"
            + (f", saved in {run_dir}" if run_dir else "") + f". {advice}.")
    if jax.process_count() == 1 and placement.padded > placement.members:
        state = jax.tree.map(lambda leaf: leaf[:placement.members], state)
    return RunResult(summary=summary, state=state, eval_returns=returns, run_dir=run_dir, members=members)


class _Asked:
    """What callbacks asked for: to stop the run, members to stop, members to replace and
    dynamic settings to change (carried out by `carry_out` on the next state the loop holds
    before it starts a chunk). `hparams`: each member's dynamic settings as they will be."""

    def __init__(self, hparams):
        self.stop_run = False
        self.members: set[int] = set()
        self.copies: dict[int, int] = {}
        self.hparams = hparams  # HParams of numpy (members,) leaves
        self.hparams_changed = False

    def hparams_now(self) -> dict[str, np.ndarray]:
        return {field.name: np.array(getattr(self.hparams, field.name)) for field in dataclasses.fields(self.hparams)}

    def hear(self, callback: Callback, report: ChunkReport) -> None:
        callback(report)
        self.stop_run |= report.stop_requested
        self.members |= report.members_to_stop
        self.copies.update(report.replacements)
        if report.new_hparams is not None:
            self.hparams = self.hparams.replace(**{k: np.asarray(v, np.asarray(getattr(self.hparams, k)).dtype)
                                                   for k, v in report.new_hparams.items()})
            self.hparams_changed = True

    def carry_out(self, state: TrainState, placement: Placement) -> TrainState:
        if self.copies:
            dst, src = (np.array(rows, np.int32) for rows in zip(*sorted(self.copies.items())))
            state = _copy_members(state, dst, src, placement)
            self.copies = {}
        if self.hparams_changed:
            state = state.replace(hparams=placement.put(self.hparams))
            self.hparams_changed = False
        if self.members:
            mask = np.zeros(placement.members, bool)
            mask[sorted(self.members)] = True
            self.members = set()
            state = state.replace(stopped=state.stopped | placement.put(mask))
        return state


def _copy_members(state: TrainState, dst: np.ndarray, src: np.ndarray, placement: Placement) -> TrainState:
    """Members `dst` of `state` take over members `src`'s state, but their own key and best
    policy; in place (the state is donated), laid out over the devices as `state` is (the
    compiled chunk expects it so)."""
    return _copier(state, placement, len(dst))(state, jnp.asarray(dst, jnp.int32), jnp.asarray(src, jnp.int32))


def _copier(state: TrainState, placement: Placement, copies: int):
    """The compiled copy of `copies` members' states: once per layout and number of copies
    (a PBT run compiles its own with the chunk, `_train_and_report`)."""
    key = (jax.tree.structure(state), placement.sharding, copies)
    if key not in _COPIERS:
        copy = jax.shard_map(_copy_rows, mesh=placement.sharding.mesh, in_specs=(PartitionSpec(AXIS), None, None),
                             out_specs=PartitionSpec(AXIS))
        rows = jax.ShapeDtypeStruct((copies,), jnp.int32)
        _COPIERS[key] = jax.jit(copy, donate_argnums=0).lower(state, rows, rows).compile()
    return _COPIERS[key]


_COPIERS: dict = {}


def _copy_rows(state: TrainState, dst: jax.Array, src: jax.Array) -> TrainState:
    """On each device's block of members: the copied rows travel alone (a sum across the
    devices of each source row, zeros where a device does not hold it), so a round costs
    the rows it copies, not the whole state."""
    copied = jax.tree.map(lambda block: _copy_block_rows(block, dst, src), state.replace(key=(), best=()))
    return copied.replace(key=state.key, best=state.best)


_BITS = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}


def _copy_block_rows(block: jax.Array, dst: jax.Array, src: jax.Array) -> jax.Array:
    """This device's `block` of rows with global rows `dst` set to rows `src`, bit for bit:
    rows travel as unsigned integers (a float sum or select on the CPU flushes subnormals to
    zero, and replay storage keeps integers as float bit patterns)."""
    n = block.shape[0]
    first = jax.lax.axis_index(AXIS) * n
    if block.dtype == jnp.bool_:
        to_bits, from_bits = (lambda x: x.astype(jnp.uint8)), (lambda x: x.astype(jnp.bool_))
    else:
        width = _BITS[block.dtype.itemsize]
        to_bits, from_bits = (lambda x: jax.lax.bitcast_convert_type(x, width)), \
            (lambda x: jax.lax.bitcast_convert_type(x, block.dtype))
    held = ((src >= first) & (src < first + n)).reshape((-1,) + (1,) * (block.ndim - 1))
    rows = jnp.where(held, to_bits(block[jnp.clip(src - first, 0, n - 1)]), 0)
    rows = jax.lax.psum(rows, AXIS)  # each source row from the one device that holds it

    def put(i, block):
        at = jnp.clip(dst[i] - first, 0, n - 1)
        mine = (dst[i] >= first) & (dst[i] < first + n)
        row = jnp.where(mine, rows[i], to_bits(block[at]))  # on the other devices: the row as it is
        return jax.lax.dynamic_update_index_in_dim(block, from_bits(row), at, 0)

    return jax.lax.fori_loop(0, dst.shape[0], put, block)


def _metric_arrays(metrics) -> dict[str, np.ndarray]:
    """A chunk's gathered numbers as {name: (members,) array}."""
    return {field.name: np.asarray(getattr(metrics, field.name)) for field in dataclasses.fields(metrics)}


def _all_done(metrics) -> bool:
    return bool(np.all(np.asarray(metrics.stopped) | np.asarray(metrics.diverged)))


def _save(run_dir: Path, state: TrainState, chunk: int, meta: dict[str, Any], keep: int,
          placement: Placement, members: Members) -> None:
    """Checkpoint the members: one process saves the real rows; several save their own."""
    checkpoint.save(run_dir, state, chunk, meta, keep, settings=run_settings(members),
                    rows=placement.members if jax.process_count() == 1 else None,
                    shard=jax.process_index(), shards=jax.process_count(), barrier=barrier)
