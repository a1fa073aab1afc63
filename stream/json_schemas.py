"""JSON Schemas of the messages on Vigil's topics (``shared/CONTRACT.md``), generated from
the pydantic models that read and write them, so the two cannot drift apart.

``vigil schema [NAME]`` prints one (or lists the names); ``vigil schema --out DIR`` writes all
of them as ``DIR/NAME.json``. ``docs/schemas/`` holds them, and a unit test checks that they
match the code. Input messages (events, labels) are described as Vigil accepts them, output
messages (alerts, dead letters) as Vigil writes them (every field present).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel

from stream.schemas import (
    Alert,
    DeadLetter,
    Feedback,
    IncidentEvent,
    LogEvent,
    MetricEvent,
    Problem,
    Silence,
)

__all__ = ["MESSAGES", "render", "run_schema", "schema_of"]

MESSAGES: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"], str]] = {
    "metric-event": (MetricEvent, "validation", "vigil.metrics"),
    "log-event": (LogEvent, "validation", "vigil.logs"),
    "incident-event": (IncidentEvent, "validation", "vigil.incidents"),
    "feedback": (Feedback, "validation", "vigil.feedback"),
    "alert": (Alert, "serialization", "vigil.alerts"),
    "dead-letter": (DeadLetter, "serialization", "vigil.dlq"),
    "problem": (Problem, "serialization", "vigil.problems"),
    "silence": (Silence, "validation", "vigil.silences"),
}
"""Message name -> (model, whether it is read or written, its default topic)."""


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of message ``name``.

    Examples:
        >>> schema = schema_of("alert")
        >>> schema["title"], schema["properties"]["schema_version"]["default"]
        ('Alert', 2)
    """
    model, mode, topic = MESSAGES[name]
    schema = model.model_json_schema(mode=mode)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{name}.json",
        **schema,
        "x-vigil-topic": topic,
    }


def render(schema: dict[str, Any]) -> bytes:
    """A schema as stable, reviewable JSON (sorted keys, two-space indent, final newline)."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def run_schema(name: str | None, out: Path | None) -> int:
    """``vigil schema [NAME] [--out DIR]``."""
    if name is not None and name not in MESSAGES:
        print(
            f"vigil schema: unknown message {name!r}: one of {', '.join(MESSAGES)}", file=sys.stderr
        )
        return 2
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for each in [name] if name is not None else list(MESSAGES):
            (out / f"{each}.json").write_bytes(render(schema_of(each)))
        return 0
    if name is None:
        print("\n".join(MESSAGES))
        return 0
    sys.stdout.buffer.write(render(schema_of(name)))
    return 0
