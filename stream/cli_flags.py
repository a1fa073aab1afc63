"""The command line's settings flags: which settings each command offers, and how.

Settings are grouped by concern (:data:`SETTING_GROUPS`), and each command offers flags for
the groups it uses (:data:`COMMAND_GROUPS`); every setting is read from ``VIGIL_<NAME>`` and
the TOML file by every command.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from pathlib import Path
from typing import Any

from stream.settings import Settings

__all__ = [
    "COMMAND_GROUPS",
    "SETTING_GROUPS",
    "add_settings_flags",
    "config_file",
    "setting_flags",
    "setting_group",
]


def _field_type(annotation: Any) -> Any:
    """The scalar type behind ``X | None`` and ``Literal[...]`` annotations."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _field_type(next(a for a in args if a is not type(None)))
    if typing.get_origin(annotation) is typing.Literal:
        return str
    return annotation


SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    "kafka": (
        "bootstrap_servers",
        "group_id",
        "group_instance_id",
        "session_timeout_ms",
        "client_id",
        "auto_offset_reset",
        "security_protocol",
        "sasl_",
        "ssl_",
        "max_partition_fetch_bytes",
        "connect_timeout_s",
    ),
    "topics": ("topic_", "create_topics"),
    "service": ("shutdown_timeout_s", "exit_with_parent", "http_", "log_level", "log_format"),
    "events": ("processing_guarantee", "max_batch", "batch_wait_s", "max_message_bytes"),
    "alerts": ("alert_",),
    "anomaly": (
        "max_alert_age_s",
        "anomaly_",
        "warmup_events",
        "engine",
        "hst_",
        "seed",
        "detector",
        "season_",
    ),
    "logs": ("log_window_s", "log_lateness_s", "log_idle_s", "log_max_templates"),
    "risk": ("incident_",),
    "snapshots": ("snapshots", "snapshot_"),
    "artifacts": ("artifact_dir",),
    "sidecar": ("sidecar_",),
    "notify": ("notify_", "alertmanager_url"),
    "correlate": ("correlate_",),
    "silences": ("maintenance_windows", "deploy_expected_s"),
    "telemetry": ("metrics_services", "metrics_services_max"),
}
"""Settings by concern: a setting belongs to the group with an entry equal to its name, or
ending in ``_`` and starting it."""

_EVERY_GROUP = tuple(SETTING_GROUPS)
COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "detect": tuple(
        g for g in SETTING_GROUPS if g not in ("sidecar", "correlate", "notify", "silences")
    ),
    "sidecar": ("kafka", "topics", "service", "risk", "artifacts", "sidecar"),
    "replay": ("events", "alerts", "anomaly", "logs", "risk"),
    "evaluate": ("events", "alerts", "anomaly", "logs", "risk"),
    "simulate": ("kafka", "topics", "service"),
    "notify": ("kafka", "topics", "service", "alerts", "notify", "silences"),
    "correlate": ("kafka", "topics", "service", "snapshots", "correlate", "silences"),
    "demo": _EVERY_GROUP,  # its detector and sidecar run with them
    "bench": _EVERY_GROUP,
    "show": _EVERY_GROUP,
    "silence": ("kafka", "topics", "service", "silences"),
}
"""The setting groups each command offers as flags (the others still come from VIGIL_<NAME>
and the TOML file: `vigil config show` lists them all)."""


def setting_group(name: str) -> str:
    """The group of the setting ``name`` (see :data:`SETTING_GROUPS`).

    Examples:
        >>> setting_group("hst_trees"), setting_group("topic_alerts"), setting_group("log_level")
        ('anomaly', 'topics', 'service')
    """
    for group, entries in SETTING_GROUPS.items():
        if any(name == e or (e.endswith("_") and name.startswith(e)) for e in entries):
            return group
    raise KeyError(f"setting {name} has no group")


def add_settings_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """A flag for each setting of the groups ``command`` uses (:data:`COMMAND_GROUPS`)."""
    groups = COMMAND_GROUPS[command]
    group = parser.add_argument_group(
        "settings",
        "each also read from VIGIL_<NAME> and the --config TOML file; settings this command "
        "does not use have no flag here (`vigil config show` lists all)",
    )
    group.add_argument("--config", type=Path, help="TOML file of settings (or VIGIL_CONFIG).")
    for name, info in Settings.model_fields.items():
        if setting_group(name) not in groups:
            continue
        flag = "--" + name.replace("_", "-")
        kind = _field_type(info.annotation)
        env = f"VIGIL_{name.upper()}"
        help_text = f"{info.description} [{env}; default: {info.default}]"
        choices = (
            typing.get_args(info.annotation)
            if typing.get_origin(info.annotation) is typing.Literal
            else None
        )
        if kind is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            # Values stay text here: pydantic validates and reports them like env values.
            group.add_argument(
                flag, dest=name, default=None, metavar=name.upper(), choices=choices, help=help_text
            )


def config_file(args: argparse.Namespace) -> Path | None:
    """``--config``, else ``VIGIL_CONFIG``, else none."""
    if args.config is not None:
        return Path(args.config)
    env_config = os.environ.get("VIGIL_CONFIG")
    return Path(env_config) if env_config else None


def setting_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (None: not given)."""
    return {name: getattr(args, name, None) for name in Settings.model_fields}
