"""``vigil replay``: simulated metrics with injected anomalies, mixed with other lines."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.cli import main
from stream.codec import encode
from stream.core.logs import LogPipeline
from stream.core.pipeline import MetricPipeline
from stream.dev.log_simulate import LogIncident, LogSimulator
from stream.dev.simulate import MetricSimulator
from stream.offline import replay as replay_module
from stream.offline.replay import ReplayStats, line_kind, replay
from stream.schemas import Alert
from stream.settings import Settings

OTHER_LINES = [
    b'{"ts": 0, "service": "api", "level": "ERROR", "message": "upstream timeout"}',
    b'{"ts": 0, "incident_id": "INC-1", "service": "svc-00", "status": "opened"}',
    b'{"ts": 0, "alert_id": "abc", "verdict": "false_positive"}',
]
BAD_LINES = [
    b"{oops",
    b"[1, 2]",
    b'{"ts": 0, "service": "svc-00", "metrics": {"cpu_p95": "hot"}}',
    b'{"ts": 0, "service": "svc-00"}',
]
ARGS = ["--anomaly-budget-per-day", "86.4", "--warmup-events", "300"]

Injected = dict[tuple[str, datetime], tuple[str, ...]]
"""Injected anomalies' metric names by (service, event time)."""


@dataclass
class Replay:
    path: Path
    injected: Injected
    alerts: list[Alert]
    summary: dict[str, object]


def _replay(path: Path, out: Path) -> tuple[list[Alert], str]:
    """``vigil replay PATH --out OUT``: the alerts written, and what went to stderr."""
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["replay", str(path), "--out", str(out), *ARGS]) == 0
    alerts = [Alert.model_validate_json(line) for line in out.read_bytes().splitlines()]
    return alerts, err.getvalue()


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    """6000 simulated events (3 services), with other kinds, bad lines and a blank line."""
    events = list(MetricSimulator(services=3, anomaly_rate=0.01, seed=1).events(6000))
    lines = [e.to_bytes() for e in events]
    lines[3000:3000] = [*OTHER_LINES, *BAD_LINES, b""]
    directory = tmp_path_factory.mktemp("replay")
    path = directory / "metrics.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    injected = {(a.service, a.ts): a.metrics for e in events if (a := e.anomaly) is not None}
    alerts, err = _replay(path, directory / "alerts.jsonl")
    return Replay(path, injected, alerts, orjson.loads(err.splitlines()[0]))


def test_summary_counts_every_line(replayed: Replay) -> None:
    summary = replayed.summary
    assert summary["lines"] == 6000 + len(OTHER_LINES) + len(BAD_LINES)
    assert summary["scored"] == 6000 + 1  # the log line goes to the log pipeline
    assert summary["log_services"] == 1
    assert summary["rejected"] == {
        "invalid_json": 1,
        "not_an_object": 1,
        "wrong_type": 1,
        "missing_field": 1,
    }
    assert summary["unsupported"] == {}
    assert summary["labels"] == {"incidents": 1, "feedback": 1}  # incident-risk labels
    assert summary["alerts"] == len(replayed.alerts) > 0
    assert summary["services"] == 3


def test_alerts_point_at_their_line(replayed: Replay) -> None:
    lines = replayed.path.read_bytes().splitlines()
    for alert in replayed.alerts:
        assert alert.evidence.topic == "metrics.jsonl"
        line = orjson.loads(lines[alert.evidence.offset])
        assert line["service"] == alert.service
        assert datetime.fromisoformat(line["ts"]) == alert.event_ts


def test_most_injected_anomalies_are_alerted_with_the_right_feature(replayed: Replay) -> None:
    injected = replayed.injected
    caught = [a for a in replayed.alerts if (a.service, a.event_ts) in injected]
    assert len(injected) >= 20
    assert len({(a.service, a.event_ts) for a in caught}) >= len(injected) / 2
    for alert in caught:
        first = alert.explanation.top_features[0].name
        assert first in injected[(alert.service, alert.event_ts)], alert


def test_replaying_twice_gives_the_same_alerts(replayed: Replay, tmp_path: Path) -> None:
    again, _ = _replay(replayed.path, tmp_path / "again.jsonl")

    def stable(alerts: list[Alert]) -> list[dict[str, object]]:
        return [a.model_dump(exclude={"detected_at"}) for a in alerts]

    assert stable(again) == stable(replayed.alerts)
    assert len({a.alert_id for a in again}) == len(again)


def test_max_batch_cuts_the_batches_and_anomaly_alerts_stay_the_same(
    replayed: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--max-batch`` is the size of the replay's batches (it was ignored: always 2,000);
    anomaly alerts are the same at any batch size."""
    sizes: list[int] = []

    def spied(*args: Any, **kwargs: Any) -> Iterator[Alert]:
        sizes.append(kwargs["batch_size"])
        return replay(*args, **kwargs)

    monkeypatch.setattr(replay_module, "replay", spied)
    out = tmp_path / "small.jsonl"
    with contextlib.redirect_stderr(io.StringIO()):
        args = ["replay", str(replayed.path), "--out", str(out), "--max-batch", "7", *ARGS]
        assert main(args) == 0
    small = [Alert.model_validate_json(line) for line in out.read_bytes().splitlines()]

    def anomalies(alerts: list[Alert]) -> list[dict[str, object]]:
        return [a.model_dump(exclude={"detected_at"}) for a in alerts if a.kind == "anomaly"]

    assert sizes == [7]
    assert anomalies(small) == anomalies(replayed.alerts)


def test_bad_lines_are_reported_with_their_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([OTHER_LINES[0], b"", b"{oops"]) + b"\n")
    alerts, err = _replay(path, tmp_path / "out.jsonl")
    assert alerts == []
    assert "line 3: invalid_json" in err


def test_a_timestamp_overflowing_in_utc_does_not_stop_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "overflow.jsonl"
    path.write_bytes(b'{"ts": "9999-12-31T23:59:59-01:00", "service": "a", "metrics": {"x": 1}}\n')
    _, err = _replay(path, tmp_path / "out.jsonl")
    assert orjson.loads(err.splitlines()[0])["rejected"] == {"bad_timestamp": 1}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"metrics": {}, "message": "x"}', "metrics"),
        (b'{"message": "x"}', "logs"),
        (b'{"incident_id": "x"}', "incidents"),
        (b'{"verdict": "x"}', "feedback"),
        (b'{"service": "x"}', "unknown"),
        (b"[]", None),
        (b"{oops", None),
    ],
)
def test_line_kind(line: bytes, kind: str | None) -> None:
    assert line_kind(line) == kind


def test_replay_scores_log_lines_and_rejects_bad_ones() -> None:
    """Log lines go through the log pipeline: an error burst after warm-up raises a log alert,
    and a log line without a level is rejected with its reason, not fatal."""
    burst = LogIncident("svc-a", "error_burst", 4005.0, 120.0)
    sim = LogSimulator(["svc-a", "svc-b"], lines_per_s=1.0, incidents=(burst,), seed=3)
    lines = [encode(event) for event in sim.events(4500.0)]
    lines.insert(100, b'{"ts": 0, "service": "svc-a", "message": "no level here"}')
    stats = ReplayStats()
    logs = LogPipeline()
    pipeline = MetricPipeline(Settings().anomaly_config())
    alerts = list(replay(lines, pipeline, stats=stats, logs=logs, batch_size=700))
    assert stats.rejected == {"missing_field": 1}
    assert stats.unsupported == {}
    assert stats.scored == len(lines) - 1
    assert len(logs) == 2
    assert len(pipeline) == 0
    burst_alerts = [
        a
        for a in alerts
        if a.source == "logs"
        and a.service == "svc-a"
        and -30 < (a.event_ts - sim.start).total_seconds() - burst.start_s < 60  # two windows
    ]
    assert burst_alerts, alerts
    assert burst_alerts[0].explanation.top_templates


def test_replay_alerts_on_old_events_whatever_the_age_limit(
    replayed: Replay, tmp_path: Path
) -> None:
    """VIGIL_MAX_ALERT_AGE_S is the live detector's: offline, 2026-11-23's events alert."""
    out = tmp_path / "alerts.jsonl"
    with contextlib.redirect_stderr(io.StringIO()):
        assert (
            main(
                ["replay", str(replayed.path), "--out", str(out), *ARGS, "--max-alert-age-s", "60"]
            )
            == 0
        )
    alerts = [Alert.model_validate_json(line) for line in out.read_bytes().splitlines()]
    assert alerts
    assert [a.alert_id for a in alerts] == [a.alert_id for a in replayed.alerts]
