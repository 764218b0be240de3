"""What a run writes about its members: metrics.csv, summary.json and, for sweeps, sweep.csv.

Everything here works on numpy results already gathered from the devices. A plain run
reports per seed (lists with one entry per seed); a sweep reports one entry per member
(its setting, its seed and its numbers) and one row per setting.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from qlax.core.files import write_text
from qlax.settings.sweep import Members, setting_table

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
SWEEP_FILE = "sweep.csv"
METRIC_COLUMNS = ("env_steps", "epsilon", "avg_return_100", "episodes", "loss", "stopped", "diverged",
                  "greedy_return", "episode_length", "updates", "learning_rate")
# Columns are only ever added at the end: a metrics.csv holds the first n of METRIC_COLUMNS,
# n one of these (8: a run started before qlax logged episode lengths, updates and the
# learning rate). A resumed run keeps writing the columns its file started with.
COLUMN_COUNTS = (8, len(METRIC_COLUMNS))
_INTEGERS = {"env_steps", "episodes", "stopped", "diverged", "updates"}  # written as integers, the rest as %.6g


def metric_header(members: Members, columns: int = len(METRIC_COLUMNS)) -> list[str]:
    """`seed, env_steps, ...` for a plain run; `member, seed, <swept settings>, env_steps, ...` for a
    sweep; with the first `columns` of METRIC_COLUMNS."""
    lead = ["member", "seed", *members.keys] if members.grid else ["seed"]
    return lead + list(METRIC_COLUMNS[:columns])


def metric_columns(header: list[str], members: Members) -> int | None:
    """How many of METRIC_COLUMNS a metrics.csv headed `header` holds (one of COLUMN_COUNTS);
    None if no run of `members` writes that header."""
    return next((n for n in COLUMN_COUNTS if header == metric_header(members, n)), None)


def read_header(path: Path) -> list[str]:
    """The first row of the CSV file `path` ([] if it is empty)."""
    with path.open(newline="") as file:
        return next(csv.reader(file), [])


class MetricsFile:
    """metrics.csv, appended and flushed after every chunk so an interrupted run keeps its rows,
    each in the columns of the file's own header."""

    def __init__(self, path: Path | None, members: Members):
        self.path, self.members = path, members

    def start(self) -> None:
        self.path.write_text(",".join(metric_header(self.members)) + "\n")

    def truncate(self, chunks: int) -> None:
        """Keep the header and the rows of the first `chunks` chunks: those a resumed checkpoint covers."""
        lines = self.path.read_text().splitlines(keepends=True) if self.path.is_file() else []
        if not lines:
            self.start()
            return
        self.path.write_text("".join(lines[:1 + chunks * self.members.count]))

    def __enter__(self):
        if self.path is not None:
            # A header no run writes is refused before a resume gets here (`rundir.load_state`).
            self.columns = METRIC_COLUMNS[:metric_columns(read_header(self.path), self.members)]
            self.file = self.path.open("a", newline="")
            self.writer = csv.writer(self.file, lineterminator="\n")
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            self.file.close()

    def write(self, m) -> None:
        """One row per member of the gathered ChunkMetrics `m`."""
        if self.path is None:
            return
        members = self.members
        for i in range(members.count):
            lead = [i, members.seed_of(i), *members.settings[members.setting_of(i)].values()] \
                if members.grid else [i]
            self.writer.writerow(lead + [int(getattr(m, name)[i]) if name in _INTEGERS
                                         else f"{float(getattr(m, name)[i]):.6g}" for name in self.columns])
        self.file.flush()


def train_numbers(final, keep_best: bool = False) -> dict[str, list]:
    """Per-member training numbers from the final (gathered) ChunkMetrics; with `keep_best`,
    each member's best greedy check and the env steps it was taken at."""
    best = {}
    if keep_best:
        best = {"best_greedy_return": [round(float(r), 3) if math.isfinite(r) else None
                                       for r in final.best_greedy_return],
                "best_env_steps": [int(s) if math.isfinite(r) else None
                                   for r, s in zip(final.best_greedy_return, final.best_env_steps)]}
    return {
        "env_steps": [int(v) for v in final.env_steps],
        "early_stopped": [bool(s) for s in final.stopped],
        "diverged": [bool(d) for d in final.diverged],
        "train_avg_return_100": [round(float(a), 3) if math.isfinite(a) else None for a in final.avg_return_100],
        "train_episodes": [int(e) for e in final.episodes],
        **best,
    }


def eval_numbers(returns: np.ndarray | None, threshold: float | None) -> dict[str, list | None]:
    """Per-member greedy numbers from `returns` (members, episodes); None where there are none."""
    if returns is None:
        return {"eval_mean_return": None, "eval_std_return": None, "solved": None}
    means = returns.mean(axis=1)
    return {"eval_mean_return": [round(float(m), 3) for m in means],
            "eval_std_return": [round(float(s), 3) for s in returns.std(axis=1)],
            "solved": [bool(threshold is not None and m >= threshold) for m in means]}


def length_numbers(lengths: np.ndarray | None, limit: int | None) -> dict[str, list | None]:
    """Per-member greedy episode lengths from `lengths` (members, episodes): their mean, and
    how many ran to the time limit `limit` (episodes the environment never ended: a greedy
    policy that survives, or one cycling through the same states); None where there are
    none, and the count None without a limit."""
    if lengths is None:
        return {"mean_length": None, "at_time_limit": None}
    return {"mean_length": [round(float(m), 3) for m in lengths.mean(axis=1)],
            "at_time_limit": None if limit is None else [int(n) for n in (lengths >= limit).sum(axis=1)]}


def best_eval_numbers(returns: np.ndarray | None) -> dict[str, list]:
    """keep_best runs: each member's best-check policy evaluated afresh (`eval_episodes` new
    episodes, none of those that chose it: `best_greedy_return` is the maximum over the
    checks, so it is biased upward); nothing otherwise."""
    if returns is None:
        return {}
    return {"best_eval_mean_return": [round(float(m), 3) for m in returns.mean(axis=1)]}


def summary(members: Members, numbers: dict[str, list], run: dict[str, Any]) -> dict[str, Any]:
    """summary.json: `run`'s fields (preset, env, timings, ...) and the members' numbers.

    A plain run lists each number per seed at the top level; a sweep has `members` (one
    entry per member), `settings` (one row per setting) and `best_setting`.
    """
    solved = numbers["solved"]
    fraction = None if solved is None else sum(solved) / len(solved)
    if not members.grid:
        return {**run, "num_seeds": members.seeds, **numbers, "solved_fraction": fraction}
    entries = [{"member": i, "seed": members.seed_of(i), "setting": members.setting_of(i),
                **members.settings[members.setting_of(i)], **{k: v[i] if v is not None else None
                                                             for k, v in numbers.items()}}
               for i in range(members.count)]
    table = None if solved is None else setting_table(members, np.asarray(numbers["eval_mean_return"]),
                                                      np.asarray(solved))
    best = None if table is None else max(table, key=lambda r: (r["solved_fraction"], r["mean_return"]))
    return {**run, "grid": {k: list(v) for k, v in members.grid}, "num_settings": len(members.settings),
            "num_seeds": members.seeds, "num_members": members.count, "solved_fraction": fraction,
            "best_setting": best, "best_setting_chosen_on": BEST_SETTING_CHOSEN_ON if best else None,
            "settings": table, "members": entries}


# What a sweep's best_setting is chosen on, said beside it: its own numbers are the returns
# that chose it, so they flatter it; a fresh evaluation of its seeds does not.
BEST_SETTING_CHOSEN_ON = ("these evaluation returns (the most solved, then the highest mean): they chose it, so "
                          "they flatter it; train the chosen setting again with other seeds (--set seed=...) for "
                          "a number that did not choose it")


def json_text(value: Any) -> str:
    """`value` as strict JSON, which every reader accepts: a number that is not finite (a
    diverged return, a 1e30 reward summed past float range, a NaN threshold) is written
    as null, never as JSON's invalid Infinity or NaN."""
    return json.dumps(_finite(value), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def write_summary(run_dir: Path, summary_fields: dict[str, Any]) -> None:
    write_text(run_dir / SUMMARY_FILE, json_text(summary_fields))


def write_sweep_table(run_dir: Path, members: Members, table: list[dict[str, Any]]) -> None:
    """sweep.csv: one row per setting."""
    columns = ["setting", *members.keys, "seeds", "mean_return", "stderr_return", "solved_fraction"]
    with (run_dir / SWEEP_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in table])


def best_so_far(members: Members, avg100: np.ndarray, stopped: np.ndarray) -> str:
    """The progress line's 'best' part: the setting with the most seeds at the threshold,
    then the highest mean 100-episode training average."""
    scores = []
    for s in range(len(members.settings)):
        own = slice(members.member(s, 0), members.member(s, members.seeds))
        finite = avg100[own][np.isfinite(avg100[own])]
        scores.append((int(np.sum(stopped[own])), float(finite.mean()) if finite.size else -math.inf, s))
    solved, mean, s = max(scores)
    avg = f"{mean:.1f}" if math.isfinite(mean) else "-"
    return f"best {members.label(s)}: avg100 {avg}, {solved}/{members.seeds} at threshold"
