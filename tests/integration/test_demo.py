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
from aiokafka import AIOKafkaConsumer
from scipy.stats import poisson

from stream.dev.broker import free_port
from stream.dev.demo.guard import ForeignMember, check_groups
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


def _demo_with_its_broker(port: int, run_dir: Path, *flags: str) -> subprocess.Popen[str]:
    """``vigil demo`` as a user runs it: its own broker (on ``port``), default groups."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "demo",
            "--port",
            str(port),
            "--run-dir",
            str(run_dir),
            "--plain",
            *flags,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until_progress(proc: subprocess.Popen[str], *, timeout_s: float, scored: bool = True) -> None:
    """Read the demo's output up to its first progress line (with events scored)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        if line.startswith("progress:") and not (scored and " scored=0 " in line):
            return
        assert time.monotonic() < deadline, f"no progress within {timeout_s:g} s"
    pytest.fail("the demo ended before it showed progress")


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
    # at most 3 a service-day. How many, and how many of them an incident follows within
    # the horizon, moves with when labels arrive against the metrics (the online model learns
    # in that order): 8-33 alerts, 0.24-0.6 of them ahead, over runs here; the same day
    # replayed with its labels moved 5-100 min gives 18-29 alerts, 0.36-0.61 ahead
    # (docs/incident_risk.md). A random alert is followed by one of the ~25 incidents within
    # 15 min ~2 % of the time (25 x 15 min over 12 x 25 h): ahead >= 12 % is 6 times chance, and
    # a precision of 0.3 over 30 alerts (or 0.5 over 10) misses it about once in 100 runs.
    # "At most 3 a service-day" is a rate, and a count is tested against it: alerts at
    # exactly 3 a service-day over 12.5 service-days exceed 52 in 1 run of 100 (Poisson; a
    # hard bound at the mean, 37.5, failed a run on a loaded machine at 41, 3.3 a day, which
    # a rate of 3 gives 1 run in 4).
    assert figures["risk_alerts"] <= poisson.ppf(0.99, 3 * 12 * 25 / 24)
    assert figures["risk_alerts_ahead"] >= 0.12 * figures["risk_alerts"]
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl_c", "sighup"])
def test_ctrl_c_stops_everything_and_prints_the_summary(
    test_settings: Settings, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C, or a closed terminal's SIGHUP."""
    proc = _demo(test_settings, tmp_path)
    _until_progress(proc, timeout_s=120)
    signalled = time.monotonic()
    proc.send_signal(sig)
    rest, stderr = proc.communicate(timeout=90)
    took = time.monotonic() - signalled
    print(f"\nCtrl-C to exit: {took:.1f} s")
    assert proc.returncode == 0, stderr[-3000:]
    figures = _summary(rest)
    assert figures["events_sent"] > 0
    assert figures["events_scored"] > 0
    assert not _children_left(tmp_path)


def test_a_closed_stdout_stops_everything(test_settings: Settings, tmp_path: Path) -> None:
    """``vigil demo | head``: once nobody reads, the demo stops its children and exits."""
    proc = _demo(test_settings, tmp_path)
    _until_progress(proc, timeout_s=120, scored=False)
    assert proc.stdout is not None
    proc.stdout.close()
    code = proc.wait(timeout=90)
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read()
    assert code == 0, stderr[-3000:]
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


def test_kill_9_takes_all_it_started_with_it_and_the_next_demo_runs_alone(
    tmp_path: Path,
) -> None:
    port = free_port()
    first = _demo_with_its_broker(port, tmp_path / "first")
    _until_progress(first, timeout_s=180)
    started = psutil.Process(first.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in started]
    assert any("kafka.Kafka" in c for c in commands), commands  # its broker
    assert sum("stream.cli detect" in c or "stream.cli sidecar" in c for c in commands) == 2
    first.kill()
    first.wait(timeout=10)
    killed = time.monotonic()
    _, alive = psutil.wait_procs(started, timeout=5)
    print(
        f"\nkill -9 of the demo: its {len(started)} processes gone in "
        f"{time.monotonic() - killed:.1f} s"
    )
    assert not alive, [" ".join(p.cmdline())[:120] for p in alive]
    first.communicate(timeout=10)

    second = _demo_with_its_broker(port, tmp_path / "second", "--duration", "45")
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr[-3000:]
    figures = _summary(stdout)
    print(stdout.strip().splitlines()[-1])
    assert figures["events_scored"] > 0
    assert figures["models_promoted"] >= 1
    assert not _children_left(tmp_path)


async def test_a_foreign_member_of_the_demos_group_is_refused(test_settings: Settings) -> None:
    stray = AIOKafkaConsumer(
        f"{test_settings.group_id}.metrics",
        bootstrap_servers=test_settings.bootstrap_servers,
        group_id=test_settings.group_id,
    )
    await stray.start()
    try:
        await stray.getmany(timeout_ms=3000)  # joined
        await check_groups(test_settings, own=1)  # one member: as many as the demo's own
        with pytest.raises(ForeignMember, match=test_settings.group_id):
            await check_groups(test_settings, own=0)
    finally:
        await stray.stop()
