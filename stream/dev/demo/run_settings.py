"""The settings of one demo run, from the user's."""

from __future__ import annotations

from pathlib import Path

from stream.kafka.kafka_options import PLAINTEXT_SETTINGS
from stream.settings import Settings

__all__ = ["SIDECAR_RETRAIN_S", "demo_settings"]

SIDECAR_RETRAIN_S = 20.0
"""The demo's sidecar retrains this often (wall clock), unless configured otherwise."""


def demo_settings(
    settings: Settings, *, bootstrap: str, run_id: str, run_dir: Path, external: bool
) -> Settings:
    """``settings`` for run ``run_id``: its own state directories under ``run_dir``; on a
    Kafka of the user's (``external``), its own topics and groups, as a run's event time
    starts now and data of an earlier run would be older; on the demo's own broker,
    PLAINTEXT.

    Where the user chose nothing, the demo's default: the sidecar retrains every
    :data:`SIDECAR_RETRAIN_S`.

    Examples:
        >>> s = demo_settings(Settings(incident_strategy="max_f1"), bootstrap="k:9092",
        ...     run_id="r1", run_dir=Path("/tmp/demo/r1"), external=True)
        >>> s.topic_alerts, s.group_id, s.incident_strategy, s.sidecar_retrain_s
        ('demo-r1.vigil.alerts', 'vigil-detector-demo-r1', 'max_f1', 20.0)
    """
    update: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "snapshot_dir": str(run_dir / "snapshots"),
        "artifact_dir": str(run_dir / "artifacts"),
    }
    if "sidecar_retrain_s" not in settings.model_fields_set:
        update["sidecar_retrain_s"] = SIDECAR_RETRAIN_S
    if external:
        prefix = f"demo-{run_id}."
        for name in Settings.model_fields:
            value = getattr(settings, name)
            if name.startswith("topic_") and isinstance(value, str):
                update[name] = prefix + value
        update["group_id"] = f"{settings.group_id}-demo-{run_id}"
        update["sidecar_group_id"] = f"{settings.sidecar_group_id}-demo-{run_id}"
    else:
        update.update(PLAINTEXT_SETTINGS)
    return settings.model_copy(update=update)
