"""Single alerts and silences in ``vigil notify``, with a fake book (no broker): an alert a
silence covers at its event time is skipped as ``silenced``; the others go out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.notify.alert_silences import AlertSilences
from stream.notify.delivery import Job, Origin
from stream.notify.service import Notifier
from stream.notify.sinks import Sink
from stream.schemas import Alert
from stream.settings import Settings

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


class FakeBook:
    """Silences services by name; remembers the event times it was asked at."""

    def __init__(self, silenced: dict[str, list[str]]) -> None:
        self.silenced = silenced
        self.asked: list[tuple[str, datetime]] = []

    def silenced_alert_by(self, alert: Alert, at: datetime) -> list[str]:
        self.asked.append((alert.alert_id, at))
        return list(self.silenced.get(alert.service, []))


class RecordingWorker:
    """Stands in for a SinkWorker: records the jobs handed to it."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)


def _alert(service: str, alert_id: str, status: str = "firing", **fields: Any) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "kind": "anomaly",
        "source": "metrics",
        "service": service,
        "event_ts": T0.isoformat(),
        "detected_at": (T0 + timedelta(seconds=2)).isoformat(),
        "score": 0.99,
        "threshold": 0.9,
        "severity": "critical",
        "episode_id": f"e-{alert_id}",
        "status": status,
        "model": {"name": "hst", "version": "1"},
        "explanation": {"top_features": []},
        "evidence": {"topic": "t", "partition": 0, "offset": 1},
    } | fields


def _settings(**update: Any) -> Settings:
    values: dict[str, Any] = {
        "notify_slack_webhook_url": "http://127.0.0.1:9/slack",
        "notify_alerts": True,
        "create_topics": False,
    }
    return Settings(**(values | update))


def test_the_book_is_asked_at_the_alerts_event_time() -> None:
    book = FakeBook({"db": ["s1", "window:nightly"]})
    silences = AlertSilences(_settings(), book)
    late = Alert.model_validate(_alert("db", "a-1", event_ts=(T0 - timedelta(hours=1)).isoformat()))
    problem = silences.problem_of(late)
    assert problem.silenced
    assert problem.silenced_by == ["s1", "window:nightly"]
    assert book.asked == [("a-1", T0 - timedelta(hours=1))]
    assert not silences.problem_of(Alert.model_validate(_alert("web", "a-2"))).silenced


async def test_a_given_book_needs_no_broker() -> None:
    silences = AlertSilences(_settings(), FakeBook({}))
    assert silences.follower is None
    await silences.start()
    await silences.stop()
    await silences.stop()


def test_the_notifier_follows_the_silences_topic_only_for_single_alerts() -> None:
    registry = CollectorRegistry()
    notifier = Notifier(_settings(), registry=registry, serve_http=False)
    assert notifier.silences is not None
    assert notifier.silences.follower is not None  # started with the notifier
    assert registry.get_sample_value("vigil_silences_records_total", {"outcome": "put"}) == 0
    problems_only = Notifier(_settings(notify_alerts=False), serve_http=False)
    assert problems_only.silences is None


@pytest.mark.parametrize("silenced", [True, False])
async def test_a_silenced_alert_is_skipped_as_silenced_and_the_others_go(silenced: bool) -> None:
    book = FakeBook({"db": ["s1"]} if silenced else {})
    notifier = Notifier(_settings(), serve_http=False, silences=book)
    (sink,) = notifier.sinks
    worker = RecordingWorker(sink)
    notifier._workers = [worker]
    records = [
        _alert("db", "a-1"),
        _alert("db", "a-2", "resolved", episode_id="e-a-1"),
        _alert("web", "a-3"),
    ]
    for offset, alert in enumerate(records):
        value = orjson.dumps(alert)
        await notifier._handle(Origin(0, "vigil.alerts", 0, offset, b"k", value))
    sent = [(job.problem.problem_id, job.action) for job in worker.jobs]
    skipped = notifier.metrics.skipped.labels(sink="slack", reason="silenced")._value.get()
    if silenced:
        assert sent == [("alert:e-a-3", "trigger")]
        assert skipped == 2  # the firing alert and its resolve: never notified
    else:
        assert sent == [
            ("alert:e-a-1", "trigger"),
            ("alert:e-a-1", "resolve"),
            ("alert:e-a-3", "trigger"),
        ]
        assert skipped == 0
    assert [at for _, at in book.asked] == [T0, T0, T0]
