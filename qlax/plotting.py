"""Learning curves from run directories (matplotlib, non-interactive backend).

The only module that imports matplotlib, so training never pays for it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import yaml  # noqa: E402


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps per seed at the end of each chunk (chunks,), avg_return_100 (chunks, seeds)).

    The x axis is the nominal budget position of each chunk, so early-stopped seeds, whose
    rows repeat their frozen values, stay aligned with the others.
    """
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    seeds = int(config["seeds"])
    chunks = len(rows) // seeds
    avg = np.array([float(r["avg_return_100"]) for r in rows[:chunks * seeds]]).reshape(chunks, seeds)
    per_chunk = int(config["chunk_steps"]) * int(config["num_envs"])
    budget = -(-int(config["total_steps"]) // int(config["num_envs"])) * int(config["num_envs"])
    steps = np.minimum(per_chunk * np.arange(1, chunks + 1), budget)
    return steps, avg


def learning_curve(run_dirs: list[Path], out: Path) -> Path:
    """Plot the median 100-episode average (with its interquartile band) of each run."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for run_dir in map(Path, run_dirs):
        steps, avg = read_curve(run_dir)
        if avg.size == 0:
            continue
        with np.errstate(all="ignore"):
            low, median, high = np.nanpercentile(np.where(np.isfinite(avg), avg, np.nan), [25, 50, 75], axis=1)
        line, = ax.plot(steps, median, label=f"{run_dir.name} ({avg.shape[1]} seeds)")
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("100-episode average return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("median across seeds, interquartile band")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
