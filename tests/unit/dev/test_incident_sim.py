"""stream.dev.incident_sim.IncidentSimulator: seeded, labelled late, and warning signs that show."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import orjson
import pytest

from stream.dev.incident_sim import IncidentRecord, IncidentSimulator, SimulatedIncident, to_jsonl
from stream.dev.simulate import SimulatedEvent
from stream.offline.replay import line_kind
from stream.schemas import IncidentEvent, MetricEvent

DAYS = 5


@dataclass
class Run:
    """One simulated stream, kept for several tests."""

    sim: IncidentSimulator
    items: list[SimulatedEvent | IncidentRecord]
    emitted_after: list[datetime | None]  # per item: the newest sample time before it
    samples: dict[str, list[tuple[datetime, dict[str, float], bool]]]

    @property
    def incidents(self) -> list[SimulatedIncident]:
        return self.sim.incidents


@pytest.fixture(scope="module")
def run() -> Run:
    sim = IncidentSimulator(services=10, seed=11)
    items = list(sim.stream(DAYS * 86_400.0))
    emitted_after: list[datetime | None] = []
    samples: dict[str, list[tuple[datetime, dict[str, float], bool]]] = defaultdict(list)
    newest = None
    for item in items:
        emitted_after.append(newest)
        if isinstance(item, SimulatedEvent):
            newest = datetime.fromisoformat(item.payload["ts"])
            samples[item.service].append(
                (newest, item.payload["metrics"], item.payload["deploy_recent"])
            )
    return Run(sim, items, emitted_after, samples)


def test_same_seed_gives_the_same_stream_and_a_longer_one_begins_with_it() -> None:
    def stream(seed: int, days: float) -> list[bytes]:
        sim = IncidentSimulator(services=3, seed=seed, clean_start_s=3600.0)
        return [i.to_bytes() for i in sim.stream(days * 86_400.0)]

    first = stream(5, 1.0)
    assert any(b'"incident_id"' in line for line in first)
    assert first == stream(5, 1.0)
    assert first != stream(6, 1.0)
    assert stream(5, 2.0)[: len(first)] == first


def test_incidents_avoid_the_clean_start_and_never_overlap(run: Run) -> None:
    by_service: dict[str, list[SimulatedIncident]] = defaultdict(list)
    for incident in run.incidents:
        by_service[incident.service].append(incident)
        assert incident.opened >= run.sim.start + timedelta(seconds=run.sim.clean_start_s)
        assert timedelta(minutes=10) <= incident.resolved - incident.opened <= timedelta(hours=1)
        assert incident.severity in {"sev1", "sev2", "sev3"}
    assert len(by_service) == run.sim.services
    for incidents in by_service.values():
        for before, after in pairwise(incidents):
            assert before.resolved < (after.precursor_start or after.opened)
    ids = [i.incident_id for i in run.incidents]
    assert len(set(ids)) == len(ids)


def test_records_are_published_late_with_the_real_times(run: Run) -> None:
    truth = {i.incident_id: i for i in run.incidents}
    seen: dict[str, set[str]] = defaultdict(set)
    for item, newest in zip(run.items, run.emitted_after, strict=True):
        if not isinstance(item, IncidentRecord):
            continue
        event = IncidentEvent.model_validate(item.payload)
        incident = truth[event.incident_id]
        assert (event.service, event.severity) == (incident.service, incident.severity)
        assert newest is not None
        if event.status == "opened":
            assert event.ts == incident.opened
            delay = (incident.published_at - incident.opened).total_seconds()
            assert run.sim.label_delay_s[0] <= delay <= run.sim.label_delay_s[1]
            # It follows every sample older than its publish time, and no later one.
            assert newest < incident.published_at <= newest + timedelta(seconds=10)
        else:
            assert event.ts == incident.resolved <= newest + timedelta(seconds=10)
            assert "opened" in seen[event.incident_id]
        seen[event.incident_id].add(event.status)
    assert len(seen) >= len(truth) - run.sim.services  # only the last few may be unpublished


def test_samples_are_valid_metric_events(run: Run) -> None:
    for item in run.items[:5000]:
        if isinstance(item, SimulatedEvent):
            event = MetricEvent.model_validate(item.payload)
            assert set(event.metrics) == {
                "cpu_p95",
                "mem_p95",
                "req_rate",
                "err_5xx",
                "latency_p95",
            }
            assert item.anomaly is None


def test_about_three_percent_of_minute_vectors_precede_an_open(run: Run) -> None:
    horizon = timedelta(minutes=15)
    positive = total = 0
    for service in run.sim.names:
        incidents = [i for i in run.incidents if i.service == service]
        minute = run.sim.start + timedelta(seconds=run.sim.clean_start_s)
        end = run.sim.start + timedelta(days=DAYS)
        while minute < end:
            ready = minute + timedelta(minutes=1)
            if not any(i.opened < ready and minute < i.resolved for i in incidents):
                total += 1
                positive += any(ready <= i.opened < ready + horizon for i in incidents)
            minute = ready
    assert 0.022 < positive / total < 0.04


def _median(run: Run, incident: SimulatedIncident, metric: str, first: float, last: float) -> float:
    """Median of ``metric`` in the minutes ``first``..``last`` relative to ``incident.opened``."""
    lo, hi = (incident.opened + timedelta(minutes=m) for m in (first, last))
    return statistics.median(
        m[metric] for ts, m, _ in run.samples[incident.service] if lo <= ts < hi
    )


@pytest.mark.parametrize(
    ("precursor", "metric", "ratio"),
    [
        ("memory_creep", "mem_p95", 1.04),
        ("latency_drift", "latency_p95", 1.15),
        ("error_growth", "err_5xx", 1.5),
        ("deploy", "err_5xx", 1.25),
    ],
)
def test_precursors_move_their_metric(run: Run, precursor: str, metric: str, ratio: float) -> None:
    cases = [i for i in run.incidents if i.precursor == precursor]
    assert len(cases) >= 10
    for incident in cases:
        assert incident.precursor_start is not None
        lead = (incident.opened - incident.precursor_start).total_seconds() / 60
        assert 10 <= lead <= 40
        normal = _median(run, incident, metric, -lead - 30, -lead)
        assert _median(run, incident, metric, -10, 0) > ratio * normal, incident


def test_incidents_without_warning_show_nothing_beforehand(run: Run) -> None:
    silent = [i for i in run.incidents if i.precursor is None]
    assert len(silent) >= 10
    for metric in ("mem_p95", "latency_p95", "err_5xx"):
        ratios = [
            _median(run, i, metric, -10, 0) / _median(run, i, metric, -40, -10) for i in silent
        ]
        assert statistics.median(ratios) == pytest.approx(1.0, abs=0.05), metric


def test_deploy_precursors_raise_the_flag_for_ten_minutes(run: Run) -> None:
    cases = [i for i in run.incidents if i.precursor == "deploy"]
    assert cases
    for incident in cases:
        assert incident.precursor_start is not None
        lead = incident.opened - incident.precursor_start
        assert timedelta(minutes=15) <= lead <= timedelta(minutes=30)
        deployed = incident.precursor_start
        flags = [
            d
            for ts, _, d in run.samples[incident.service]
            if deployed <= ts < deployed + timedelta(minutes=10)
        ]
        assert len(flags) >= 59
        assert all(flags)


def test_incidents_come_without_warning_in_about_the_configured_share(run: Run) -> None:
    silent = sum(i.precursor is None for i in run.incidents) / len(run.incidents)
    assert silent == pytest.approx(1 - run.sim.warning_share, abs=0.08)


def test_jsonl_lines_round_trip_through_replay_kinds(run: Run) -> None:
    items = run.items[:20_000] + [i for i in run.items if isinstance(i, IncidentRecord)]
    kinds = set()
    for item, line in zip(items, to_jsonl(items), strict=True):
        assert line.endswith(b"\n")
        assert b"\n" not in line[:-1]
        assert orjson.loads(line) == item.payload
        kind = line_kind(line)
        assert kind == ("incidents" if isinstance(item, IncidentRecord) else "metrics")
        kinds.add(kind)
    assert kinds == {"metrics", "incidents"}


def test_endless_carries_the_services_on_through_chunks_of_whole_incidents() -> None:
    sim = IncidentSimulator(services=3, seed=9, clean_start_s=3600.0, incidents_per_day=12.0)
    chunk_s, chunks = 86_400.0, 4
    per_chunk = int(chunk_s / sim.interval_s) * sim.services
    items: list[SimulatedEvent | IncidentRecord] = []
    samples = 0
    for item in sim.endless(chunk_s=chunk_s):
        if isinstance(item, SimulatedEvent):
            if samples == chunks * per_chunk:
                break
            samples += 1
        items.append(item)
    # Event time runs on at one sample per service per interval, across the chunks' seams.
    times: dict[str, list[datetime]] = defaultdict(list)
    for item in items:
        if isinstance(item, SimulatedEvent):
            times[item.service].append(datetime.fromisoformat(item.payload["ts"]))
    for series in times.values():
        assert len(series) == chunks * per_chunk // sim.services
        assert {b - a for a, b in pairwise(series)} == {timedelta(seconds=sim.interval_s)}
    # Each chunk's incidents open and resolve within it, under ids of their own.
    records = [
        IncidentEvent.model_validate(i.payload) for i in items if isinstance(i, IncidentRecord)
    ]
    statuses: dict[str, list[str]] = defaultdict(list)
    for record in records:
        chunk = int((record.ts - sim.start).total_seconds() // chunk_s)
        suffix = record.incident_id.removeprefix(f"INC-{record.service}-")
        assert suffix.startswith(f"c{chunk}-") if chunk else suffix.isdigit()
        statuses[record.incident_id].append(record.status)
    assert all(s == ["opened", "resolved"] for s in statuses.values())
    in_chunk = {
        n: sum(f"-c{n}-" in i if n else "-c" not in i for i in statuses) for n in range(chunks)
    }
    assert all(count >= 10 for count in in_chunk.values()), in_chunk
    # The first chunk is `stream`'s (up to what it may leave open at the end).
    first_half = [i.to_bytes() for i in items[: per_chunk // 2]]
    assert first_half == [i.to_bytes() for i in sim.stream(chunk_s)][: per_chunk // 2]
    # The same services: sizes carry on; the noise is new.
    day = per_chunk // sim.services
    for name in sim.names:
        memory = [
            float(i.payload["metrics"]["mem_p95"])
            for i in items
            if isinstance(i, SimulatedEvent) and i.service == name
        ]
        before = statistics.median(memory[day - 60 : day])
        assert statistics.median(memory[day : day + 60]) == pytest.approx(before, rel=0.1)
        assert memory[:60] != memory[day : day + 60]
