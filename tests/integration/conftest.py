"""Fixtures for tests against the real broker: each test gets its own topics and group."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from stream.settings import Settings, load_settings


@pytest.fixture
def test_settings(kafka_bootstrap: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings with this test's own topics, group (``test_<name>_<uuid>``) and snapshot
    directory; no alert age limit."""
    name = request.node.name.replace("[", "_").replace("]", "")[:40]
    run = f"test_{name}_{uuid.uuid4().hex[:8]}"
    return load_settings(
        {
            "bootstrap_servers": kafka_bootstrap,
            "group_id": run,
            "topic_metrics": f"{run}.metrics",
            "topic_logs": f"{run}.logs",
            "topic_incidents": f"{run}.incidents",
            "topic_feedback": f"{run}.feedback",
            "topic_alerts": f"{run}.alerts",
            "topic_dlq": f"{run}.dlq",
            "topic_models": f"{run}.models",
            "topic_features": f"{run}.features",
            "topic_scoped_alerts": f"{run}.alerts.scoped",
            "topic_problems": f"{run}.problems",
            "topic_silences": f"{run}.silences",
            "artifact_dir": str(tmp_path / "artifacts"),
            "http_port": 0,
            "http_host": "127.0.0.1",
            "log_level": "WARNING",
            "snapshot_dir": str(tmp_path / "snapshots"),
            # The tests' events have fixed, historic event times (deterministic, and equal to
            # their offline replays): every age may alert. test_alert_age.py sets the limit.
            "max_alert_age_s": 0,
        }
    )
