"""Callbacks: your own code on the host after every chunk of a run.

    def prune(report: qlax.ChunkReport) -> None:
        if report.chunk >= 5 and np.median(report.metrics["avg_return_100"]) < 50:
            report.stop()  # the run stops: saved, and `qlax resume` continues it

    qlax.train(config, callbacks=[prune])

A callback is any callable taking a `ChunkReport`: each member's numbers for the chunk just
finished, where the run stands in its budget, and its directory. It may

- stop the run (`report.stop()`): the chunk already running is finished and saved, and
  the run ends as an interrupted one does (summary.json: `interrupted` true, `stopped_by`
  "callback"); `qlax resume` continues it;
- stop members (`report.stop_members([i, ...])`): they freeze as an early stop freezes
  them, from the next chunk not yet running (qlax starts each chunk before it reads the
  last one's numbers, so the device never waits); a checkpoint holds them stopped;
- write its own files into `report.run_dir` (None for a run without a directory);
- replace members (`report.replace_members({dst: src, ...}, hparams)`): each `dst` takes
  over the whole training state of `src` (parameters, optimizer, replay, its environments
  and episodes; not its random key or best policy) and the dynamic settings `hparams`
  gives it, between chunks and without recompiling: population-based training's exploit
  and explore (`qlax.runs.pbt`).

Callbacks run in every process of a multi-process run, on the same numbers: their
decisions must not depend on the process. An exception in a callback ends the run; its
latest checkpoint is kept.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from qlax.settings.config import ConfigError, TrainConfig
from qlax.settings.sweep import Members


@dataclasses.dataclass
class ChunkReport:
    """What a callback sees after a chunk, and what it can ask for."""

    chunk: int  # chunks done
    num_chunks: int  # chunks in the budget
    metrics: dict[str, np.ndarray]  # per member (leading axis `members.count`): env_steps, epsilon, avg_return_100,
    # episodes, loss, stopped, diverged, greedy_return, best_greedy_return, best_env_steps, episode_length, updates,
    # learning_rate (metrics.csv's numbers)
    members: Members  # who each member is: `members.label(members.setting_of(i))`, `members.seed_of(i)`
    config: TrainConfig
    run_dir: Path | None
    wall_s: float  # seconds since the run (or the resume) started
    hparams: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # each dynamic setting per member now
    stop_requested: bool = False
    members_to_stop: set[int] = dataclasses.field(default_factory=set)
    replacements: dict[int, int] = dataclasses.field(default_factory=dict)  # dst -> src
    new_hparams: dict[str, np.ndarray] | None = None

    @property
    def env_steps(self) -> np.ndarray:
        """Env steps each member has taken."""
        return self.metrics["env_steps"]

    def stop(self) -> None:
        """Stop the run after the chunk already running; it is saved and can be resumed."""
        self.stop_requested = True

    def stop_members(self, members: Iterable[int]) -> None:
        """Freeze these members (indices from 0 to members.count - 1) from the next chunk not yet running."""
        chosen = {int(i) for i in members}
        wrong = sorted(i for i in chosen if not 0 <= i < self.members.count)
        if wrong:
            raise ConfigError(f"stop_members({wrong[0]}): members run from 0 to {self.members.count - 1}")
        self.members_to_stop |= chosen


    def replace_members(self, copies: dict[int, int], hparams: dict[str, np.ndarray] | None = None) -> None:
        """Members `dst` take over the training state of members `src` ({dst: src}) from the
        next chunk not yet running, and every member the dynamic settings `hparams` gives
        ({name: (members,) values}; unnamed settings and None keep theirs)."""
        for dst, src in copies.items():
            for i in (dst, src):
                if not 0 <= int(i) < self.members.count:
                    raise ConfigError(f"replace_members: member {i} is not one of 0 to {self.members.count - 1}")
        unknown = sorted(set(hparams or {}) - set(self.hparams))
        if unknown:
            raise ConfigError(f"replace_members: {unknown[0]!r} is not a dynamic setting ({', '.join(self.hparams)})")
        self.replacements.update({int(dst): int(src) for dst, src in copies.items()})
        if hparams:
            self.new_hparams = {**self.hparams, **{k: np.asarray(v) for k, v in hparams.items()}}


Callback = Callable[[ChunkReport], None]


def checked(callbacks: Iterable[Callback] | None, config: TrainConfig) -> tuple[Callback, ...]:
    """The callbacks as a tuple, each checked to be callable, and checked against `config` by
    its own `check(config)` where it has one (`pbt.PBT`), before anything compiles."""
    if callbacks is None:
        return ()
    if callable(callbacks):
        callbacks = (callbacks,)
    found = tuple(callbacks)
    for callback in found:
        if not callable(callback):
            raise ConfigError(f"callbacks: {callback!r:.80} is not callable; pass functions taking a ChunkReport")
        if callable(getattr(callback, "check", None)):
            callback.check(config)
    return found
