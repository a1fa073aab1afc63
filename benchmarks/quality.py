"""Alert quality on every labelled set: Vigil (this tree and a baseline revision) and river,
side by side in one run (issue 18).

Detectors see a set only through the external contract, so any revision can be measured:
the set is a MetricEvent/LogEvent JSONL file, ``vigil replay`` runs it in a subprocess, and
its Alert JSONL is read back.

* ``vigil``: this tree (``python -m stream.cli replay`` with ``PYTHONPATH`` set to it);
* ``vigil@REF`` (``--baseline REF``): the same in a temporary git worktree of REF, removed at
  the end;
* ``river``: river out of the box, one model per service: ``MinMaxScaler | HalfSpaceTrees
  (seed=42)`` under ``QuantileFilter(q=1 - 0.001)``; each flag is an alert (no episodes).

Vigil runs at its default settings (inherited ``VIGIL_*`` variables are dropped) unless
``--set KEY=VALUE`` (passed on as ``VIGIL_KEY``). Only anomaly alerts of the set's source
count. A firing alert (``status`` absent or ``firing``) of an episode spans to the episode's
``resolved`` alert or the end of the data; other alerts cover their own sample.

Per set and detector, pooled over services (``models.alert_quality.alert_quality``): point-wise
P/R/F1; point-adjusted F1 (a segment with a flagged point counts flagged whole: the convention
of published ASD results, which flatters detectors); episode-wise P/R/F1 (a labelled segment
is caught by a firing alert in ``[start, end + 3 samples]``, an alert is true if it falls in
such a window); alerts per caught segment; false alerts per service-day; median delay in
samples; firing alerts next to the budget (this tree: 0.25 false alerts per service-day, or
``--set anomaly_budget_per_day``; an older revision: 0.001 x scored samples, its default
target rate, or ``--set anomaly_target_rate``; river's stays 0.001). Sets: ``kpi``, ``asd``
(train half streamed, test half scored; dev omi-1..6 and held-out omi-7..12 apart), ``bgl``
(log alerts on the log-window grid), ``planted`` (also per episode kind), ``degenerate``
(target: no alert), ``simulator``.

Usage:
    python benchmarks/quality.py [--baseline REF] [--only kpi,asd,...] [--quick]
        [--set KEY=VALUE] [--json FILE] [--data ../shared/data] [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import operator
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from quality_report import print_report, to_json
from quality_sets import BGL_GAP_WINDOWS, SETS, LabelledSet, build
from river import anomaly, compose, preprocessing

from models.alert_quality import (
    AlertQuality,
    Span,
    alert_quality,
    alert_spans,
    segment_hits,
    span_flags,
)
from models.evaluation import close_gaps, point_adjust

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
TOLERANCE = 3
BUDGET_RATE = 0.001
BUDGET_PER_DAY = 0.25  # this tree's default (VIGIL_ANOMALY_BUDGET_PER_DAY)
RIVER_RATE = 0.001  # river's quantile threshold: q = 1 - RIVER_RATE, whatever Vigil's settings
ORDER = ("asd", "planted", "degenerate", "kpi", "simulator", "bgl")  # longest runs first

RawAlert = tuple[str, str, str | None, str | None, str]
"""An anomaly alert as read back: service, event_ts, status, episode_id, source."""


@dataclass(frozen=True)
class Task:
    """One detector over one set's file."""

    detector: str
    tree: Path | None  # a Vigil tree; None: river
    set_name: str
    path: Path
    env: tuple[tuple[str, str], ...]
    python: str


def run_task(task: Task) -> tuple[list[RawAlert], float, dict[str, Any]]:
    """The task's anomaly alerts, its wall time and the replay's summary."""
    started = time.perf_counter()
    if task.tree is None:
        alerts, info = river_alerts(task.path, RIVER_RATE), {}
    else:
        alerts, info = vigil_alerts(task)
    return alerts, time.perf_counter() - started, info


def vigil_alerts(task: Task) -> tuple[list[RawAlert], dict[str, Any]]:
    """``vigil replay`` of the task's tree in a subprocess; its anomaly alerts and summary."""
    assert task.tree is not None
    out = task.path.with_name(f"{task.set_name}.{task.detector.replace('@', '-')}.alerts.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"PYTHONPATH": str(task.tree), **dict(task.env)})
    command = [task.python, "-m", "stream.cli", "replay", str(task.path), "--out", str(out)]
    done = subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{task.detector} on {task.set_name}: {done.stderr[-2000:]}")
    summary: dict[str, Any] = {}
    for line in done.stderr.splitlines():
        if line.startswith('{"lines"'):
            summary = {k: v for k, v in orjson.loads(line).items() if k != "incident_risk"}
    alerts, statuses = [], {"firing": 0, "resolved": 0}
    with out.open("rb") as f:
        for line in f:
            a = orjson.loads(line)
            if a.get("kind") == "anomaly":
                alerts.append(
                    (a["service"], a["event_ts"], a.get("status"), a.get("episode_id"), a["source"])
                )
                statuses["resolved" if a.get("status") == "resolved" else "firing"] += 1
    return alerts, {**summary, "anomaly_alerts": statuses}


def river_alerts(path: Path, rate: float) -> list[RawAlert]:
    """River out of the box, one model per service: a flag is an alert."""
    models: dict[str, Any] = {}
    alerts: list[RawAlert] = []
    with path.open("rb") as f:
        for line in f:
            event = orjson.loads(line)
            x = event.get("metrics")
            if x is None:
                continue
            service = event["service"]
            model = models.get(service)
            if model is None:
                pipeline = compose.Pipeline(
                    preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42)
                )
                model = models[service] = anomaly.QuantileFilter(pipeline, q=1.0 - rate)
            if model.classify(model.score_one(x)):
                alerts.append((service, event["ts"], None, None, "metrics"))
            model.learn_one(x)
    return alerts


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def service_spans(s: LabelledSet, alerts: list[RawAlert]) -> tuple[dict[str, list[Span]], int]:
    """Each service's alert spans, in indices of its scored samples, and how many alerts were
    not at a sample's time (put on the next sample)."""
    triples: dict[str, list[tuple[int, str | None, str | None]]] = {name: [] for name in s.truth}
    off_grid = 0
    for service, ts, status, episode, source in alerts:
        if source == s.source and service in triples:
            times, t = s.truth[service].times, _epoch(ts)
            i = int(np.searchsorted(times, t, "left"))
            off_grid += i == times.size or times[min(i, times.size - 1)] != t
            triples[service].append((i, status, episode))
    out = {}
    for name, truth in s.truth.items():
        spans = alert_spans(triples[name], truth.times.size)
        out[name] = [(a - truth.scored_from, b - truth.scored_from) for a, b in spans]
    return out, off_grid


def metric_quality(s: LabelledSet, spans: dict[str, list[Span]]) -> dict[str, AlertQuality]:
    """Per service, and pooled per report group (keys ``group:NAME``)."""
    per = {
        name: alert_quality(t.labels, spans[name], sample_s=s.sample_s, tolerance=TOLERANCE)
        for name, t in s.truth.items()
    }
    groups = {
        f"group:{g}": functools.reduce(operator.add, (per[m] for m in members))
        for g, members in s.groups.items()
    }
    return {**per, **groups}


def log_quality(s: LabelledSet, alerts: list[RawAlert]) -> dict[str, AlertQuality]:
    """Log alerts on the grid of log windows: a window is labelled when it holds a labelled
    line, windows at most ``BGL_GAP_WINDOWS`` apart join into one segment; point-wise
    figures count log lines (a line is flagged when its window is in an alert's span; point-
    adjusted, when its window is in a segment with a flagged window)."""
    truth = s.truth["bgl"]
    window = np.floor(truth.times / s.sample_s).astype(np.int64)
    first = int(window.min())
    n = int(window.max()) - first + 1
    grid = np.zeros(n, dtype=bool)
    grid[window[truth.labels] - first] = True
    triples = [
        (int(_epoch(ts) // s.sample_s) - first, status, episode)
        for service, ts, status, episode, source in alerts
        if source == "logs" and service == "bgl"
    ]
    spans = alert_spans(triples, n)
    segments = close_gaps(grid, BGL_GAP_WINDOWS)
    q = alert_quality(segments, spans, sample_s=s.sample_s)
    flags = span_flags(spans, n)
    lines, adjusted = flags[window - first], point_adjust(flags, segments)[window - first]
    q = replace(
        q,
        points=int(truth.labels.size),
        anomalous=int(truth.labels.sum()),
        flagged=int(lines.sum()),
        flagged_anomalous=int((lines & truth.labels).sum()),
        adjusted_flagged=int(adjusted.sum()),
        adjusted_anomalous=int((adjusted & truth.labels).sum()),
    )
    return {"bgl": q, "group:all": q}


def planted_kinds(s: LabelledSet, spans: dict[str, list[Span]]) -> dict[str, dict[str, Any]]:
    """Per episode kind: caught within 3 samples of the start, caught in
    ``[start, end + 3]``, alerts per caught episode, median delay."""
    times = next(iter(s.truth.values())).times
    acc: dict[str, dict[str, Any]] = {}
    for e in s.episodes:
        first = int(np.searchsorted(times, e.start.timestamp()))
        last = int(np.searchsorted(times, e.end.timestamp()))
        firing = [a for a, _ in spans[e.service]]
        (count, delay), (_, early) = segment_hits(
            [(first, last), (first, first)], firing, tolerance=TOLERANCE
        )
        k = acc.setdefault(e.kind, {"episodes": 0, "early": 0, "caught": 0, "alerts": 0, "d": []})
        k["episodes"] += 1
        k["early"] += early is not None
        if delay is not None:
            k["caught"] += 1
            k["alerts"] += count
            k["d"].append(delay)
    return {
        kind: {
            "episodes": k["episodes"],
            "caught_within_3_of_start": k["early"],
            "caught": k["caught"],
            "alerts_per_caught": k["alerts"] / k["caught"] if k["caught"] else None,
            "median_delay": float(np.median(k["d"])) if k["d"] else None,
        }
        for kind, k in sorted(acc.items())
    }


@contextlib.contextmanager
def baseline_tree(ref: str | None) -> Iterator[Path | None]:
    """A git worktree of ``ref`` in a temp dir (None without a ref), removed on exit."""
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="vigil-baseline-") as parent:
        path = Path(parent) / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "--quiet", str(path), ref], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "remove", "--force", str(path)], check=False)


def describe_tree() -> str:
    """This tree's commit, and whether it has uncommitted changes."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    summary, _, details = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        description=summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=details,
    )
    parser.add_argument("--baseline", metavar="REF", help="also measure this git revision")
    parser.add_argument("--only", default=",".join(SETS), help=f"sets, from {','.join(SETS)}")
    parser.add_argument("--quick", action="store_true", help="smaller planted and simulator runs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data dir")
    parser.add_argument("--jobs", type=int, default=2, help="detector runs at a time")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep replay files and alerts")
    parser.add_argument("--python", default=sys.executable, help="interpreter for vigil replay")
    args = parser.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SETS)
    if unknown:
        parser.error(f"unknown sets: {', '.join(sorted(unknown))}")
    if any("=" not in item for item in args.set):
        parser.error("--set takes KEY=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k.strip().lower(): v for k, _, v in (i.partition("=") for i in args.set)}
    env = tuple((f"VIGIL_{k.upper()}", v) for k, v in overrides.items())
    rate = float(overrides.get("anomaly_target_rate", BUDGET_RATE))
    window_s = float(overrides.get("log_window_s", 30.0))
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            work = args.keep
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vigil-quality-")))
        sets = {}
        for name in [n for n in ORDER if n in args.only]:
            t0 = time.perf_counter()
            sets[name] = build(name, args.data, work, quick=args.quick, window_s=window_s)
            timings[f"build {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        baseline = stack.enter_context(baseline_tree(args.baseline))
        if baseline is not None:
            timings["baseline worktree"] = time.perf_counter() - t0
        trees: list[tuple[str, Path | None]] = [("vigil", ROOT)]
        if baseline is not None:
            trees.append((f"vigil@{args.baseline}", baseline))
        trees.append(("river", None))
        tasks = [
            Task(name, tree, s.name, s.path, env, args.python)
            for s in sets.values()
            for name, tree in trees
            if not (tree is None and s.source == "logs")  # river has no log detector
        ]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = dict(zip(tasks, pool.map(run_task, tasks), strict=True))
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for s in sets.values():
        per_detector = {}
        for task, (alerts, wall_s, info) in outcomes.items():
            if task.set_name != s.name:
                continue
            timings[f"{s.name}: {task.detector}"] = wall_s
            entry: dict[str, Any] = {"replay": info}
            if s.source == "logs":
                quality = log_quality(s, alerts)
            else:
                spans, entry["off_grid_alerts"] = service_spans(s, alerts)
                quality = metric_quality(s, spans)
                if s.episodes:
                    entry["per_kind"] = planted_kinds(s, spans)
            entry["quality"] = quality
            per_detector[task.detector] = entry
        results[s.name] = per_detector
    timings["evaluate"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    detectors = [name for name, _ in trees]
    meta = {
        "tree": describe_tree(),
        "baseline": args.baseline,
        "detectors": detectors,
        "vigil_settings": ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults",
        "budget_rate": rate,
        "budget_per_day": float(overrides.get("anomaly_budget_per_day", BUDGET_PER_DAY)),
        "river_rate": RIVER_RATE,
        "tolerance_samples": TOLERANCE,
        "quick": args.quick,
        "jobs": args.jobs,
        "python": args.python,
    }
    print_report(meta, sets, results, timings, rate)
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(
                to_json(meta, sets, results, timings, rate),
                option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
