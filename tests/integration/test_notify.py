"""``vigil notify`` through the real broker, to a real Alertmanager and to a local receiver
that fails first: each notice the policy wants delivered once, in order, HMAC-signed; a
refused one dead-lettered; every offset committed once settled."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from stream.core.notifications import verify
from stream.dev.broker_probe import free_port
from stream.kafka.silences import publish_silence
from stream.notify.service import Notifier
from stream.schemas import Problem, Silence
from stream.settings import Settings
from tests.debian import require_debian_binary
from tests.http_receiver import Receiver
from tests.integration.kafka_io import committed_offsets, end_offsets, produce, read_all

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-0123456789"


def _problem(revision: int, status: str = "opened", **fields: Any) -> Problem:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "problem_id": "p-a",
        "status": status,
        "scope": "blr",
        "summary": "[warning] 2 services; likely root db (2 services depend on it)",
        "severity": "warning",
        "opened_at": now - timedelta(minutes=10),
        "updated_at": now - timedelta(minutes=5),
        "resolved_at": now - timedelta(seconds=5) if status == "resolved" else None,
        "services": ["api", "db"],
        "members": [],
        "suspects": [
            {
                "service": "db",
                "rank": 1,
                "reasons": ["2 services depend on it"],
                "first_seen": now - timedelta(minutes=10),
                "depends_on_it": 2,
                "deploy_recent": False,
            }
        ],
        "labels": {"region": "blr", "host": "h-1"},
        "revision": revision,
    }
    values.update(fields)
    return Problem.model_validate(values)


def _record(problem: Problem) -> tuple[bytes, bytes]:
    return problem.problem_id.encode(), problem.model_dump_json().encode()


def _notify_settings(settings: Settings, **update: Any) -> Settings:
    """``settings`` (the test's own topics) with its own problems topic and notify group,
    quick retries and ``update``, validated."""
    values = {
        **settings.model_dump(),
        "topic_problems": f"{settings.group_id}.problems",
        "notify_group_id": f"{settings.group_id}-notify",
        "notify_backoff_s": 0.05,
        "notify_backoff_max_s": 2.0,
        **update,
    }
    return Settings(**values)


async def _step_until(notifier: Notifier, done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"notifier did not get there in {timeout_s}s: {notifier.counts}")
        await notifier.step(timeout_s=0.2)


async def _all_committed(notifier: Notifier) -> None:
    """Step until the group's committed offsets reach the problems topic's end."""
    settings = notifier.settings
    ends = await end_offsets(settings.bootstrap_servers, settings.topic_problems)
    wanted = {tp: end for tp, end in ends.items() if end}
    deadline = time.monotonic() + 20
    while True:
        await notifier.step(timeout_s=0.2)
        committed = await committed_offsets(settings.bootstrap_servers, settings.notify_group_id)
        if committed == wanted:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"committed {committed}, wanted {wanted}")


# --------------------------------------------------------------------------- Alertmanager


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager (Debian's), one null receiver, no clustering; its base URL."""
    binary = require_debian_binary("prometheus-alertmanager", "prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start: {log.read_text()[-500:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _instant(text: str) -> tuple[str, str]:
    """Alertmanager's RFC 3339 time (up to nine fraction digits, trailing zeros dropped) in
    an order that compares as time: whole seconds, then the fraction padded."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return whole, fraction.ljust(9, "0")


async def _am_alerts(url: str, problem_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/api/v2/alerts", params={"active": "true"})
    response.raise_for_status()
    return [a for a in response.json() if a["labels"].get("problem_id") == problem_id]


async def test_alertmanager_holds_the_problem_while_open_and_not_after(
    test_settings: Settings, alertmanager: str
) -> None:
    settings = _notify_settings(
        test_settings,
        alertmanager_url=alertmanager,
        alert_runbook_url="https://wiki/{service}",
        notify_repost_s=0.5,
    )
    notifier = Notifier(settings)
    await notifier.start()
    try:
        await produce(settings.bootstrap_servers, settings.topic_problems, [_record(_problem(1))])
        await _step_until(notifier, lambda: notifier.counts["delivered"] >= 1)
        (first,) = await _am_alerts(alertmanager, "p-a")
        # Re-posted while open: Alertmanager's endsAt moves on (held four re-posts ahead).
        await _step_until(notifier, lambda: notifier.counts["delivered"] >= 3)
        (alert,) = await _am_alerts(alertmanager, "p-a")
        assert _instant(alert["endsAt"]) > _instant(first["endsAt"])
        labels = alert["labels"]
        assert labels["alertname"] == "VigilProblem"
        assert (labels["service"], labels["severity"], labels["scope"]) == ("db", "warning", "blr")
        assert (labels["region"], labels["host"]) == ("blr", "h-1")
        assert alert["status"]["state"] == "active"
        assert "Suspect 1: db (2 services depend on it)" in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"] == "https://wiki/db"

        resolved = _problem(2, "resolved", summary="[resolved] 2 services")
        await produce(settings.bootstrap_servers, settings.topic_problems, [_record(resolved)])
        await _step_until(notifier, lambda: notifier.describe_models()["open_problems"] == 0)
        await _all_committed(notifier)  # the resolve is delivered
        assert await _am_alerts(alertmanager, "p-a") == []  # no longer active
        delivered = notifier.counts["delivered"]
        await asyncio.sleep(0.6)
        await notifier.step(timeout_s=0.2)
        assert notifier.counts["delivered"] == delivered  # no re-post after the resolve
    finally:
        await notifier.stop()


# --------------------------------------------------------------------------- flaky receivers


async def test_each_notice_is_delivered_once_in_order_through_failures(
    test_settings: Settings,
) -> None:
    receiver = Receiver(
        script={"/webhook": [503, "drop"], "/pagerduty": ["429:1", 503], "/slack": [503, "drop"]}
    )
    base = await receiver.start()
    settings = _notify_settings(
        test_settings,
        notify_webhook_url=f"{base}/webhook",
        notify_webhook_secret=SECRET,
        notify_pagerduty_url=f"{base}/pagerduty",
        notify_pagerduty_routing_key="R" * 32,
        notify_slack_webhook_url=f"{base}/slack",
    )
    a = [
        _problem(1),
        _problem(2, "updated"),
        _problem(2, "updated"),  # a replayed revision
        _problem(3, "updated", severity="critical"),
        _problem(4, "resolved"),
    ]
    b = [  # silenced from start to end: never notified
        _problem(1, problem_id="p-b", silenced=True, silenced_by=["s-1"]),
        _problem(2, "resolved", problem_id="p-b", silenced=True, silenced_by=["s-1"]),
    ]
    notifier = Notifier(settings)
    await notifier.start()
    try:
        await produce(
            settings.bootstrap_servers, settings.topic_problems, [_record(p) for p in a + b]
        )
        # webhook and Slack: opened, severity rose, resolved; PagerDuty: every revision.
        await _step_until(notifier, lambda: notifier.counts["delivered"] >= 10)
        await _all_committed(notifier)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{notifier.http_port}") as http:
            assert (await http.get("/readyz")).status_code == 200
            metrics = (await http.get("/metrics")).text
    finally:
        await notifier.stop()
        await receiver.stop()
    assert notifier.counts["delivered"] == 10
    assert notifier.counts["dead_lettered"] == 0

    hooks = [r for r in receiver.received if r.path == "/webhook"]
    assert [orjson.loads(r.body)["revision"] for r in hooks] == [1, 3, 4]
    for hook in hooks:
        assert verify(
            hook.body,
            SECRET.encode(),
            timestamp=hook.headers["x-vigil-timestamp"],
            signature=hook.headers["x-vigil-signature"],
            now_s=time.time(),
        )
    assert [r.headers["x-vigil-event"] for r in hooks] == ["trigger", "trigger", "resolve"]
    events = [orjson.loads(body) for body in receiver.bodies("/pagerduty")]
    assert [(e["event_action"], e["payload"]["custom_details"]["revision"]) for e in events] == [
        ("trigger", 1),
        ("trigger", 2),
        ("trigger", 3),
        ("resolve", 4),
    ]
    assert {e["dedup_key"] for e in events} == {"p-a"}
    assert events[2]["payload"]["severity"] == "critical"
    slack = [orjson.loads(body)["text"] for body in receiver.bodies("/slack")]
    assert [text.split(" ")[0] for text in slack] == [
        ":warning:",
        ":red_circle:",
        ":white_check_mark:",
    ]
    assert receiver.attempts["/webhook"] == 5  # two failures, three deliveries
    assert receiver.attempts["/pagerduty"] == 6
    assert 'vigil_notifications_delivered_total{sink="pagerduty"} 4.0' in metrics
    assert 'vigil_notifications_skipped_total{reason="silenced",sink="slack"} 2.0' in metrics
    assert 'vigil_notification_retries_total{reason="http_429",sink="pagerduty"} 1.0' in metrics


async def test_a_refused_notice_and_a_malformed_message_are_dead_lettered_and_committed(
    test_settings: Settings,
) -> None:
    receiver = Receiver(script={"/slack": [400]})
    base = await receiver.start()
    settings = _notify_settings(test_settings, notify_slack_webhook_url=f"{base}/slack")
    notifier = Notifier(settings, serve_http=False)
    await notifier.start()
    try:
        await produce(
            settings.bootstrap_servers,
            settings.topic_problems,
            [_record(_problem(1)), (b"p-x", b"{not json"), _record(_problem(2, "resolved"))],
        )
        await _step_until(
            notifier,
            lambda: notifier.counts["dead_lettered"] >= 2 and notifier.counts["delivered"] >= 1,
        )
        await _all_committed(notifier)
    finally:
        await notifier.stop()
        await receiver.stop()
    letters = [
        orjson.loads(r.value)
        for r in await read_all(settings.bootstrap_servers, settings.topic_dlq)
    ]
    assert sorted(letter["reason"] for letter in letters) == [
        "invalid_json",
        "notify_slack_http_400",
    ]
    refused = next(letter for letter in letters if letter["reason"] == "notify_slack_http_400")
    assert refused["topic"] == settings.topic_problems
    assert refused["offset"] == 0
    # The resolve after the refused trigger is still delivered: the sink was told of it.
    assert [orjson.loads(b)["text"].split(" ")[0] for b in receiver.bodies("/slack")] == [
        ":white_check_mark:"
    ]
    assert notifier.metrics.failures.labels(sink="slack", reason="rejected")._value.get() == 1


async def test_a_restarted_notifier_remembers_what_it_notified(test_settings: Settings) -> None:
    receiver = Receiver()
    base = await receiver.start()
    settings = _notify_settings(test_settings, notify_slack_webhook_url=f"{base}/slack")
    try:
        first = Notifier(settings, serve_http=False)
        await first.start()
        try:
            await produce(
                settings.bootstrap_servers, settings.topic_problems, [_record(_problem(1))]
            )
            await _step_until(first, lambda: first.counts["delivered"] >= 1)
            await _all_committed(first)
        finally:
            await first.stop()
        await produce(
            settings.bootstrap_servers,
            settings.topic_problems,
            [_record(_problem(2, "updated")), _record(_problem(3, "updated", severity="critical"))],
        )
        second = Notifier(settings, serve_http=False)
        await second.start()
        try:
            await _step_until(second, lambda: second.counts["delivered"] >= 1)
            await _all_committed(second)
        finally:
            await second.stop()
    finally:
        await receiver.stop()
    # Revision 2 is no news to Slack (the opening was notified before the restart); the
    # severity's rise is.
    texts = [orjson.loads(body)["text"].split(" ")[0] for body in receiver.bodies("/slack")]
    assert texts == [":warning:", ":red_circle:"]
    assert second.counts["consumed"] == 2


async def test_single_alerts_are_delivered_when_asked_for_unless_silenced(
    test_settings: Settings,
) -> None:
    receiver = Receiver()
    base = await receiver.start()
    settings = _notify_settings(
        test_settings, notify_slack_webhook_url=f"{base}/slack", notify_alerts=True
    )
    now = datetime.now(UTC)
    alert = {
        "alert_id": "a-1",
        "kind": "anomaly",
        "source": "metrics",
        "service": "payments",
        "event_ts": (now - timedelta(minutes=1)).isoformat(),
        "detected_at": now.isoformat(),
        "score": 0.99,
        "threshold": 0.9,
        "severity": "critical",
        "episode_id": "e-1",
        "model": {"name": "hst-metrics", "version": "1"},
        "explanation": {"top_features": []},
        "evidence": {"topic": "t", "partition": 0, "offset": 1},
    }
    resolved = {**alert, "alert_id": "a-2", "status": "resolved", "event_ts": now.isoformat()}
    # db is under maintenance: its alert is skipped, payments' are delivered.
    muted = {**alert, "alert_id": "a-3", "service": "db", "episode_id": "e-3"}
    hour = timedelta(hours=1)
    silence = Silence(silence_id="s-db", service="db", starts_at=now - hour, ends_at=now + hour)
    notifier = Notifier(settings, serve_http=False)
    try:
        await notifier.start()  # creates the silences topic
        await publish_silence(settings, silence)
        assert notifier.silences is not None
        follower = notifier.silences.follower
        assert follower is not None
        await _step_until(notifier, lambda: "s-db" in follower.book)
        await produce(
            settings.bootstrap_servers,
            settings.topic_alerts,
            [
                (b"db", orjson.dumps(muted)),
                (b"payments", orjson.dumps(alert)),
                (b"payments", orjson.dumps(resolved)),
            ],
        )
        await _step_until(
            notifier,
            lambda: notifier.counts["delivered"] >= 2 and notifier.counts["consumed"] >= 3,
        )
    finally:
        await notifier.stop()
        await receiver.stop()
    texts = [orjson.loads(body)["text"] for body in receiver.bodies("/slack")]
    assert len(texts) == 2
    assert texts[0].startswith(":red_circle: [critical] payments: metrics unusual")
    assert texts[1].startswith(":white_check_mark: [resolved] payments")
    skipped = notifier.metrics.skipped.labels(sink="slack", reason="silenced")._value.get()
    assert skipped == 1


async def test_the_notifier_waits_for_a_broker_that_is_not_there() -> None:
    from aiokafka.errors import KafkaError

    from stream.kafka.retries import start_with_retries
    from stream.settings import load_settings

    settings = load_settings(
        {
            "bootstrap_servers": f"127.0.0.1:{free_port()}",
            "notify_slack_webhook_url": "http://127.0.0.1:9/x",
            "http_port": 0,
        }
    )
    notifier = Notifier(settings, serve_http=False)
    started = time.monotonic()
    with pytest.raises(KafkaError):
        await start_with_retries(notifier.start, 1.5, lambda: False, first_delay_s=0.2)
    assert time.monotonic() - started >= 1.0  # retried, not crashed at once
    await asyncio.wait_for(notifier.stop(), 10)
