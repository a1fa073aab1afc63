"""Vigil's topics and their configs: one definition for every Vigil process that creates them
and for ``deploy/kafka/create-topics.sh``, which is generated from it.

Regenerate the script after a change here: ``make topics-script`` (``python -m
stream.kafka.topic_specs > deploy/kafka/create-topics.sh``);
``tests/unit/kafka/test_topic_specs.py`` fails while the two differ, and runs the script to check it
creates what the code would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stream.settings import Settings

__all__ = [
    "TOPICS",
    "TopicRole",
    "TopicSpec",
    "creation_script",
    "features_topic_spec",
    "topic_spec",
    "topic_specs",
]

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create if missing."""

    name: str
    partitions: int
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicRole:
    """One of Vigil's topics, whatever it is named.

    Attributes:
        setting: The setting that names it (``topic_metrics``).
        retention_days: ``retention.ms`` in days (None: the broker's default).
        compacted: ``cleanup.policy=compact``, one partition (read whole by everyone)
            unless ``partitioned``.
        partitioned: A compacted topic with ``topic_partitions`` partitions (written by a
            consumer group that scales out).
        window_retention: ``retention.ms`` is the sidecar's training window
            (``sidecar_window_s``, whole seconds).
        why: The reason, a comment in the script before the first topic that gives it.
    """

    setting: str
    retention_days: int | None = None
    compacted: bool = False
    partitioned: bool = False
    window_retention: bool = False
    why: str = ""


TOPICS: tuple[TopicRole, ...] = (
    TopicRole(
        "topic_metrics",
        retention_days=7,
        why="Inputs, keyed by service: a week to replay after an outage or a restore from "
        "snapshots.",
    ),
    TopicRole("topic_logs", retention_days=3),
    TopicRole(
        "topic_incidents",
        retention_days=30,
        why="Labels: small, and read from the beginning by new detector groups.",
    ),
    TopicRole("topic_feedback", retention_days=30),
    TopicRole(
        "topic_alerts",
        retention_days=14,
        why="Outputs: two weeks for alerting systems to catch up and for operators to inspect.",
    ),
    TopicRole("topic_dlq", retention_days=14),
    TopicRole(
        "topic_models",
        compacted=True,
        why="The newest model version per key, forever: compacted, one partition (read whole "
        "by everyone).",
    ),
    TopicRole(
        "topic_features",
        window_retention=True,
        why="Labelled risk vectors for the sidecar: kept as long as its training window spans.",
    ),
    TopicRole(
        "topic_scoped_alerts",
        retention_days=14,
        why="Alerts keyed by their scope (region, cluster): vigil correlate's consumer group "
        "scales out over it.",
    ),
    TopicRole(
        "topic_problems",
        compacted=True,
        partitioned=True,
        why="The newest state of every problem, keyed by problem_id: compacted, partitioned "
        "like the scopes that write it.",
    ),
    TopicRole(
        "topic_silences",
        compacted=True,
        why="Silences, keyed by silence_id (a tombstone ends one): read whole by everyone.",
    ),
)
"""Every topic a Vigil process creates, in the script's order."""


def _configs(role: TopicRole, settings: Settings) -> dict[str, str]:
    if role.compacted:
        return {"cleanup.policy": "compact"}
    if role.window_retention:
        return {"retention.ms": str(int(settings.sidecar_window_s) * 1000)}
    if role.retention_days is not None:
        return {"retention.ms": str(role.retention_days * DAY_MS)}
    return {}


def topic_spec(settings: Settings, setting: str) -> TopicSpec:
    """The topic that ``setting`` (say ``topic_models``) names, as Vigil creates it."""
    (role,) = [r for r in TOPICS if r.setting == setting]
    return TopicSpec(
        getattr(settings, role.setting),
        1 if role.compacted and not role.partitioned else settings.topic_partitions,
        settings.topic_replication_factor,
        _configs(role, settings),
    )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic Vigil uses, as created when missing (by any Vigil process)."""
    return [topic_spec(settings, role.setting) for role in TOPICS]


def features_topic_spec(settings: Settings) -> TopicSpec:
    """The features topic: kept as long as the sidecar's training window spans."""
    return topic_spec(settings, "topic_features")


_SCRIPT_HEAD = """\
#!/bin/sh
# Creates Vigil's topics, with their configs, on the docker-compose.yaml broker: run once by
# the kafka-init service, in the apache/kafka image (kafka-topics.sh, POSIX sh). The names,
# partitions and replication come from the same VIGIL_* variables the detectors read;
# --if-not-exists makes a second run a no-op. Production clusters: create them likewise (see
# deploy/k8s/README.md) or let the detectors create them (VIGIL_CREATE_TOPICS, the default),
# with the same configs.
#
# Generated from stream/kafka/topic_specs.py by `make topics-script`: edit that, not this file
# (tests/unit/kafka/test_topic_specs.py fails while they differ).
set -eu

topics=/opt/kafka/bin/kafka-topics.sh
bootstrap="${VIGIL_BOOTSTRAP_SERVERS:?}"
partitions="${VIGIL_TOPIC_PARTITIONS:?}"
replication="${VIGIL_TOPIC_REPLICATION_FACTOR:?}"
day_ms=86400000
# The features topic keeps the sidecar's training window (VIGIL_SIDECAR_WINDOW_S, whole seconds).
window_s="${VIGIL_SIDECAR_WINDOW_S:?}"
features_ms=$(( ${window_s%.*} * 1000 ))

# create NAME PARTITIONS [CONFIG=VALUE ...]
create() {
    name=$1
    count=$2
    shift 2
    configs=""
    for config in "$@"; do
        configs="$configs --config $config"
    done
    # $configs is split into words on purpose: each --config and its value.
    # shellcheck disable=SC2086
    "$topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \\
        --partitions "$count" --replication-factor "$replication" $configs
}
"""

_SCRIPT_TAIL = """
"$topics" --bootstrap-server "$bootstrap" --describe --topics-with-overrides
"""


def _script_configs(role: TopicRole) -> str:
    if role.compacted:
        return " cleanup.policy=compact"
    if role.window_retention:
        return ' retention.ms="$features_ms"'
    if role.retention_days is not None:
        return f" retention.ms=$(({role.retention_days} * day_ms))"
    return ""


def creation_script() -> str:
    """``deploy/kafka/create-topics.sh``: :data:`TOPICS` as ``kafka-topics.sh`` calls."""
    lines = [_SCRIPT_HEAD]
    for role in TOPICS:
        if role.why:
            lines.append(f"# {role.why}")
        count = "1" if role.compacted and not role.partitioned else '"$partitions"'
        variable = f"VIGIL_{role.setting.upper()}"
        lines.append(f'create "${{{variable}:?}}" {count}{_script_configs(role)}')
    return "\n".join(lines) + "\n" + _SCRIPT_TAIL


if __name__ == "__main__":
    print(creation_script(), end="")
