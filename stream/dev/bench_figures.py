"""``vigil bench``'s output: one measured :class:`Figure`, and the figures shown as a plain-text
table or as a JSON report (with the machine and the settings they were measured on)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from stream.settings import Settings

__all__ = ["MIB", "Figure", "Progress", "format_table", "in_section", "json_report"]

Progress = Callable[[str], None]
"""Told a line of text as each measurement starts (on stderr unless ``--quiet``)."""
MIB = 2**20


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure.

    Attributes:
        key: Stable name in the JSON output, e.g. ``engine_speedup_10x8``.
        label: What the table shows.
        value: The figure (None when there is nothing to report, e.g. no crossover).
        unit: Its unit.
        note: How it was measured, or the target it is held against.
        section: The section it belongs to.
    """

    key: str
    label: str
    value: float | None
    unit: str
    note: str = ""
    section: str = ""


def in_section(figure: Figure, section: str) -> Figure:
    """``figure`` as a figure of ``section``."""
    return Figure(figure.key, figure.label, figure.value, figure.unit, figure.note, section)


def json_report(figures: Iterable[Figure], sections: Sequence[str], settings: Settings) -> bytes:
    """The figures as indented JSON, with the machine and the settings they were measured on."""
    import importlib.metadata

    report = {
        "benchmark": "vigil bench",
        "sections": list(sections),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "river": importlib.metadata.version("river"),
        },
        "settings": settings.model_dump(
            include={
                "detector",
                "engine",
                "hst_trees",
                "hst_height",
                "hst_window",
                "max_batch",
                "batch_wait_s",
            }
        ),
        "figures": {
            f.key: {
                "label": f.label,
                "value": f.value,
                "unit": f.unit,
                "note": f.note,
                "section": f.section,
            }
            for f in figures
        },
    }
    return orjson.dumps(report, option=orjson.OPT_INDENT_2)


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as one plain-text table, a header per section."""
    width = max(len(f.label) for f in figures)
    lines: list[str] = []
    for i, f in enumerate(figures):
        if i == 0 or f.section != figures[i - 1].section:
            lines += [""] if lines else []
            lines.append(f"[{f.section}]")
        value = _format_value(f.value)
        lines.append(f"  {f.label:<{width}}  {value:>12} {f.unit:<9} {f.note}")
    return "\n".join(lines)


def _format_value(value: float | None) -> str:
    """A figure for the table: whole numbers and large ones without decimals.

    Examples:
        >>> _format_value(None), _format_value(5.0), _format_value(1234.56), _format_value(2.345)
        ('—', '5', '1,235', '2.35')
    """
    if value is None:
        return "—"
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"
