"""A file written whole or not at all: written beside its place, then moved in.

A full disk or a killed process leaves the previous file (or none), never a truncated one,
and the error names the file that was to be written, not the partial one beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def write_whole(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(partial)` on a file beside `path`, then move it onto `path`."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """`path`'s text replaced whole by `text`."""
    return write_whole(path, lambda partial: partial.write_text(text))
