"""What every layer reports bad input with: `ConfigError`, and short one-line texts of
values and exceptions for messages. At the bottom: it imports nothing of qlax."""

from __future__ import annotations

import reprlib
from typing import Any


class ConfigError(ValueError):
    """A setting has a bad name, type or value; the message names it and the allowed range."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


def short(value: Any, width: int = 80) -> str:
    """repr(value) cut to `width` characters with an ellipsis, so no message embeds a huge value."""
    try:
        text = _SHORT.repr(value)
    except ValueError:  # an integer with more digits than Python prints
        text = f"<a {value.bit_length()}-bit integer>" if isinstance(value, int) else f"<{type(value).__name__}>"
    return text if len(text) <= width else text[:width - 3] + "..."


def reason(err: BaseException, width: int = 160) -> str:
    """An exception as one short line (for an error that reports a user's code failing)."""
    text = str(err)
    return one_line(f"{type(err).__name__}: {text}" if text else type(err).__name__, width)


def printable(text: str) -> str:
    """`text` with control characters (ESC, BEL, ...) and undecodable bytes written as escapes,
    so a value echoed in a message cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(text: str, width: int) -> str:
    """`text` with control characters escaped, cut to `width` characters."""
    text = printable(text[:width])
    return text if len(text) <= width else text[:width - 3] + "..."
