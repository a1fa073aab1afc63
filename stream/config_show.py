"""``vigil config show``: the effective settings, where each came from, secrets masked.

Settings come from, first match wins: a command-line flag, a ``VIGIL_<NAME>`` environment
variable, the ``--config`` TOML file (or ``VIGIL_CONFIG``), the default. The listing says which
one gave each value, so an operator can tell why a detector runs as it does.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from stream.settings import Settings

__all__ = ["MASK", "effective_settings", "format_settings"]

MASK = "********"
"""What a secret's value shows (a set secret; an unset one shows as unset)."""


def effective_settings(
    settings: Settings,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    config_file: Path | None,
) -> list[dict[str, Any]]:
    """Each setting: its name, environment variable, value (secrets masked) and source.

    Args:
        settings: The settings in force (built from the same flags, environment and file).
        flags: The values given as command-line flags (None: not given).
        environ: The process environment.
        config_file: The TOML file read, if any.

    Examples:
        >>> settings = Settings(group_id="g", http_token="s3cret-token-of-16+")
        >>> rows = effective_settings(
        ...     settings, {"group_id": "g"}, {"VIGIL_HTTP_TOKEN": "s3cret-token-of-16+"}, None)
        >>> [(r["name"], r["value"], r["source"]) for r in rows if r["source"] != "default"]
        [('group_id', 'g', 'flag'), ('http_token', '********', 'env VIGIL_HTTP_TOKEN')]
    """
    in_file: Mapping[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as f:
            in_file = tomllib.load(f)
    env = {k.upper(): k for k in environ}
    values = settings.model_dump(mode="json")  # JSON-ready; secrets are masked below
    rows = []
    for name in Settings.model_fields:
        variable = f"VIGIL_{name.upper()}"
        if flags.get(name) is not None:
            source = "flag"
        elif variable in env:
            source = f"env {variable}"
        elif name in in_file:
            source = f"config {config_file}"
        else:
            source = "default"
        value = values[name]
        if isinstance(getattr(settings, name), SecretStr):
            value = MASK
        rows.append({"name": name, "env": variable, "value": value, "source": source})
    return rows


def format_settings(rows: list[dict[str, Any]], *, as_json: bool = False) -> str:
    """The rows as aligned text (``name = value  # source``), or as a JSON array.

    Examples:
        >>> print(format_settings([
        ...     {"name": "group_id", "env": "VIGIL_GROUP_ID", "value": "g", "source": "flag"},
        ...     {"name": "http_token", "env": "VIGIL_HTTP_TOKEN", "value": None,
        ...      "source": "default"}]))
        group_id   = "g"    # flag
        http_token = unset  # default
    """
    if as_json:
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    shown = [
        (r["name"], "unset" if r["value"] is None else orjson.dumps(r["value"]).decode(), r)
        for r in rows
    ]
    width = max((len(name) for name, _, _ in shown), default=0)
    value_width = max((len(text) for _, text, _ in shown if len(text) <= 40), default=0)
    return "\n".join(
        f"{name:<{width}} = {text:<{value_width}}  # {r['source']}" for name, text, r in shown
    )
