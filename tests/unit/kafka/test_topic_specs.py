"""stream.kafka.topic_specs: one definition of Vigil's topics for its processes and for
deploy/kafka/create-topics.sh, which cannot diverge: the script is generated from it, and
running it creates exactly what the code does."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from stream.kafka.topic_specs import TOPICS, TopicSpec, creation_script, topic_specs
from stream.settings import Settings, load_settings, settings_env

SCRIPT = Path(__file__).parents[3] / "deploy" / "kafka" / "create-topics.sh"


def test_the_script_is_generated_from_the_definition() -> None:
    assert SCRIPT.read_text() == creation_script(), "run `make topics-script`"
    assert os.access(SCRIPT, os.X_OK)


def test_every_topic_setting_has_a_definition() -> None:
    named = {
        name
        for name in Settings.model_fields
        if name.startswith("topic_")
        and name not in ("topic_partitions", "topic_replication_factor")
    }
    assert {role.setting for role in TOPICS} == named


def _created_by_the_script(settings: Settings, tmp_path: Path) -> dict[str, TopicSpec]:
    """Run the script with a stand-in kafka-topics.sh that records its arguments."""
    calls = tmp_path / "calls"
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    fake.chmod(0o755)
    script = tmp_path / "create-topics.sh"
    script.write_text(SCRIPT.read_text().replace("/opt/kafka/bin/kafka-topics.sh", str(fake)))
    env = settings_env(settings, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    subprocess.run(["sh", str(script)], env=env, check=True, timeout=30)
    created: dict[str, TopicSpec] = {}
    for line in calls.read_text().splitlines():
        words = shlex.split(line)
        if "--create" not in words:
            continue
        configs = dict(
            words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--config"
        )
        name = words[words.index("--topic") + 1]
        created[name] = TopicSpec(
            name,
            int(words[words.index("--partitions") + 1]),
            int(words[words.index("--replication-factor") + 1]),
            configs,
        )
    return created


def test_the_script_creates_what_a_vigil_process_creates(tmp_path: Path) -> None:
    for settings in (
        load_settings({}),
        load_settings(
            {
                "topic_partitions": 12,
                "topic_replication_factor": 3,
                "topic_metrics": "prod.metrics",
                "topic_features": "prod.features",
                "sidecar_window_s": 7200.5,  # whole seconds, in both
            }
        ),
    ):
        expected = {spec.name: spec for spec in topic_specs(settings)}
        assert _created_by_the_script(settings, tmp_path) == expected
        (tmp_path / "calls").unlink()


def test_retention_as_decided() -> None:
    specs = {s.name: s for s in topic_specs(load_settings({"topic_partitions": 12}))}
    day_ms = 86_400_000
    assert specs["vigil.metrics"].configs == {"retention.ms": str(7 * day_ms)}
    assert specs["vigil.alerts"].configs == {"retention.ms": str(14 * day_ms)}
    assert specs["vigil.models"] == TopicSpec("vigil.models", 1, 1, {"cleanup.policy": "compact"})
    assert specs["vigil.features"].configs == {"retention.ms": str(day_ms)}
    compact = {"cleanup.policy": "compact"}
    assert specs["vigil.silences"] == TopicSpec("vigil.silences", 1, 1, compact)
    assert specs["vigil.problems"] == TopicSpec("vigil.problems", 12, 1, compact)
    single = {"vigil.models", "vigil.silences"}
    assert {s.partitions for n, s in specs.items() if n not in single} == {12}
