"""What a run shows on the terminal while it trains: a rich progress bar per chunk.

When the output is not a terminal (a log file, CI), one plain line per chunk instead.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def spread(name: str, values: np.ndarray) -> str:
    """'name mean [min, max]' over the finite values; dashes when there are none."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return f"{name}       - [-, -]"
    return f"{name} {finite.mean():7.1f} [{finite.min():.0f}, {finite.max():.0f}]"


def describe(env_steps: int, steps_per_s: float, epsilon: np.ndarray, avg100: np.ndarray,
             stopped: int | None, members: int, best: str | None = None,
             greedy: np.ndarray | None = None) -> str:
    """One status line: steps, speed, epsilon, 100-episode training average across members
    (mean [min, max]), the greedy checks' returns when stop_on is greedy, members stopped
    (early stop at the threshold, or a callback; None: there is no threshold), and for a
    sweep the best setting so far. Whether a member solved is the final evaluation's to say."""
    line = f"{env_steps:>9,d} env steps/seed  {steps_per_s:>9,.0f} steps/s  eps {float(np.mean(epsilon)):.3f}  "
    line += spread("avg100", avg100)
    if greedy is not None and np.isfinite(greedy).any():
        line += "  " + spread("greedy", greedy)
    line += "  no threshold" if stopped is None else f"  stopped {stopped}/{members}"
    return f"{line}  |  {best}" if best else line


class ProgressDisplay:
    """Context manager: `compiled()` once, then `update(...)` after every chunk."""

    def __init__(self, title: str, total_steps: int, enabled: bool = True):
        self.console = Console()
        self.enabled = enabled
        self.total_steps = total_steps
        self.title = title
        self.live = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), console=self.console, transient=False) if self.live else None

    def __enter__(self):
        if self.live:
            self.progress.start()
            self.task = self.progress.add_task(self.title, total=self.total_steps, status="compiling...")
        elif self.enabled:
            self.console.print(f"{self.title}: compiling...", highlight=False)
        return self

    def __exit__(self, *exc):
        if self.live:
            self.progress.stop()

    def update(self, env_steps: int, status: str) -> None:
        if self.live:
            self.progress.update(self.task, completed=env_steps, status=status)
        elif self.enabled:
            self.console.print(f"{self.title}: {status}", highlight=False, soft_wrap=True)
