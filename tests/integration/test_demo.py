"""``vigil demo`` end to end against the test broker: metrics and logs, alerts matched."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from stream.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_catches_metric_anomalies_and_log_incidents(test_settings: Settings) -> None:
    env = {
        **os.environ,
        "VIGIL_GROUP_ID": test_settings.group_id,
        "VIGIL_TOPIC_METRICS": test_settings.topic_metrics,
        "VIGIL_TOPIC_LOGS": test_settings.topic_logs,
        "VIGIL_TOPIC_INCIDENTS": test_settings.topic_incidents,
        "VIGIL_TOPIC_FEEDBACK": test_settings.topic_feedback,
        "VIGIL_TOPIC_ALERTS": test_settings.topic_alerts,
        "VIGIL_TOPIC_DLQ": test_settings.topic_dlq,
        "VIGIL_TOPIC_MODELS": test_settings.topic_models,
        "VIGIL_HTTP_PORT": "0",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "demo",
            "--bootstrap",
            test_settings.bootstrap_servers,
            "--duration",
            "20",
            "--rate",
            "400",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    figures = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", summary)}
    print(summary)
    assert figures["events_sent"] > 4000
    assert figures["log_lines_sent"] > 20_000
    assert figures["events_scored"] >= 0.9 * (figures["events_sent"] + figures["log_lines_sent"])
    assert figures["injected_anomalies"] >= 5
    assert figures["caught"] >= 0.6 * figures["injected_anomalies"]
    assert figures["log_incidents"] >= 3
    assert figures["log_caught"] >= 2
    assert "LOG ALERT" in done.stdout
