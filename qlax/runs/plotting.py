"""Learning curves from run directories, drawn on matplotlib `Figure`s.

The only module that imports matplotlib, so training never pays for it. It never imports
pyplot or chooses a backend: a figure saved to a file draws with the canvas its format
needs, and a notebook's or script's own pyplot backend stays as it was.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from qlax.core.files import write_whole
from qlax.envs import make_env
from qlax.program.trainer import solve_threshold
from qlax.runs.rundir import check_bound, load_members, metric_values
from qlax.settings.config import ConfigError, short

Y_LABELS = {"greedy_return": "greedy return (check after each chunk)",
            "avg_return_100": "100-episode training average return"}


def read_curve(run_dir: Path, env: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(env steps per seed at the end of each chunk (chunks,), returns (chunks, members), their column).

    The returns are the greedy checks' (`greedy_return`) where the run made them, since
    they are what the policy does; else the 100-episode training average. The x axis is
    the nominal budget position of each chunk, so early-stopped members, whose rows repeat
    their frozen values, stay aligned with the others.
    """
    members = load_members(run_dir, env=env)
    check_bound(run_dir, members)  # a hand-edited config, grid or metrics.csv draws nothing wrong
    config = members.config
    greedy = metric_values(run_dir, "greedy_return")
    chunks = len(greedy) // members.count
    column = "greedy_return" if np.any(np.isfinite(greedy[:chunks * members.count])) else "avg_return_100"
    values = metric_values(run_dir, column)[:chunks * members.count].reshape(chunks, members.count)
    per_chunk = config.chunk_steps * config.num_envs
    budget = config.vector_steps * config.num_envs
    steps = np.minimum(per_chunk * np.arange(1, chunks + 1), budget)
    return steps, values, column


IMAGE_FORMATS = ("png", "pdf", "svg")


def learning_curve(run_dirs: list[Path], out: Path, env: Any = None) -> Path:
    """Write `figure(run_dirs, env)` to the image file `out`, exactly there (its format from
    its suffix, one of IMAGE_FORMATS), or not at all: the image is written beside it and
    moved into place, so a full disk leaves no partial file."""
    out = Path(out)
    image_format = out.suffix[1:].lower()
    if image_format not in IMAGE_FORMATS or out.is_dir():
        raise ConfigError(f"--out {short(str(out))}: name an image file ending "
                          f"{', '.join('.' + f for f in IMAGE_FORMATS)}")
    drawn = figure(run_dirs, env)
    return write_whole(out, lambda partial: drawn.savefig(partial, format=image_format))


def pbt_lineage(run_dir: Path, out: Path) -> Path:
    """Draw a PBT run's lineage (`pbt.csv`): each perturbed setting of each member over the
    chunks (log scale), a dot where a member took over another's state."""
    with (Path(run_dir) / "pbt.csv").open() as file:
        rows = list(csv.DictReader(file))
    settings = [name for name in rows[0] if name not in ("chunk", "member", "score", "copied_from")] if rows else []
    fig = Figure(figsize=(7, 2.6 * max(len(settings), 1)), layout="constrained")
    for i, name in enumerate(settings):
        ax = fig.add_subplot(len(settings), 1, i + 1)
        for member in sorted({int(r["member"]) for r in rows}):
            own = [r for r in rows if int(r["member"]) == member]
            chunks = [int(r["chunk"]) for r in own]
            values = [float(r[name]) for r in own]
            line, = ax.step(chunks, values, where="post", linewidth=1)
            copied = [(c, v) for c, v, r in zip(chunks, values, own) if int(r["copied_from"]) != member]
            if copied:
                ax.plot(*zip(*copied), "o", color=line.get_color(), markersize=4)
        ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.set_xlabel("chunk (a dot: the member took over a better one's state)")
    fig.suptitle(f"{Path(run_dir).name}: population-based training, one line per member")
    fig.savefig(out)
    return Path(out)


def _frozen(run_dir: Path, members: int) -> np.ndarray:
    """(members,) bool: which members stopped early, as metrics.csv's last chunk says (their
    training-average curve stays at what it was when they froze)."""
    stopped = metric_values(run_dir, "stopped")
    chunks = len(stopped) // members
    if not chunks:
        return np.zeros(members, bool)
    return stopped[(chunks - 1) * members:chunks * members] == 1


def figure(run_dirs: list[Path], env: Any = None) -> Figure:
    """The median return (with its interquartile band) of each run, and of each setting of a
    sweep, with each environment's solve threshold; see `read_curve` for which return. `env`:
    the runs' environment given again (`rundir.load_members`)."""
    lines, columns, thresholds = [], set(), {}
    for run_dir in map(Path, run_dirs):
        steps, values, column = read_curve(run_dir, env)
        if values.size == 0:
            continue
        members = load_members(run_dir, env=env)
        config = members.config
        columns.add(column)
        thresholds[config.env] = solve_threshold(config, make_env(config.env, 1))
        frozen = _frozen(run_dir, members.count)
        for s in range(len(members.settings)):
            first, stop = members.member(s, 0), members.member(s, members.seeds)
            own, stopped = values[:, first:stop], int(np.sum(frozen[first:stop]))
            note = f", {stopped} frozen on reaching the threshold: flat from there" if stopped else ""
            lines.append((steps, own, f"{run_dir.name} {members.label(s)}".strip() + f" ({own.shape[1]} seeds{note})",
                          column))
    if len(columns) > 1:  # runs with and without greedy checks: each line says which it shows
        lines = [(x, y, f"{label} [{'greedy' if column == 'greedy_return' else 'avg100'}]", column)
                 for x, y, label, column in lines]
    drawn = {env: t for env, t in thresholds.items() if t is not None}
    rows = -(-(len(lines) + len(drawn)) // 2)  # the legend below the axes, two entries a row
    fig = Figure(figsize=(8, 4.5 + 0.22 * rows), dpi=100, layout="constrained")  # no pyplot: nothing to close
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10" if len(lines) <= 10 else "tab20"]
    for i, (steps, values, label, _) in enumerate(lines):
        _band(ax, steps, values, label, colours(i % colours.N))
    for env, threshold in drawn.items():
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"{env} solved at {threshold:g}")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel(Y_LABELS[columns.pop()] if len(columns) == 1 else "return: greedy check or 100-episode average")
    ax.grid(alpha=0.3)
    ax.set_title(f"{', '.join(thresholds) or 'no data yet'}: median across seeds, interquartile band")
    if lines:
        fig.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    return fig


def _band(ax, steps: np.ndarray, values: np.ndarray, label: str, colour) -> None:
    """A median line with its interquartile band across the columns of `values` (chunks, seeds)."""
    with warnings.catch_warnings():  # chunks before any episode ended are all NaN: drawn as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        low, median, high = np.nanpercentile(np.where(np.isfinite(values), values, np.nan), [25, 50, 75], axis=1)
    ax.plot(steps, median, label=label, color=colour, linewidth=1.5)
    ax.fill_between(steps, low, high, color=colour, alpha=0.15, linewidth=0)
