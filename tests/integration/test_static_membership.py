"""Static group membership (KIP-345) against the real broker.

Two detectors, each with its own ``VIGIL_GROUP_INSTANCE_ID``, share six partitions while a
stream is produced. One is stopped (SIGTERM) and started again under the same name within
the session timeout: it gets exactly its partitions back, the other detector is never
rebalanced (it keeps its partitions all along and logs no assignment or revocation), and
the alerts are exactly those of one detector that never stopped.
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
    Member,
    Progress,
    check_alerts,
    detector_settings_env,
    end_offsets_of,
    paced_stream,
    simulated,
)
from tests.integration.kafka_io import Produced, group_members, read_all
from tests.integration.processes import log_tail

pytestmark = pytest.mark.integration

EVENTS = 30_000
SERVICES = 30
RATE_PER_S = 2_000.0
"""Paced so that the stream lasts ~15 s: the stop and the restart land in it."""
STOP_AT = 0.3
"""Share of the events committed when detector ``a`` is stopped."""
SESSION_TIMEOUT_MS = 45_000
"""Longer than the restart (a few seconds here), as a static member's should be."""


def _rebalance_events(member: Member) -> list[str]:
    """The assignments and revocations a member logged (aiokafka revokes the empty set
    before a first join: that one moves nothing and is left out)."""
    return [
        str(e["event"])
        for e in member.events()
        if e.get("event") in ("partitions_assigned", "partitions_revoked") and e.get("partitions")
    ]


async def test_a_static_member_restarted_within_the_session_timeout_keeps_its_partitions(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = test_settings.model_copy(
        update={
            "anomaly_budget_per_day": 86.4,
            "warmup_events": 300,
            "topic_partitions": 6,
            "incident_risk": False,
        }
    )
    bootstrap, metrics_topic = settings.bootstrap_servers, settings.topic_metrics
    await ensure_topics(bootstrap, topic_specs(settings))
    messages = simulated(SERVICES, EVENTS, seed=83)
    env = {**detector_settings_env(settings), "VIGIL_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    static_a = {"VIGIL_GROUP_INSTANCE_ID": "static-a"}
    progress = Progress(bootstrap, settings.group_id, metrics_topic)
    produced: list[Produced] = []
    with Fleet(settings, tmp_path, env) as fleet:
        a = fleet.start("a", static_a)
        b = fleet.start("b", {"VIGIL_GROUP_INSTANCE_ID": "static-b"})
        await fleet.stable()
        owned_a, owned_b = await a.owned(), await b.owned()
        assert owned_a
        assert owned_b
        # The broker names a static member's id after its instance id (``static-a-<uuid>``;
        # a dynamic one's is the client id's, ``vigil-a-consumer-<uuid>``).
        members = await group_members(bootstrap, settings.group_id)
        assert sorted(str(m["member_id"])[:9] for m in members) == ["static-a-", "static-b-"]
        b_before = _rebalance_events(b)

        async with paced_stream(
            bootstrap, metrics_topic, messages, rate_per_s=RATE_PER_S, acknowledged=produced
        ) as producer:

            async def stop_point() -> bool:
                return await progress.total() >= STOP_AT * EVENTS

            await fleet.wait_until(stop_point, timeout_s=60, what="the stop point")
            a.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(a.proc.wait, 60)
            assert code == 0, log_tail(a.log_path)
            a.expected_dead = True
            # A static member does not leave the group when it stops: the broker keeps its
            # partitions for it until the session times out.
            assert len(await group_members(bootstrap, settings.group_id)) == 2
            assert await b.owned() == owned_b

            restarted = time.monotonic()
            a2 = fleet.start("a-restarted", static_a)

            async def back() -> bool:
                return await a2.owned() == owned_a and await b.owned() == owned_b

            await fleet.wait_until(back, timeout_s=30, what="a's partitions back")
            print(
                f"\nstatic member restarted: its {len(owned_a)} partitions back "
                f"{time.monotonic() - restarted:.1f} s after the new process started; "
                f"the other kept its {len(owned_b)}"
            )

            async def drained() -> bool:
                if not producer.done():
                    return False
                ends = await end_offsets_of(bootstrap, metrics_topic)
                now = await progress.poll()
                return all(now.get(p, 0) == end for p, end in ends.items())

            await fleet.wait_until(drained, timeout_s=120, what="the stream drained")
            await producer
        # Polled again at the end: b was never rebalanced, a2 was assigned once.
        assert await b.owned() == owned_b
        assert _rebalance_events(b) == b_before, log_tail(b.log_path)
        assert _rebalance_events(a2) == ["partitions_assigned"], log_tail(a2.log_path)
        await fleet.stop_all()

    assert not progress.backwards, progress.backwards
    assert not await read_all(bootstrap, settings.topic_dlq, idle_s=1.0)
    alerts = await check_alerts(settings, produced, "read_uncommitted")
    print(f"alerts: {alerts}")
    assert alerts.missing == 0, alerts
    assert alerts.spurious == 0, alerts
