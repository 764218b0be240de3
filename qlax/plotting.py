"""Learning curves from run directories (matplotlib, non-interactive backend).

The only module that imports matplotlib, so training never pays for it.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from qlax.rundir import load_members  # noqa: E402


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps per seed at the end of each chunk (chunks,), avg_return_100 (chunks, members)).

    The x axis is the nominal budget position of each chunk, so early-stopped members,
    whose rows repeat their frozen values, stay aligned with the others.
    """
    members = load_members(run_dir)
    config = members.config
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    chunks = len(rows) // members.count
    avg = np.array([float(r["avg_return_100"]) for r in rows[:chunks * members.count]]).reshape(chunks, members.count)
    per_chunk = config.chunk_steps * config.num_envs
    budget = config.vector_steps * config.num_envs
    steps = np.minimum(per_chunk * np.arange(1, chunks + 1), budget)
    return steps, avg


def learning_curve(run_dirs: list[Path], out: Path) -> Path:
    """Plot the median 100-episode average (with its interquartile band) of each run, and of
    each setting of a sweep."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for run_dir in map(Path, run_dirs):
        steps, avg = read_curve(run_dir)
        if avg.size == 0:
            continue
        members = load_members(run_dir)
        for s in range(len(members.settings)):
            own = avg[:, members.member(s, 0):members.member(s, members.seeds)]
            label = f"{run_dir.name} {members.label(s)}".strip()
            _band(ax, steps, own, f"{label} ({own.shape[1]} seeds)")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("100-episode average return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("median across seeds, interquartile band")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def _band(ax, steps: np.ndarray, avg: np.ndarray, label: str) -> None:
    """A median line with its interquartile band across the columns of `avg` (chunks, seeds)."""
    with warnings.catch_warnings():  # chunks before any episode ended are all NaN: drawn as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        low, median, high = np.nanpercentile(np.where(np.isfinite(avg), avg, np.nan), [25, 50, 75], axis=1)
    line, = ax.plot(steps, median, label=label)
    ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
