"""Test helper: signal a child process once a file shows what it is doing."""

import time
from pathlib import Path


def signal_when(proc, path: Path, sig: int, settle: float = 0.3, timeout: float = 120.0) -> None:
    """Send `sig` to `proc` `settle` seconds after `path` appears (or at `timeout`)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists():
        time.sleep(0.02)
    time.sleep(settle)
    proc.send_signal(sig)
