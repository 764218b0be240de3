"""Ctrl-C and SIGTERM during training: finish the chunk, save, and leave cleanly.

The first signal only sets a flag that the host loop reads between chunks. A second
Ctrl-C exits at once with code 130; checkpoints are written atomically, so the last
complete one survives that.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

EXIT_CODE = 130


class GracefulInterrupt:
    """Context manager: `requested` turns true on the first SIGINT or SIGTERM."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            sys.stderr.write("\nqlax: second interrupt, exiting now; the last complete checkpoint is kept\n")
            sys.stderr.flush()
            os._exit(EXIT_CODE)
        self.requested = True
        sys.stderr.write("\nqlax: interrupted, finishing the current chunk and saving "
                         "(Ctrl-C again to quit at once)\n")
        sys.stderr.flush()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
