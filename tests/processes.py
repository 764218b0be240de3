"""Test helpers: signal a child process once a file shows what it is doing, or this process
once a run has shown some chunks."""

import signal
import time
from pathlib import Path

from qlax.runs import experiment


def signal_when(proc, path: Path, sig: int, settle: float = 0.3, timeout: float = 120.0) -> None:
    """Send `sig` to `proc` `settle` seconds after `path` appears (or at `timeout`)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists():
        time.sleep(0.02)
    time.sleep(settle)
    proc.send_signal(sig)


def interrupt_after(monkeypatch, chunks: int):
    """Deliver a real SIGINT to this process once `chunks` chunks have been shown."""
    shown = []
    original = experiment.ProgressDisplay.update

    def update(self, *args):
        original(self, *args)
        shown.append(1)
        if len(shown) == chunks:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(experiment.ProgressDisplay, "update", update)
