"""The correlation's configuration from the settings: grouping rules and the topology file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from stream.core.problems.correlator import CorrelationConfig
from stream.core.problems.topology import Topology, topology_from
from stream.settings import ConfigError, Settings

__all__ = ["correlation_setup"]


def correlation_setup(settings: Settings) -> tuple[CorrelationConfig, Topology]:
    """How alerts are grouped, and the dependency graph (empty without a topology file).

    Raises:
        ConfigError: The topology file is not TOML or not ``[services.NAME] depends_on``.
    """
    config = CorrelationConfig(
        window_s=settings.correlate_window_s,
        hold_s=settings.correlate_hold_s,
        quiet_s=settings.correlate_quiet_s,
        scope_label=settings.correlate_scope_label or None,
        group_labels=tuple(
            label.strip() for label in settings.correlate_group_labels.split(",") if label.strip()
        ),
    )
    path = settings.correlate_topology
    if path is None:
        return config, Topology()
    try:
        return config, topology_from(tomllib.loads(Path(path).read_text()))
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"correlate_topology {path}: {exc}") from None
