"""Offline throughput of the log pipeline, and memory per service.

1. Lines/s: simulated log lines of ``--services`` services (``stream.dev.log_simulate``: request,
   cache, job, error lines with ids, IPs, durations) built up front, then timed through
   template mining alone, and through the whole ``LogPipeline`` (mining + windows + features +
   scoring) in batches of ``--batch``. Best of ``--repeat`` runs.
2. Memory: ``--memory-lines`` lines of one service over 500 distinct templates (streamed in
   batches, never held at once); reports the process's RSS growth and the window model's
   array bytes.

Usage: python benchmarks/log_throughput.py [--lines 200000] [--memory-lines 1000000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psutil

from stream.core.logs.pipeline import LogPipeline
from stream.core.logs.templates import ServiceTemplates
from stream.dev.log_simulate import LogSimulator
from stream.schemas import Evidence, LogEvent

_EVIDENCE = Evidence(topic="vigil.logs", partition=0, offset=0)


def _evidence(_: int) -> Evidence:
    return _EVIDENCE


def throughput(lines: int, services: int, batch: int, repeat: int) -> dict[str, Any]:
    names = [f"svc-{i:02d}" for i in range(services)]
    # 10 lines/s per service: ~300 lines per 30 s window.
    sim = LogSimulator(names, lines_per_s=10.0, seed=1)
    events = list(sim.events(lines / (10.0 * services) + 1))[:lines]
    best_mine = best_pipeline = float("inf")
    windows = 0
    for _ in range(repeat):
        miners = {n: ServiceTemplates(n) for n in names}
        started = time.perf_counter()
        for e in events:
            miners[e.service].add(e.message)
        best_mine = min(best_mine, time.perf_counter() - started)
        pipeline = LogPipeline()
        started = time.perf_counter()
        for i in range(0, len(events), batch):
            windows += len(pipeline.process_batch(events[i : i + batch], _evidence).windows)
        best_pipeline = min(best_pipeline, time.perf_counter() - started)
    return {
        "lines": len(events),
        "services": services,
        "batch": batch,
        "event_time_s": round((events[-1].ts - events[0].ts).total_seconds()),
        "mining_lines_per_s": round(len(events) / best_mine),
        "pipeline_lines_per_s": round(len(events) / best_pipeline),
        "windows_per_run": windows // repeat,
    }


def _word(k: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = ""
    k += 26 * 27
    while k:
        k, r = divmod(k, 26)
        out += letters[r]
    return out


def memory(lines: int, templates: int, batch: int = 10_000, traced: bool = False) -> dict[str, Any]:
    rng = random.Random(2)
    # Each template: six words of its own (no digits) and two shared tokens, so no two are
    # similar enough for Drain to merge them (2/8 < 0.4).
    words = [" ".join(_word(6 * k + j) for j in range(6)) for k in range(templates)]
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    rate = 100.0  # lines per second of event time
    process = psutil.Process()
    gc.collect()
    if traced:
        tracemalloc.start()
    before = process.memory_info().rss
    pipeline = LogPipeline()
    started = time.perf_counter()
    for start in range(0, lines, batch):
        events = [
            LogEvent.model_construct(
                ts=t0 + timedelta(seconds=i / rate),
                service="svc",
                level="ERROR" if i % 97 == 0 else "INFO",
                message=f"{words[rng.randrange(templates)]} request {rng.getrandbits(32)}",
                host=None,
                trace_id=None,
            )
            for i in range(start, min(lines, start + batch))
        ]
        pipeline.process_batch(events, _evidence)
    elapsed = time.perf_counter() - started
    del events
    gc.collect()
    grown = process.memory_info().rss - before
    live = tracemalloc.get_traced_memory()[0] if traced else None
    tracemalloc.stop()
    described = pipeline.describe()["services"]["svc"]
    return {
        "lines": lines,
        "templates": described["templates"],
        "windows": described["windows_seen"],
        "rss_growth_mib": round(grown / 2**20, 1),
        "traced_live_mib": round(live / 2**20, 2) if live is not None else None,
        "model_array_kib": round(pipeline.nbytes() / 2**10, 1),
        "lines_per_s": round(lines / elapsed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-lines", type=int, default=1_000_000)
    parser.add_argument("--memory-templates", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {
        "throughput": throughput(args.lines, args.services, args.batch, args.repeat),
        "memory_one_service": memory(args.memory_lines, args.memory_templates),
        # The pipeline's live Python allocations (tracemalloc slows the run, hence fewer lines;
        # state stops growing once the 500 templates are known).
        "memory_traced": memory(args.memory_lines // 5, args.memory_templates, traced=True),
    }
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for section, values in report.items():
            print(section)
            for key, value in values.items():
                print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
