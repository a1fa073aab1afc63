"""``vigil correlate`` against the real broker: alerts in, problems out, through restarts.

Faults on a small mesh raise alerts on a root service and, a minute or two later, on services
that depend on it, in two regions (the scope label). The problems published must be those of
one correlator reading the same alerts in one go (the pure :class:`Correlator`), revision by
revision: after a clean stop and restart (restored from the snapshot), and after one whose
snapshots are gone (the partition read again from its beginning), none is lost and none is
published twice.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from stream.codec import encode
from stream.core.problems.correlator import Correlator, event_order
from stream.correlate.service import Correlate
from stream.correlate.setup import correlation_setup
from stream.dev.broker import free_port
from stream.dev.fault_sim import FaultScenario
from stream.dev.problems_eval import score, summarize
from stream.dev.problems_run import offline_problems, run_scenario
from stream.kafka.silences import publish_silence
from stream.schemas import Alert, Problem, Silence
from stream.settings import Settings
from tests.integration.kafka_io import end_offsets, produce, read_all
from tests.integration.processes import detector_process, log_tail

pytestmark = pytest.mark.integration

TOPOLOGY = """
[services.web]
depends_on = ["api"]
[services.api]
depends_on = ["db", "cache"]
[services.batch]
depends_on = ["db"]
"""
T0 = datetime(2026, 11, 23, tzinfo=UTC).timestamp()


def _alert(service: str, region: str, t: float, status: str, episode: str) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"{episode}-{status}",
            "episode_id": episode,
            "status": status,
            "kind": "anomaly",
            "source": "metrics",
            "service": service,
            "event_ts": t,
            "started_at": t if status == "firing" else t - 600,
            "detected_at": t,
            "score": 0.99,
            "threshold": 0.9,
            "severity": "warning",
            "model": {"name": "hst-metrics", "version": "1"},
            "explanation": {"top_features": []},
            "evidence": {"topic": "vigil.metrics", "partition": 0, "offset": 0},
            "labels": {"region": region, "host": f"{service}-{region}-1"},
        }
    )


def _faults() -> list[Alert]:
    """Six faults an hour apart, alternating regions, each a root and its dependents."""
    alerts: list[Alert] = []
    chains = [("db", ["api", "web", "batch"]), ("cache", ["api"]), ("api", ["web"])]
    for k in range(6):
        root, dependents = chains[k % 3]
        region = ("blr", "fra")[k % 2]
        t = T0 + k * 3600
        for i, service in enumerate([root, *dependents]):
            episode = f"f{k}-{service}"
            alerts.append(_alert(service, region, t + 60 * i, "firing", episode))
            alerts.append(_alert(service, region, t + 600 + 30 * i, "resolved", episode))
    # The last alert moves event time on: every problem but the last resolves on it.
    alerts.append(_alert("search", "blr", T0 + 9 * 3600, "firing", "late"))
    alerts.append(_alert("search", "fra", T0 + 9 * 3600, "firing", "late-fra"))
    alerts.sort(key=event_order)  # the merge's order
    return alerts


def _settings(test_settings: Settings, tmp_path: Path) -> Settings:
    topology = tmp_path / "services.toml"
    topology.write_text(TOPOLOGY)
    return test_settings.model_copy(
        update={
            "correlate_scope_label": "region",
            "correlate_topology": str(topology),
            "topic_partitions": 1,  # alerts in one order, so the reference is exact
            "correlate_lateness_s": 1e9,  # ticks never move event time: runs compare exactly
            "snapshot_interval_s": 0.1,
        }
    )


def _reference(settings: Settings, alerts: list[Alert]) -> list[Problem]:
    config, topology = correlation_setup(settings)
    correlator = Correlator(config, topology)
    return [p for a in alerts for p in correlator.add(a)]


async def _run_until(service: Correlate, settings: Settings, count: int) -> list[Problem]:
    """Step ``service`` until the problems topic holds ``count`` messages."""
    for _ in range(120):
        await service.step(timeout_s=0.5)
        records = await read_all(settings.bootstrap_servers, settings.topic_problems, idle_s=0.3)
        if len(records) >= count:
            return [Problem.model_validate(orjson.loads(r.value)) for r in records]
    raise AssertionError(f"fewer than {count} problem messages in 60 s")


def _check_every_revision_once(
    messages: list[Problem], expected: dict[str, list[tuple[int, str, list[str]]]]
) -> None:
    """Every revision of every expected problem was published, no other, and a revision
    published more than once is the same message each time."""
    final = _by_problem(messages)
    assert {k: sorted(set(map(str, v))) for k, v in final.items()} == {
        k: sorted(set(map(str, v))) for k, v in expected.items()
    }
    copies: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    for problem in messages:
        copies[(problem.problem_id, problem.revision)].add(encode(problem))
    assert all(len(c) == 1 for c in copies.values())


async def _send(settings: Settings, alerts: list[Alert]) -> None:
    """Produce ``alerts`` to the alerts topic, keyed by service, all acknowledged."""
    await produce(
        settings.bootstrap_servers,
        settings.topic_alerts,
        [(a.service.encode(), encode(a)) for a in alerts],
    )


def _by_problem(problems: list[Problem]) -> dict[str, list[tuple[int, str, list[str]]]]:
    out: dict[str, list[tuple[int, str, list[str]]]] = defaultdict(list)
    for p in problems:
        out[p.problem_id].append((p.revision, p.status, sorted(m.alert_id for m in p.members)))
    return dict(out)


@pytest.mark.parametrize("snapshots_kept", [True, False], ids=["snapshot", "no_snapshot"])
async def test_problems_survive_a_restart_exactly(
    test_settings: Settings, tmp_path: Path, snapshots_kept: bool
) -> None:
    settings = _settings(test_settings, tmp_path)
    alerts = _faults()
    expected = _reference(settings, alerts)
    half = len(alerts) // 2
    first_part = _reference(settings, alerts[:half])
    assert len({p.problem_id for p in expected}) >= 6

    first = Correlate(settings, serve_http=False)
    await first.start()
    try:
        await _send(settings, alerts[:half])
        await _run_until(first, settings, len(first_part))
    finally:
        await first.stop()
    snapshots = Path(settings.snapshot_dir)
    written = await asyncio.to_thread(lambda: any(snapshots.rglob("*.snap")))
    assert written, "a clean stop snapshots its partitions"
    if not snapshots_kept:
        shutil.rmtree(snapshots)

    await _send(settings, alerts[half:])
    second = Correlate(settings, serve_http=False)
    await second.start()
    try:
        published = await _run_until(second, settings, len(expected))
        await asyncio.sleep(0.5)
        published = await _run_until(second, settings, len(expected))
    finally:
        await second.stop()

    print(f"\n{len(published)} problem messages, {len({p.problem_id for p in published})} problems")
    assert _by_problem(published) == _by_problem(expected)
    opened = [p for p in published if p.status == "opened"]
    assert {p.problem_id for p in opened} == {p.problem_id for p in expected}
    assert all(p.suspects for p in published)
    # Every fault's problem names its root first: db, cache, api.
    roots = [p.suspects[0].service for p in published if p.status == "resolved"]
    assert roots == ["db", "cache", "api", "db", "cache", "api"]


async def test_a_fault_scenario_through_kafka_gives_the_offline_problems(
    test_settings: Settings,
) -> None:
    """``vigil evaluate --problems``' run (detector and correlator over the broker, alerts of
    six partitions merged back into event-time order) scores as the offline pipeline does
    (seed 4: 8 faults in the third day)."""
    scenario = FaultScenario(days=3, quiet_days=2, faults_per_day=6, seed=4)
    run = await run_scenario(test_settings, scenario, [])
    offline = offline_problems(scenario)
    assert len(scenario.faults) >= 6
    assert sorted(a.alert_id for a in run.alerts) == sorted(a.alert_id for a in offline.alerts)
    assert summarize(*score(scenario, run.alerts, run.problems)) == summarize(
        *score(scenario, offline.alerts, offline.problems)
    )


async def test_problems_under_a_silence_are_published_silenced(
    test_settings: Settings, tmp_path: Path
) -> None:
    """A silence on the silences topic (``vigil silence add``'s) marks the problems rooted at
    its service, and only those."""
    settings = _settings(test_settings, tmp_path)
    alerts = _faults()
    expected = _reference(settings, alerts)
    silence = Silence(
        silence_id="cache-upgrade",
        service="cache",
        starts_at=datetime.fromtimestamp(T0, UTC),
        ends_at=datetime.fromtimestamp(T0 + 12 * 3600, UTC),
        reason="cache upgrade",
    )
    await publish_silence(settings, silence)
    await _send(settings, alerts)
    service = Correlate(settings, serve_http=False)
    await service.start()
    try:
        published = await _run_until(service, settings, len(expected))
    finally:
        await service.stop()
    silenced = {p.suspects[0].service for p in published if p.silenced}
    assert silenced == {"cache"}
    for problem in published:
        rooted_at_cache = problem.suspects[0].service == "cache"
        assert problem.silenced_by == (["cache-upgrade"] if rooted_at_cache else [])


async def test_a_correlator_killed_mid_stream_loses_and_invents_no_problem(
    test_settings: Settings, tmp_path: Path
) -> None:
    """``vigil correlate`` killed with SIGKILL mid-stream, then another in its group: every
    revision of every problem is published, no other problem, and a revision published twice
    (after the last commit, before the kill) is the same message both times."""
    settings = _settings(test_settings, tmp_path).model_copy(
        update={"session_timeout_ms": 6000, "snapshot_interval_s": 1.0}
    )
    alerts = _faults()
    expected = _by_problem(_reference(settings, alerts))
    wanted = sum(len(v) for v in expected.values())

    async def published() -> list[Problem]:
        records = await read_all(settings.bootstrap_servers, settings.topic_problems, idle_s=0.3)
        return [Problem.model_validate(orjson.loads(r.value)) for r in records]

    first = len(alerts) // 4
    await _send(settings, alerts[:first])

    joined = asyncio.Event()

    async def send_slowly() -> None:
        await joined.wait()
        for alert in alerts[first:]:
            await produce(
                settings.bootstrap_servers,
                settings.topic_alerts,
                [(alert.service.encode(), encode(alert))],
            )
            await asyncio.sleep(0.1)

    with detector_process(
        settings, free_port(), command="correlate", log_path=tmp_path / "correlate.log"
    ) as proc:
        sending = asyncio.create_task(send_slowly())
        for _ in range(600):
            ends = await end_offsets(settings.bootstrap_servers, settings.topic_problems)
            if sum(ends.values()) > 0:
                joined.set()  # the correlator works: the rest of the alerts, one by one
            if sum(ends.values()) >= wanted // 2:
                break
            assert proc.poll() is None, log_tail(tmp_path / "correlate.log")
            await asyncio.sleep(0.1)
        proc.kill()
        await sending
    killed_at = len(await published())
    assert killed_at < wanted, "the kill should come mid-stream"

    second = Correlate(settings, serve_http=False)
    await second.start()
    try:
        for _ in range(240):
            await second.step(timeout_s=0.5)
            messages = await published()
            seen = {(p.problem_id, p.revision) for p in messages}
            if len(seen) >= wanted:
                break
    finally:
        await second.stop()
    _check_every_revision_once(messages, expected)
    print(f"\nkilled at {killed_at} of {wanted} messages; {len(messages)} published in all")


async def test_a_failed_commit_rewinds_to_the_last_one_and_publishes_the_same(
    test_settings: Settings, tmp_path: Path
) -> None:
    """A Kafka error in a batch (here the commit, twice) rewinds the work since the last
    commit: what the batch published comes again, the same messages, and nothing is lost."""
    settings = _settings(test_settings, tmp_path)
    alerts = _faults()
    expected = _by_problem(_reference(settings, alerts))
    wanted = sum(len(v) for v in expected.values())
    await _send(settings, alerts)
    service = Correlate(settings, serve_http=False)
    await service.start()
    consumer = service._consumer
    assert consumer is not None
    commit = consumer.commit
    failures = 2

    async def failing_commit(offsets: dict[TopicPartition, int]) -> None:
        nonlocal failures
        if failures and any(tp.topic == settings.topic_scoped_alerts for tp in offsets):
            failures -= 1
            raise KafkaConnectionError("the broker went away (simulated)")
        await commit(offsets)

    consumer.commit = failing_commit  # type: ignore[method-assign]
    running = asyncio.create_task(service.run())
    try:
        for _ in range(120):
            await asyncio.sleep(0.5)
            records = await read_all(
                settings.bootstrap_servers, settings.topic_problems, idle_s=0.3
            )
            messages = [Problem.model_validate(orjson.loads(r.value)) for r in records]
            if len({(p.problem_id, p.revision) for p in messages}) >= wanted:
                break
    finally:
        service.request_stop()
        await running
        await service.stop()
    assert service.counts["kafka_errors"] == 2
    _check_every_revision_once(messages, expected)
    assert len(messages) > wanted, "the failed batches' messages came again"
