"""Ctrl-C and SIGTERM: during training, finish the chunk, save and leave cleanly; anywhere
else in the `qlax` command, leave at once.

During training (`GracefulInterrupt`) the first signal only sets a flag that the host loop
reads between chunks; a second exits at once. Checkpoints are written atomically, so the
last complete one survives that. Outside training the command's handler (`exit_on_signal`)
ends the process at once: while JAX imports, while a run is planned or compiled, and
during the final evaluation. The exit code is 128 + the signal (130 for SIGINT, 143 for
SIGTERM), stderr gets one line saying what was saved, and nothing else runs: no
traceback, no exit handlers. Once the command has printed its result
(`ignore_while_exiting`), a signal is ignored and it exits with its own code.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_last_signal = signal.SIGINT  # what interrupted the last run (SIGINT when another process was)
_saved: Callable[[], str] = lambda: "the last complete checkpoint, if any, is kept"


def exit_code() -> int:
    """The exit code of an interrupted run: 128 + the signal that interrupted it."""
    return 128 + _last_signal


def is_command_line() -> bool:
    """Whether this process is the `qlax` command: `python -m qlax.tools.cli` or the installed script."""
    argv = getattr(sys, "orig_argv", [])
    if "-m" in argv:
        return argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["qlax.tools.cli"]
    return os.path.basename(sys.argv[0]) == "qlax"


def exit_on_signal(saved: Callable[[], str] | None = None) -> dict:
    """Make SIGINT and SIGTERM end the process at once; `saved` says what was saved by then.
    Returns the handlers it replaced, for `restore`."""
    global _saved
    if saved is not None:
        _saved = saved
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return {}
    return {sig: signal.signal(sig, _exit_now) for sig in SIGNALS}


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def ignore_while_exiting() -> None:
    """The command is done and has said so: from here a signal is ignored, and the process
    exits with the command's own code. Python's shutdown puts the default handlers back
    (which kill with no line) for every signal that it does not find ignored."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def _exit_now(signum, frame) -> None:
    _leave(signum, f"interrupted by {signal.Signals(signum).name}")


def _leave(signum: int, what: str) -> None:
    """One line on stderr (what happened, what was saved), then exit 128 + signum at once."""
    try:
        saved = _saved()
    except Exception:  # the line and the exit code matter more than its details
        saved = "see the run directory"
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os.write(2, f"\nqlax: {what}; {saved}\n".encode(errors="backslashreplace"))
    os._exit(128 + signum)


class GracefulInterrupt:
    """Context manager: `requested` turns true on the first SIGINT or SIGTERM."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        global _last_signal
        if self.requested:
            _leave(signum, "second interrupt, exiting now")
        self.requested = True
        _last_signal = signum
        sys.stderr.write("\nqlax: interrupted, finishing the current chunk and saving "
                         "(Ctrl-C again to quit at once)\n")
        sys.stderr.flush()

    def __enter__(self):
        global _last_signal
        _last_signal = signal.SIGINT
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        restore(self._previous)
