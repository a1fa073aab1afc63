"""Scale out and survive faults: ``vigil detect`` processes killed and joining mid-stream, and
the broker itself restarted under them.

Incident risk is off, so every model belongs to one service and each service's events live
on one partition: whichever process scores a partition, and however often it moves, the
alerts must be exactly those of one detector that never died (the pipeline run offline over
each partition in order). At least once allows an alert on the topic more than once (its
``alert_id`` is deterministic); the tests count those duplicates and print them, with the
timings (drain, recovery, rebalances) that the README quotes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from stream.detector.detector import topic_specs
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from tests.integration.fleet import (
    Fleet,
    Progress,
    assigned_events,
    check_alerts,
    detector_settings_env,
    end_offsets_of,
    own_broker,
    paced_stream,
    parse_ts,
    producer_done,
    simulated,
    take_down,
)
from tests.integration.kafka_io import Produced, read_all

pytestmark = pytest.mark.integration

PARTITIONS = 6
WARMUP_EVENTS = 300
"""Events per service before it may alert (500 by default): the killed detector has alerted."""


def guarantee_env(guarantee: str) -> dict[str, str]:
    """The processing-guarantee setting for the detectors."""
    return {"VIGIL_PROCESSING_GUARANTEE": guarantee}


# --------------------------------------------------------------------------- kill and join

KJ_EVENTS = 100_000
KJ_SERVICES = 60
KJ_RATE_PER_S = 2_500.0
"""Paced so that the stream lasts ~40 s: the kill, the recovery and the join all land in it."""
KILL_AT, JOIN_AT = 0.3, 0.6
"""Shares of the events committed when one detector is SIGKILLed, and when another joins."""


@pytest.mark.parametrize(
    "guarantee",
    # exactly_once reads the alerts read_committed and asserts that none is on it twice.
    ["at_least_once", "exactly_once"],
)
async def test_kill_one_of_three_and_join_a_fourth(
    test_settings: Settings, tmp_path: Path, guarantee: str
) -> None:
    await kill_and_join(test_settings, tmp_path, guarantee)


async def kill_and_join(settings: Settings, tmp_path: Path, guarantee: str) -> None:
    """Three detectors share six partitions; one is SIGKILLed at 30 % of the stream and a
    fourth joins at 60 %. Every event is scored, the alert set is exactly the reference's."""
    exactly_once = guarantee == "exactly_once"
    settings = settings.model_copy(
        update={
            "anomaly_budget_per_day": 86.4,
            "warmup_events": WARMUP_EVENTS,
            "topic_partitions": PARTITIONS,
            "incident_risk": False,
        }
    )
    bootstrap, metrics_topic = settings.bootstrap_servers, settings.topic_metrics
    await ensure_topics(bootstrap, topic_specs(settings))
    messages = simulated(KJ_SERVICES, KJ_EVENTS, seed=81)
    env = {**detector_settings_env(settings), **guarantee_env(guarantee)}
    progress = Progress(bootstrap, settings.group_id, metrics_topic)
    produced: list[Produced] = []
    with Fleet(settings, tmp_path, env) as fleet:
        for name in ("d1", "d2", "d3"):
            fleet.start(name)
        await fleet.stable()

        started = time.monotonic()
        async with paced_stream(
            bootstrap, metrics_topic, messages, rate_per_s=KJ_RATE_PER_S, acknowledged=produced
        ) as producer:
            # Kill one detector mid-stream.
            await fleet.wait_until(
                lambda: progress.reached(KILL_AT * KJ_EVENTS),
                timeout_s=90,
                what=f"{KILL_AT:.0%} of the events committed",
            )
            victim = fleet.members[0]
            killed = await victim.owned()
            assert killed, "the victim holds no partition"
            victim_problems = victim.problems()
            victim.expected_dead = True
            victim.proc.send_signal(signal.SIGKILL)
            killed_wall, killed_at = time.time(), time.monotonic()
            await asyncio.to_thread(victim.proc.wait, 10)
            at_kill = await progress.poll()
            committed_at_kill = sum(at_kill.values())

            # Recovery: the dead one's partitions move on past where it stopped.
            async def recovered() -> bool:
                now = await progress.poll()
                if producer.done():
                    ends = await end_offsets_of(bootstrap, metrics_topic)
                    return all(now.get(p, 0) == ends[p] for p in killed)
                return all(now.get(p, 0) > at_kill.get(p, 0) for p in killed)

            await fleet.wait_until(
                recovered, timeout_s=90, what=f"partitions {sorted(killed)} of the killed detector"
            )
            recovery_s = time.monotonic() - killed_at

            # A fourth detector joins.
            await fleet.wait_until(
                lambda: progress.reached(JOIN_AT * KJ_EVENTS),
                timeout_s=90,
                what=f"{JOIN_AT:.0%} of the events committed",
            )
            joined_during_stream = not producer.done()
            fleet.start("d4")
            await fleet.wait_until(
                producer_done(producer), timeout_s=120, what="the producer finishing"
            )
            await producer
            produced_s = time.monotonic() - started

        ends = await end_offsets_of(bootstrap, metrics_topic)

        async def drained() -> bool:
            return await progress.poll() == ends

        tail_s = await fleet.wait_until(
            drained, timeout_s=120, what="committed offsets reaching the end offsets"
        )
        drain_s = time.monotonic() - started
        await fleet.stable()  # the joiner answers too (it may still be starting on a busy host)
        replayed = await fleet.total("vigil_snapshot_replayed_events_total")
        restored = await fleet.total("vigil_snapshots_restored_total")
        kafka_errors = await fleet.total("vigil_kafka_errors_total")
        await fleet.stop_all()

    # Every event scored: every partition got events and its commit reached its end.
    assert len(produced) == KJ_EVENTS
    assert sorted(p for p, end in ends.items() if end > 0) == list(range(PARTITIONS))
    assert progress.latest == ends
    assert 0 < committed_at_kill < KJ_EVENTS, "the kill landed before or after the stream"
    problems = {m.name: m.problems() for m in fleet.alive}
    problems[victim.name] = victim_problems
    assert not any(problems.values()), f"detectors reported errors: {problems}"
    dead_letters = await read_all(bootstrap, settings.topic_dlq, idle_s=1.0)
    assert not dead_letters, f"{len(dead_letters)} events dead-lettered"

    alerts = await check_alerts(
        settings, produced, "read_committed" if exactly_once else "read_uncommitted"
    )

    # Figures to quote.
    reassigned = [
        parse_ts(e) - killed_wall
        for m in fleet.alive
        for e in assigned_events(m)
        if parse_ts(e) > killed_wall
        and any(f"{metrics_topic}:{p}" in e.get("partitions", []) for p in killed)
    ]
    rebalances = {m.name: len(assigned_events(m)) for m in fleet.members}
    print(
        f"\nkill and join ({guarantee}): {KJ_EVENTS} events of {KJ_SERVICES} services on "
        f"{PARTITIONS} partitions at {KJ_RATE_PER_S:.0f}/s; produced in {produced_s:.1f} s, "
        f"all committed {drain_s:.1f} s after the first event ({tail_s:.1f} s after the last)\n"
        f"  kill -9 of d1 at {committed_at_kill} committed, holding partitions {sorted(killed)}: "
        f"reassigned after {min(reassigned, default=float('nan')):.1f} s, "
        f"consumed past its commits after {recovery_s:.1f} s\n"
        f"  d4 joined {'during' if joined_during_stream else 'after'} the stream; "
        f"partitions_assigned per detector {rebalances}; snapshots restored {restored:.0f}, "
        f"events replayed {replayed:.0f}; kafka errors {kafka_errors:.0f}; "
        f"committed offsets moved back {len(progress.backwards)} times {progress.backwards[:6]}\n"
        f"  alerts: expected {alerts.expected}, distinct on topic {alerts.distinct}, "
        f"missing {alerts.missing}, spurious {alerts.spurious}, duplicates {alerts.duplicates}"
    )
    assert (alerts.missing, alerts.spurious) == (0, 0), alerts
    assert not progress.backwards, "a replay committed offsets below the group's"
    if exactly_once:
        assert alerts.duplicates == 0, alerts


# --------------------------------------------------------------------------- broker restart

BR_EVENTS = 36_000
BR_SERVICES = 30
BR_RATE_PER_S = 3_000.0
"""Paced like a log-processor that keeps publishing while the broker is away."""
BR_STOP_AT = 0.3
"""Share of the events committed when the broker goes down."""
BR_DOWN_S = 3.0


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_broker_restart_mid_stream(test_settings: Settings, tmp_path: Path, how: str) -> None:
    """Two detectors are consuming a stream when their broker stops (gracefully, or kill -9)
    and comes back on the same port and data: the producer's sends wait for it, the detectors
    reconnect, score everything and stay up, and the alerts are the reference's."""
    with own_broker(tmp_path / "broker") as broker:
        settings = test_settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap,
                "anomaly_budget_per_day": 86.4,
                "warmup_events": WARMUP_EVENTS,
                "max_batch": 500,
                "topic_partitions": PARTITIONS,
                "incident_risk": False,
            }
        )
        bootstrap, metrics_topic = broker.bootstrap, settings.topic_metrics
        await ensure_topics(bootstrap, topic_specs(settings))
        messages = simulated(BR_SERVICES, BR_EVENTS, seed=82)
        progress = Progress(bootstrap, settings.group_id, metrics_topic)
        produced: list[Produced] = []
        with Fleet(settings, tmp_path, detector_settings_env(settings)) as fleet:
            for name in ("d1", "d2"):
                fleet.start(name)
            await fleet.stable()
            started = time.monotonic()
            async with paced_stream(
                bootstrap,
                metrics_topic,
                messages,
                rate_per_s=BR_RATE_PER_S,
                acknowledged=produced,
            ) as producer:
                await fleet.wait_until(
                    lambda: progress.reached(BR_STOP_AT * BR_EVENTS),
                    timeout_s=60,
                    what=f"{BR_STOP_AT:.0%} of the events committed",
                )
                committed_at_stop = sum((await progress.poll()).values())
                mid_stream = not producer.done()
                down_at = time.monotonic()
                await take_down(broker, how)
                await asyncio.sleep(BR_DOWN_S)
                fleet.check_alive()
                await asyncio.to_thread(broker.start, owned=True)
                up_at = time.monotonic()
                await fleet.wait_until(
                    producer_done(producer), timeout_s=120, what="the producer finishing"
                )
            ends = await end_offsets_of(bootstrap, metrics_topic)

            async def drained() -> bool:
                return await progress.poll() == ends

            await fleet.wait_until(
                drained, timeout_s=120, what="committed offsets reaching the end offsets"
            )
            caught_up_s = time.monotonic() - up_at
            drain_s = time.monotonic() - started
            await fleet.stable(timeout_s=30)  # both are members again, each holding partitions
            kafka_errors = await fleet.total("vigil_kafka_errors_total")
            await fleet.stop_all()
        dead_letters = await read_all(bootstrap, settings.topic_dlq, idle_s=1.0)
        alerts = await check_alerts(settings, produced, "read_uncommitted")

    # The broker went down mid-stream; the detectors survived it and scored everything.
    assert len(produced) == BR_EVENTS
    assert mid_stream, "the broker stopped after the stream"
    assert sorted(p for p, end in ends.items() if end > 0) == list(range(PARTITIONS))
    assert progress.latest == ends
    assert not dead_letters, f"{len(dead_letters)} events dead-lettered"
    # Connection errors from the Kafka client are expected while the broker is away; errors
    # of Vigil's own (or a traceback) are not.
    own = {m.name: m.problems(own_only=True) for m in fleet.members}
    assert not any(own.values()), f"detectors reported errors: {own}"
    client_errors = sum(len(m.problems()) for m in fleet.members)
    print(
        f"\nbroker {how} mid-stream: {BR_EVENTS} events of {BR_SERVICES} services at "
        f"{BR_RATE_PER_S:.0f}/s, 2 detectors; broker down at {committed_at_stop} committed for "
        f"{up_at - down_at:.1f} s (restart included); all committed {caught_up_s:.1f} s after "
        f"it was back ({drain_s:.1f} s in all); vigil_kafka_errors_total {kafka_errors:.0f}, "
        f"Kafka client error lines {client_errors}\n"
        f"  alerts: expected {alerts.expected}, distinct on topic {alerts.distinct}, "
        f"missing {alerts.missing}, spurious {alerts.spurious}, duplicates {alerts.duplicates}"
    )
    assert (alerts.missing, alerts.spurious) == (0, 0), alerts
