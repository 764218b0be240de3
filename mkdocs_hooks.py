"""mkdocs hook: the API reference's table of TrainConfig's settings, generated from their
declarations (help, default, range or choices) and their owners (what reads each), so the
table cannot drift from the code."""

from __future__ import annotations

import dataclasses

MARKER = "<!-- settings table -->"


def settings_table() -> str:
    """A markdown table: every setting, its default, its allowed values, what reads it, and
    whether a sweep or PBT may vary it without compiling again (dynamic)."""
    from qlax.settings import config

    rows = ["| setting | default | allowed | read by | dynamic | meaning |", "|---|---|---|---|---|---|"]
    for field in dataclasses.fields(config.TrainConfig):
        meta, name = field.metadata, field.name
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if meta["choices"]:
            allowed = ", ".join(f"`{c}`" for c in meta["choices"])
        elif meta["low"] is not None or meta["high"] is not None:
            allowed = config.range_text(name)
        else:
            allowed = ""
        reader = "the run" if name in config.RUN_SETTINGS else config.readers(name)
        dynamic = "yes" if name in config.DYNAMIC_SETTINGS else ""
        cells = [f"`{name}`", f"`{default}`", allowed, reader, dynamic, meta["help"]]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return markdown.replace(MARKER, settings_table()) if MARKER in markdown else markdown
