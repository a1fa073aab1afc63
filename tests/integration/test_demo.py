"""``vigil demo`` headless (no TTY) against the test broker: the simulated log-processor, a
``vigil detect`` and a ``vigil sidecar`` child, alerts read back and matched with the
incidents injected; the summary says what was caught. Ctrl-C stops it all cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from stream.broker import free_port
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _demo(settings: Settings, run_dir: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "demo",
            "--bootstrap",
            settings.bootstrap_servers,
            "--run-dir",
            str(run_dir),
            *flags,
        ],
        env={**os.environ, "VIGIL_GROUP_ID": settings.group_id},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _summary(stdout: str) -> dict[str, float]:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("summary: "), last
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", last)}


def _children_left(run_dir: Path) -> list[str]:
    """``vigil`` processes still running with this run's state directories."""
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(run_dir) in proc.environ().get("VIGIL_SNAPSHOT_DIR", ""):
                left.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return left


def test_demo_for_60_s_catches_incidents_and_says_so(
    test_settings: Settings, tmp_path: Path
) -> None:
    proc = _demo(test_settings, tmp_path, "--duration", "60")
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    figures = _summary(stdout)
    print(stdout.strip().splitlines()[-1])
    lines = stdout.splitlines()

    # Everything sent was scored by the detector child.
    assert figures["events_sent"] > 15_000
    assert figures["log_lines_sent"] > 100_000
    assert figures["labels_sent"] >= 10
    sent = figures["events_sent"] + figures["log_lines_sent"]
    assert figures["events_scored"] >= 0.99 * sent
    # Incidents were injected and most were caught: warned ahead by the risk model, or
    # detected by the anomaly models while open.
    judged = figures["incidents"] - figures["open"]
    assert judged >= 10
    assert figures["warned"] + figures["detected"] >= 0.6 * judged
    assert figures["warned"] >= 1
    assert figures["risk_alerts_ahead"] >= 1
    # Risk alerts per episode at the default budget: 12 services over ~25 h of event time,
    # at most 3 a service-day (three runs: 26 / 22 / 21, of them 10 / 10 / 9 followed by an
    # incident within the horizon).
    assert figures["risk_alerts"] <= 3 * 12 * 25 / 24
    assert figures["risk_alerts_ahead"] >= 0.25 * figures["risk_alerts"]
    assert figures["anomaly_alerts_in_incidents"] >= 1
    assert figures["log_incidents"] >= 20
    assert figures["log_caught"] >= 0.4 * figures["log_incidents"]
    # The sidecar trained and promoted batch models while the demo ran.
    assert figures["models_promoted"] >= 1
    # Alerts are shown as they fire, with why; incidents with their verdicts.
    for kind in ("ANOMALY", "RISK", "LOG"):
        shown = [line for line in lines if line.startswith(kind)]
        assert shown, f"no {kind} alert shown"
    assert any("baseline" in line for line in lines if line.startswith("ANOMALY"))
    assert any(re.search(r"warned \d+ min ahead", line) for line in lines)
    assert any(line.startswith("progress:") for line in lines)
    assert not _children_left(tmp_path)


def test_ctrl_c_stops_everything_and_prints_the_summary(
    test_settings: Settings, tmp_path: Path
) -> None:
    proc = _demo(test_settings, tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("progress:") and " scored=0 " not in line:
            break
        assert time.monotonic() < deadline, "no progress within 120 s"
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=90)
    took = time.monotonic() - signalled
    print(f"\nCtrl-C to exit: {took:.1f} s")
    assert proc.returncode == 0, stderr[-3000:]
    figures = _summary(rest)
    assert figures["events_sent"] > 0
    assert figures["events_scored"] > 0
    assert not _children_left(tmp_path)


def test_an_unreachable_kafka_is_one_readable_line_and_exit_1(
    test_settings: Settings, tmp_path: Path
) -> None:
    nobody = test_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    proc = _demo(nobody, tmp_path, "--duration", "5")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in stderr
    assert f"vigil demo: Kafka at {nobody.bootstrap_servers}: " in stderr
    assert _summary(stdout)["events_sent"] == 0
