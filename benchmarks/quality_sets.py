"""The labelled sets of ``benchmarks/quality.py``, each written as one replay JSONL with its truth.

Every set is a file any revision of ``vigil replay`` reads (the external contract: MetricEvent
or LogEvent JSONL) and, per service, the event times streamed and the labels of the scored
samples. Services of a set are interleaved in event-time order, as a live topic would hold
them. Real data is read in place from ``--data`` and written only to the run's temp dir.
"""

from __future__ import annotations

import csv
import gzip
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from asd_quality import DEV, HELD_OUT, STEP_S, load
from asd_to_jsonl import START as ASD_START

from models.evaluation import anomaly_segments, close_gaps
from stream.dev.planted import DEGENERATE_KINDS, PlantedEpisode, PlantedStream, degenerate_events
from stream.dev.simulate import MetricSimulator, format_ts

SETS = ("kpi", "asd", "bgl", "planted", "degenerate", "simulator")
KPI_SERIES = ("cpu4", "server_res_eth1out_curve_6", "server_res_eth1out_curve_61")
BGL_GAP_WINDOWS = 4
"""BGL: labelled lines at most this many empty log windows apart form one segment."""
_BGL_LEVELS = {"SEVERE": "ERROR", "FAILURE": "FATAL"}  # BGL's levels beyond LogEvent's five


@dataclass
class Truth:
    """One service's samples as streamed, and the labels of those scored (from ``scored_from``)."""

    times: npt.NDArray[np.float64]
    labels: npt.NDArray[np.bool_]
    scored_from: int = 0


@dataclass
class LabelledSet:
    """A replay file and what is known about it."""

    name: str
    path: Path
    sample_s: float
    truth: dict[str, Truth]
    groups: dict[str, tuple[str, ...]]
    source: str = "metrics"
    episodes: list[PlantedEpisode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        """Samples scored over every service."""
        return sum(t.labels.size for t in self.truth.values())

    def describe(self, group: str = "all") -> str:
        """One line: services, samples, anomalous points and segments."""
        chosen = [self.truth[s] for s in self.groups[group]]
        if self.source == "logs":
            lines = sum(t.labels.size for t in chosen)
            labelled = sum(int(t.labels.sum()) for t in chosen)
            return f"{len(chosen)} service, {lines:,} log lines, {labelled:,} labelled"
        points = sum(t.labels.size for t in chosen)
        anomalous = sum(int(t.labels.sum()) for t in chosen)
        segments = sum(len(anomaly_segments(t.labels)) for t in chosen)
        return (
            f"{len(chosen)} services, {points:,} scored samples at {self.sample_s:g} s, "
            f"{anomalous:,} anomalous points in {segments:,} segments"
        )


def write_jsonl(path: Path, payloads: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object a line; return the count."""
    count = 0
    with path.open("wb") as out:
        for payload in payloads:
            out.write(orjson.dumps(payload) + b"\n")
            count += 1
    return count


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def _interleaved(streams: list[Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Payloads of several services merged by event time (ties keep the services' order)."""
    return heapq.merge(*streams, key=lambda p: _epoch(p["ts"]))


def _metric_event(service: str, ts: float, metrics: dict[str, float]) -> dict[str, Any]:
    return {
        "ts": format_ts(datetime.fromtimestamp(ts, UTC)),
        "service": service,
        "metrics": metrics,
    }


def _rows(
    service: str, names: list[str], times: npt.NDArray[np.float64], rows: npt.NDArray[np.float64]
) -> Iterator[dict[str, Any]]:
    for t, row in zip(times.tolist(), rows, strict=True):
        yield _metric_event(service, t, dict(zip(names, row.tolist(), strict=True)))


def kpi_set(data: Path, work: Path) -> LabelledSet:
    """The three AIOps-Challenge KPIs, one service each, with their own timestamps."""
    truth, streams, notes = {}, [], []
    for name in KPI_SERIES:
        with gzip.open(data / "kpi" / f"{name}.csv.gz", "rt") as f:
            rows = [
                (float(r["timestamp"]), float(r["value"]), r["label"]) for r in csv.DictReader(f)
            ]
        times = np.array([r[0] for r in rows])
        values = np.array([r[1] for r in rows])
        truth[name] = Truth(times, np.array([float(r[2]) > 0 for r in rows]))
        streams.append(_rows(name, ["value"], times, values[:, None]))
        steps = np.diff(times)
        notes.append(
            f"{name}: {times.size:,} samples, steps other than 300 s: {int(np.sum(steps != 300))}"
            f" (repeated timestamps {int(np.sum(steps == 0))}), {np.unique(values).size:,} "
            f"distinct values, {int(np.sum(np.diff(values) == 0)):,} repeats of the previous"
        )
    path = work / "kpi.jsonl"
    write_jsonl(path, _interleaved(streams))
    return LabelledSet("kpi", path, 300.0, truth, {"all": KPI_SERIES}, notes=notes)


def asd_set(data: Path, work: Path) -> LabelledSet:
    """ASD's 12 servers: the train half then the test half as one service each, 5 min apart;
    only the test half is scored."""
    truth, streams = {}, []
    start = ASD_START.timestamp()
    for server in (*DEV, *HELD_OUT):
        names, train = load(data / "asd" / f"{server}_train.csv.gz")
        _, test = load(data / "asd" / f"{server}_test.csv.gz")
        rows = np.vstack([train, test[:, :-1]])
        times = start + np.arange(len(rows)) * STEP_S
        truth[server] = Truth(times, test[:, -1].astype(bool), scored_from=len(train))
        streams.append(_rows(server, names, times, rows))
    path = work / "asd.jsonl"
    write_jsonl(path, _interleaved(streams))
    groups = {"dev omi-1..6": DEV, "held-out omi-7..12": HELD_OUT, "all": (*DEV, *HELD_OUT)}
    return LabelledSet("asd", path, STEP_S, truth, groups)


def bgl_set(data: Path, work: Path, window_s: float) -> LabelledSet:
    """BGL's 2,000 log lines as LogEvents of one service, each at its own timestamp; a line is
    labelled when its first column is not ``-``."""
    events, times, labels = [], [], []
    with (data / "loghub" / "BGL" / "BGL_2k.log").open(encoding="utf-8") as f:
        for line in f:
            label, epoch, _, node, _, _, _, _, level, *content = line.split(maxsplit=9)
            ts = float(epoch)
            events.append(
                {
                    "ts": format_ts(datetime.fromtimestamp(ts, UTC)),
                    "service": "bgl",
                    "level": _BGL_LEVELS.get(level, level),
                    "message": content[0].rstrip("\n") if content else "",
                    "host": node,
                }
            )
            times.append(ts)
            labels.append(label != "-")
    path = work / "bgl.jsonl"
    write_jsonl(path, events)
    t, y = np.array(times), np.array(labels)
    windows = np.floor(t / window_s).astype(np.int64)
    grid = np.zeros(int(windows.max() - windows.min()) + 1, dtype=bool)
    grid[windows[y] - windows.min()] = True
    segments = len(anomaly_segments(close_gaps(grid, BGL_GAP_WINDOWS)))
    _, per_window = np.unique(windows, return_counts=True)
    days = (t[-1] - t[0]) / 86_400
    notes = [
        f"{t.size:,} lines over {days:.0f} days ({t.size / days:.1f} a day) in "
        f"{per_window.size:,} of {grid.size:,} {window_s:g}-s windows, "
        f"{int(np.sum(per_window == 1)):,} of them holding a single line; the lines fall in "
        f"{np.unique(np.floor(t / 3600)).size} distinct hours",
        f"{int(y.sum())} labelled lines in {int(grid.sum())} windows: {segments} segments "
        f"(labelled windows at most {BGL_GAP_WINDOWS} windows apart joined)",
        "the 2k sample is too sparse to judge windowed log detection (a handful of lines "
        "per active hour, days between them): read its rows as a smoke test",
    ]
    return LabelledSet(
        "bgl", path, window_s, {"bgl": Truth(t, y)}, {"all": ("bgl",)}, "logs", notes=notes
    )


def planted_set(work: Path, quick: bool) -> LabelledSet:
    """:class:`PlantedStream` (6 services, 7 days, 40 positive episodes and 8 benign drops;
    ``quick``: 4 days, 16 and 4). A positive episode's samples are labelled (a level shift:
    its first); benign drops are not, so alerts on them are false."""
    stream = PlantedStream(days=4, positives=16, benign=4) if quick else PlantedStream()
    path = work / "planted.jsonl"
    write_jsonl(path, stream.events())
    times = stream.start.timestamp() + np.arange(stream.samples) * stream.interval_s
    truth = {name: Truth(times, np.zeros(stream.samples, dtype=bool)) for name in stream.names}
    step = timedelta(seconds=stream.interval_s)
    episodes = stream.episodes()
    for e in episodes:
        if e.positive:
            truth[e.service].labels[
                (e.start - stream.start) // step : (e.end - stream.start) // step + 1
            ] = True
    return LabelledSet(
        "planted", path, stream.interval_s, truth, {"all": tuple(stream.names)}, episodes=episodes
    )


def degenerate_set(work: Path, count: int = 10_000) -> LabelledSet:
    """One service per degenerate shape, ``count`` normal samples a minute each."""
    path = work / "degenerate.jsonl"
    write_jsonl(path, _interleaved([degenerate_events(kind, count) for kind in DEGENERATE_KINDS]))
    start = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    times = start + np.arange(count) * 60.0
    truth = {
        f"degenerate-{kind}": Truth(times, np.zeros(count, dtype=bool)) for kind in DEGENERATE_KINDS
    }
    return LabelledSet("degenerate", path, 60.0, truth, {"all": tuple(truth)})


def simulator_set(work: Path, quick: bool) -> LabelledSet:
    """``MetricSimulator`` at its defaults (5 services, a sample each 10 s, spikes of 8-20 sds
    at 0.5 %): 20,000 events (``quick``: 8,000)."""
    sim = MetricSimulator()
    times: dict[str, list[float]] = {}
    labels: dict[str, list[bool]] = {}
    path = work / "simulator.jsonl"
    with path.open("wb") as out:
        for event in sim.events(8_000 if quick else 20_000):
            out.write(event.to_bytes() + b"\n")
            times.setdefault(event.service, []).append(_epoch(event.payload["ts"]))
            labels.setdefault(event.service, []).append(event.anomaly is not None)
    truth = {s: Truth(np.array(times[s]), np.array(labels[s])) for s in times}
    return LabelledSet("simulator", path, sim.interval_s, truth, {"all": tuple(truth)})


def build(name: str, data: Path, work: Path, *, quick: bool, window_s: float) -> LabelledSet:
    """The named set's replay file (written to ``work``) and truth."""
    if name == "kpi":
        return kpi_set(data, work)
    if name == "asd":
        return asd_set(data, work)
    if name == "bgl":
        return bgl_set(data, work, window_s)
    if name == "planted":
        return planted_set(work, quick)
    if name == "degenerate":
        return degenerate_set(work)
    if name == "simulator":
        return simulator_set(work, quick)
    raise ValueError(f"unknown set: {name}")
