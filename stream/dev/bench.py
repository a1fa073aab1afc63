"""``vigil bench``: throughput, latency and memory, offline and through a real Kafka broker.

Sections (``--only`` picks some; all by default), each figure measured in this one run:

* ``engine``: the HST engine alone, river per event against numpy micro-batches (of
  ``max_batch``) at the configured shape and at 25 trees of height 15, with the speed-ups; and
  the crossover: numpy's events/s per batch size at the configured shape, and the smallest
  batch at which numpy is at least as fast as river (see :mod:`stream.dev.bench_engine`);
* ``offline``: parse → features → score → learn → decide through the replay path, for
  ``engine=river`` and ``engine=numpy`` on the same events, runs interleaved, with the ratio;
* ``memory``: a fresh process replays ``--memory-services`` services, each past its first HST
  window and its warm-up; RSS growth in total and per 1,000 services, and the bytes of the
  models' arrays (allocated; RSS counts only the pages touched so far);
* ``kafka``: through a real broker (a local one unless ``--bootstrap``): throughput of one
  detector over a pre-loaded topic, then event→alert latency (p50/p99/max and the rate
  achieved) at each of ``--latency-rates`` events/s; see :mod:`stream.dev.bench_kafka`, which also
  explains why latency stays low at low rates (the detector never waits for a full batch).

Medians of ``--repeats`` runs are quoted; ratios are taken between rates measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import orjson

from models.anomaly import AnomalyConfig
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import risk_pipeline
from stream.dev.bench_engine import CROSSOVER_BATCH_SIZES, EngineRun, measure_engines
from stream.dev.bench_kafka import LatencyRun, kafka_latency, kafka_log_throughput, kafka_throughput
from stream.dev.bench_snapshot import measure_snapshots
from stream.dev.broker import BrokerError, LocalBroker, free_port
from stream.dev.simulate import MetricSimulator, payloads_by_block
from stream.kafka.kafka_options import PLAINTEXT_SETTINGS
from stream.offline.replay import replay
from stream.settings import Settings
from stream.telemetry import configure_logging

__all__ = [
    "SECTIONS",
    "Figure",
    "MemoryFootprint",
    "memory_footprint",
    "offline_rates",
    "run_bench",
]

SECTIONS = ("engine", "offline", "memory", "snapshot", "kafka")
Progress = Callable[[str], None]
"""Told a line of text as each measurement starts (on stderr unless ``--quiet``)."""
_MIB = 2**20


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure.

    Attributes:
        key: Stable name in the JSON output, e.g. ``engine_speedup_10x8``.
        label: What the table shows.
        value: The figure (None when there is nothing to report, e.g. no crossover).
        unit: Its unit.
        note: How it was measured, or the target it is held against.
        section: The section it belongs to.
    """

    key: str
    label: str
    value: float | None
    unit: str
    note: str = ""
    section: str = ""


# -- offline ---------------------------------------------------------------------------------


def _replay_rate(payloads: Sequence[bytes], settings: Settings, *, risk: bool = False) -> float:
    pipeline = MetricPipeline(settings.anomaly_config())
    risk_path = risk_pipeline(settings) if risk else None
    started = time.perf_counter()
    for alert in replay(payloads, pipeline, batch_size=settings.max_batch, risk=risk_path):
        del alert
    return len(payloads) / (time.perf_counter() - started)


def hst_settings(settings: Settings) -> Settings:
    """``settings`` with a detector that runs the HST engine (``hst`` unless it already does)."""
    if settings.detector in ("hst", "ensemble"):
        return settings
    return settings.model_copy(update={"detector": "hst"})


def offline_rates(settings: Settings, events: int, repeats: int = 3) -> dict[str, list[float]]:
    """Events/s of the replay path on the same events, runs interleaved.

    Returns:
        Rates by run: ``river`` and ``numpy`` (the engines, under a detector that uses them:
        see :func:`hst_settings`), the :data:`_RISK_RUNS` (numpy, with and without incident
        risk, on sparse and dense series) and, when the configured detector does not use HST,
        ``configured`` (the settings as given). Only the ``*_risk`` runs run incident risk.
    """
    payloads = [e.to_bytes() for e in MetricSimulator(services=5, seed=11).events(events)]
    # The same services sampled every second: 60 events per service per risk step, as when a
    # service's hosts each report every 10 s, or when it runs in real time at a busy rate.
    dense = [
        e.to_bytes()
        for e in MetricSimulator(services=5, seed=11, interval_s=1.0, clean_start=6000).events(
            events
        )
    ]
    with_hst = hst_settings(settings)
    runs = {engine: with_hst.model_copy(update={"engine": engine}) for engine in ("river", "numpy")}
    if with_hst is not settings:
        runs["configured"] = settings
    rates: dict[str, list[float]] = {name: [] for name in [*runs, *_RISK_RUNS]}
    for _ in range(repeats):
        for name, run_settings in runs.items():
            rates[name].append(_replay_rate(payloads, run_settings))
        for name, (data, risk) in _RISK_RUNS.items():
            rates[name].append(
                _replay_rate(payloads if data == "sparse" else dense, runs["numpy"], risk=risk)
            )
    return rates


_RISK_RUNS = {
    "numpy_risk": ("sparse", True),
    "numpy_dense": ("dense", False),
    "numpy_dense_risk": ("dense", True),
}
"""Incident-risk runs (numpy engine): data (an event per service every 10 s or every 1 s)
and whether incident risk is on."""


# -- memory ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryFootprint:
    """What holding ``services`` service models costs one process.

    Attributes:
        services: Service models held at the end.
        events_per_service: Events each service learnt.
        rss_before: Resident bytes before the pipeline was created (imports done).
        rss_after: Resident bytes after the replay, garbage collected.
        array_bytes: Bytes of the models' arrays (``MetricPipeline.nbytes``).
    """

    services: int
    events_per_service: int
    rss_before: int
    rss_after: int
    array_bytes: int

    @property
    def rss_growth(self) -> int:
        """Resident bytes the models added."""
        return self.rss_after - self.rss_before


def memory_footprint(
    config: AnomalyConfig, services: int, events_per_service: int, batch_size: int
) -> MemoryFootprint:
    """Replay ``events_per_service`` events for each of ``services`` services; measure RSS.

    Run it in a fresh process (see ``_memory_in_subprocess``) so that neither earlier
    measurements' garbage nor their freed memory blurs the growth.
    """
    import psutil

    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    pipeline = MetricPipeline(config)
    lines = payloads_by_block(services, events_per_service)
    for alert in replay(lines, pipeline, batch_size=batch_size):
        del alert
    gc.collect()
    if len(pipeline) != services:
        raise RuntimeError(f"expected {services} service models, got {len(pipeline)}")
    return MemoryFootprint(
        services=services,
        events_per_service=events_per_service,
        rss_before=before,
        rss_after=process.memory_info().rss,
        array_bytes=pipeline.nbytes(),
    )


def _memory_in_subprocess(
    config: AnomalyConfig, services: int, events_per_service: int, batch_size: int
) -> MemoryFootprint:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        job = pool.submit(memory_footprint, config, services, events_per_service, batch_size)
        return job.result()


# -- figures ---------------------------------------------------------------------------------


def _shape_name(n_trees: int, height: int) -> str:
    return f"{n_trees}x{height}"


def _engine_pair_figures(run: EngineRun, batch: int, target: str) -> list[Figure]:
    name = _shape_name(run.n_trees, run.height)
    shape = f"{run.n_trees} trees, height {run.height}"
    return [
        Figure(
            f"engine_river_{name}",
            f"HST alone, river per event ({name})",
            run.river_per_s,
            "events/s",
            f"{shape}; {run.river_events} events",
        ),
        Figure(
            f"engine_numpy_{name}",
            f"HST alone, numpy ({name})",
            run.numpy_per_s[batch],
            "events/s",
            f"{shape}; batches of {batch}, {run.numpy_events} events",
        ),
        Figure(
            f"engine_speedup_{name}",
            f"HST alone, numpy/river ({name})",
            run.speedup(batch),
            "x",
            f"target ≥ {target}",
        ),
    ]


def _crossover_figures(run: EngineRun, batch_sizes: Sequence[int]) -> list[Figure]:
    name = _shape_name(run.n_trees, run.height)
    figures = [
        Figure(
            f"crossover_numpy_batch_{b}",
            f"numpy, batches of {b} ({name})",
            run.numpy_per_s[b],
            "events/s",
            f"{run.speedup(b):.2f}x river",
        )
        for b in batch_sizes
    ]
    figures.append(
        Figure(
            "crossover_batch_size",
            f"crossover batch size ({name})",
            run.crossover,
            "events",
            f"smallest batch with numpy ≥ river ({run.river_per_s:,.0f} events/s)",
        )
    )
    return figures


def engine_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """HST alone, river vs numpy at the configured and the large shape, and the crossover."""
    batch = settings.max_batch
    crossover_sizes = [b for b in CROSSOVER_BATCH_SIZES if b <= args.engine_events]
    measure = functools.partial(
        measure_engines, events=args.engine_events, repeats=args.repeats, progress=say
    )
    default = measure(
        n_trees=settings.hst_trees,
        height=settings.hst_height,
        batch_sizes=sorted({*crossover_sizes, batch}),
        river_events=args.engine_events,
    )
    figures = _engine_pair_figures(default, batch, "15x at 10 trees, height 8")
    if (settings.hst_trees, settings.hst_height) != args.large_shape:
        large = measure(
            n_trees=args.large_shape[0],
            height=args.large_shape[1],
            batch_sizes=[batch],
            river_events=min(args.engine_events, args.river_large_events),
        )
        figures += _engine_pair_figures(large, batch, "80x at 25 trees, height 15")
    return figures + _crossover_figures(default, crossover_sizes)


def offline_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """The replay path for both engines on the same events, and the ratio."""
    say(f"offline: {args.events} events x {args.repeats} per run")
    rates = {
        name: statistics.median(runs)
        for name, runs in offline_rates(settings, args.events, args.repeats).items()
    }
    detector = hst_settings(settings).detector
    note = f"{args.events} events, 5 services, batches of {settings.max_batch}"
    sparse = settings.incident_step_s / 10.0  # events per risk vector, an event every 10 s
    figures = [
        Figure(
            "offline_river",
            "offline parse→decide, river",
            rates["river"],
            "events/s",
            f"{note}; detector={detector}",
        ),
        Figure(
            "offline_numpy",
            "offline parse→decide, numpy",
            rates["numpy"],
            "events/s",
            f"{note}; detector={detector}; target ≥ 200,000",
        ),
        Figure(
            "offline_speedup",
            "offline, numpy/river",
            rates["numpy"] / rates["river"],
            "x",
            "same events",
        ),
        Figure(
            "offline_numpy_risk",
            "offline + incident risk, sparse",
            rates["numpy_risk"],
            "events/s",
            f"{note}; an event per service every 10 s: a risk vector per {sparse:g} events",
        ),
        Figure(
            "offline_risk_cost",
            "incident risk's cost, sparse",
            100.0 * (1.0 - rates["numpy_risk"] / rates["numpy"]),
            "% slower",
            "target < 30%",
        ),
        Figure(
            "offline_dense_risk_cost",
            "incident risk's cost, dense",
            100.0 * (1.0 - rates["numpy_dense_risk"] / rates["numpy_dense"]),
            "% slower",
            f"an event per service every second: a risk vector per {10 * sparse:g} events "
            f"({rates['numpy_dense']:,.0f} → {rates['numpy_dense_risk']:,.0f} events/s); "
            "target < 30%",
        ),
        Figure(
            "offline_risk_us_per_vector",
            "incident risk, per vector",
            1e6 * (1.0 / rates["numpy_risk"] - 1.0 / rates["numpy"]) * sparse,
            "µs",
            f"sparse run: extra time per event × {sparse:g} events per vector",
        ),
    ]
    if "configured" in rates:
        figures.append(
            Figure(
                "offline_configured",
                f"offline parse→decide, {settings.detector}",
                rates["configured"],
                "events/s",
                f"{note}; the configured detector (no HST engine)",
            )
        )
    return figures


def memory_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """RSS growth and model arrays for ``--memory-services`` services, in a fresh process."""
    config = settings.anomaly_config()
    per_service = args.memory_events or max(config.window_size, config.warmup_events) + 50
    say(f"memory: {args.memory_services} services x {per_service} events")
    m = _memory_in_subprocess(config, args.memory_services, per_service, settings.max_batch)
    per_1000 = 1000 / m.services / _MIB
    note = f"{m.services} services, {m.events_per_service} events each"
    return [
        Figure("memory_rss_total", "RSS growth, total", m.rss_growth / _MIB, "MiB", note),
        Figure(
            "memory_rss_process",
            "process RSS at the end",
            m.rss_after / _MIB,
            "MiB",
            "target ≤ 3 GB at 10,000 services",
        ),
        Figure(
            "memory_rss_per_1000",
            "RSS growth per 1,000 services",
            m.rss_growth * per_1000,
            "MiB",
            note,
        ),
        Figure(
            "memory_arrays_total",
            "model arrays, total",
            m.array_bytes / _MIB,
            "MiB",
            "scaler, HST, threshold (allocated; RSS counts touched pages)",
        ),
        Figure(
            "memory_arrays_per_1000",
            "model arrays per 1,000 services",
            m.array_bytes * per_1000,
            "MiB",
            note,
        ),
    ]


def snapshot_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """Snapshot size, write and restore times at ``--snapshot-services``; throughput cost."""
    run = measure_snapshots(settings, args.snapshot_services, args.snapshot_every_s, say)
    note = f"one partition holding {run.services} services ({run.events_per_service} events each)"
    return [
        Figure("snapshot_bytes", "snapshot size", run.bytes / _MIB, "MiB", note),
        Figure(
            "snapshot_kib_per_service",
            "snapshot size per service",
            run.bytes / 1024 / run.services,
            "KiB",
            note,
        ),
        Figure(
            "snapshot_encode_s",
            "snapshot capture (the loop's pause)",
            run.encode_s,
            "s",
            "median of 3",
        ),
        Figure(
            "snapshot_write_s",
            "snapshot capture + serialize + write + fsync",
            run.write_s,
            "s",
            "median of 3",
        ),
        Figure(
            "snapshot_restore_s",
            "restore: read, check, decode, install",
            run.restore_s,
            "s",
            "median of 3",
        ),
        Figure(
            "snapshot_throughput_loss",
            "throughput loss while snapshotting",
            run.loss,
            "%",
            f"{run.plain_rate:,.0f} → {run.snapshotting_rate:,.0f} events/s, medians of 3; "
            f"a sixth of the services snapshotted every {run.every_s:g} s "
            f"({run.snapshots_taken} snapshots); target < 10%",
        ),
    ]


async def kafka_figures(
    args: argparse.Namespace, settings: Settings, say: Progress
) -> list[Figure]:
    """Throughput over a pre-loaded topic, then latency at each rate (a local broker if none)."""
    broker: LocalBroker | None = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        say("kafka: starting a local broker")
        broker = LocalBroker(port=free_port())
        bootstrap = await asyncio.to_thread(broker.start, owned=True)
    update: dict[str, object] = {"bootstrap_servers": bootstrap}
    if broker is not None:
        update.update(PLAINTEXT_SETTINGS)  # the local broker speaks PLAINTEXT
    settings = settings.model_copy(update=update)
    try:
        # Interleaved pairs, medians quoted: on this shared machine one pair's ratio can be
        # off by ±15 points.
        with_risk, without_risk = [], []
        for i in range(args.kafka_pairs):
            say(f"kafka: throughput over {args.kafka_events} events, pair {i + 1}, risk on")
            with_risk.append(await kafka_throughput(settings, args.kafka_events))
            say(f"kafka: throughput over {args.kafka_events} events, pair {i + 1}, risk off")
            without_risk.append(
                await kafka_throughput(
                    settings.model_copy(update={"incident_risk": False}), args.kafka_events
                )
            )
        throughput = statistics.median(with_risk)
        anomaly_only = statistics.median(without_risk)
        pair_costs = sorted(
            100.0 * (1.0 - on / off) for on, off in zip(with_risk, without_risk, strict=True)
        )
        say(f"kafka: log throughput over {args.kafka_events} log lines")
        log_throughput = await kafka_log_throughput(settings, args.kafka_events)
        runs = []
        for rate in args.latency_rates:
            say(f"kafka: latency at {rate:g} events/s for {args.latency_seconds:g} s")
            runs.append(await kafka_latency(settings, rate, args.latency_seconds))
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    figures = [
        Figure(
            "kafka_throughput",
            "kafka end-to-end",
            throughput,
            "events/s",
            f"{args.kafka_events} pre-loaded events of 20 services (one per service every "
            f"10 s of event time), one detector, incident risk "
            f"{'on' if settings.incident_risk else 'off'}; median of {len(with_risk)}; "
            "target ≥ 50,000",
        ),
        Figure(
            "kafka_throughput_anomaly_only",
            "kafka end-to-end, incident risk off",
            anomaly_only,
            "events/s",
            f"the same events: anomaly scoring alone; median of {len(without_risk)}",
        ),
        Figure(
            "kafka_risk_cost",
            "incident risk's cost through Kafka",
            100.0 * (1.0 - throughput / anomaly_only),
            "% slower",
            f"medians' ratio; pairs {' / '.join(f'{c:.0f}' for c in pair_costs)} %; "
            f"a risk vector per {settings.incident_step_s / 10.0:g} events; target < 30%",
        ),
        Figure(
            "kafka_log_throughput",
            "kafka log lines end-to-end",
            log_throughput,
            "lines/s",
            f"{args.kafka_events} pre-loaded LogEvents of 20 services: templates, windows, alerts",
        ),
    ]
    for run in runs:
        figures += _latency_figures(run, args.latency_seconds)
    return figures


def _latency_figures(run: LatencyRun, seconds: float) -> list[Figure]:
    rate = f"{run.rate:g}"
    note = f"{len(run.latencies_ms)} alerts over {seconds:g} s"
    target = "; target < 50 ms at 10,000 events/s" if run.rate == 10_000 else ""
    broker_note = "broker clock: event appended → alert appended"
    return [
        Figure(
            f"latency_{rate}_achieved_rate",
            f"achieved rate (asked {rate}/s)",
            run.achieved_rate,
            "events/s",
            f"{run.produced} events produced, {run.detector.get('scored', 0):.0f} scored",
        ),
        Figure(
            f"latency_{rate}_mean_batch",
            f"detector mean batch @ {rate}/s",
            run.mean_batch,
            "events",
            "records per fetch (from its /metrics)",
        ),
        Figure(
            f"latency_{rate}_p50", f"event→alert p50 @ {rate}/s", run.percentile(50), "ms", note
        ),
        Figure(
            f"latency_{rate}_p99",
            f"event→alert p99 @ {rate}/s",
            run.percentile(99),
            "ms",
            note + target,
        ),
        Figure(f"latency_{rate}_max", f"event→alert max @ {rate}/s", max(run.latencies_ms), "ms"),
        Figure(
            f"latency_{rate}_broker_p50",
            f"event→alert p50 @ {rate}/s, broker",
            run.percentile(50, broker=True),
            "ms",
            broker_note,
        ),
        Figure(
            f"latency_{rate}_broker_p99",
            f"event→alert p99 @ {rate}/s, broker",
            run.percentile(99, broker=True),
            "ms",
            broker_note + target,
        ),
        Figure(
            f"latency_{rate}_broker_max",
            f"event→alert max @ {rate}/s, broker",
            max(run.broker_latencies_ms, default=float("nan")),
            "ms",
        ),
    ]


# -- output ----------------------------------------------------------------------------------


def _report(figures: Iterable[Figure], sections: Sequence[str], settings: Settings) -> bytes:
    import importlib.metadata

    report = {
        "benchmark": "vigil bench",
        "sections": list(sections),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "river": importlib.metadata.version("river"),
        },
        "settings": settings.model_dump(
            include={
                "detector",
                "engine",
                "hst_trees",
                "hst_height",
                "hst_window",
                "max_batch",
                "batch_wait_s",
            }
        ),
        "figures": {
            f.key: {
                "label": f.label,
                "value": f.value,
                "unit": f.unit,
                "note": f.note,
                "section": f.section,
            }
            for f in figures
        },
    }
    return orjson.dumps(report, option=orjson.OPT_INDENT_2)


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as one plain-text table, a header per section."""
    width = max(len(f.label) for f in figures)
    lines: list[str] = []
    for i, f in enumerate(figures):
        if i == 0 or f.section != figures[i - 1].section:
            lines += [""] if lines else []
            lines.append(f"[{f.section}]")
        value = _format_value(f.value)
        lines.append(f"  {f.label:<{width}}  {value:>12} {f.unit:<9} {f.note}")
    return "\n".join(lines)


def _format_value(value: float | None) -> str:
    """A figure for the table: whole numbers and large ones without decimals.

    Examples:
        >>> _format_value(None), _format_value(5.0), _format_value(1234.56), _format_value(2.345)
        ('—', '5', '1,235', '2.35')
    """
    if value is None:
        return "—"
    if value == int(value) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def parse_shape(text: str) -> tuple[int, int]:
    """``TREESxHEIGHT`` as ``(n_trees, height)``.

    Examples:
        >>> parse_shape("25x15")
        (25, 15)
    """
    trees, sep, height = text.lower().partition("x")
    if not sep or not trees.isdigit() or not height.isdigit() or int(trees) < 1:
        raise ValueError(f"a shape is TREESxHEIGHT, e.g. 25x15; got {text!r}")
    return int(trees), int(height)


def parse_sections(text: str) -> list[str]:
    """Section names from ``--only`` (comma-separated), in their canonical order.

    Examples:
        >>> parse_sections("kafka,engine")
        ['engine', 'kafka']
    """
    wanted = {part.strip() for part in text.split(",") if part.strip()}
    unknown = wanted - set(SECTIONS)
    if unknown or not wanted:
        raise ValueError(f"sections are {', '.join(SECTIONS)}; got {text!r}")
    return [s for s in SECTIONS if s in wanted]


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen sections; print one table (or JSON with ``--json``)."""
    configure_logging("WARNING", "json")
    sections = list(args.only)
    if args.skip_kafka and "kafka" in sections:
        sections.remove("kafka")
    say = _progress_printer(args.quiet)
    runners: dict[str, Callable[[argparse.Namespace, Settings, Progress], list[Figure]]] = {
        "engine": engine_figures,
        "offline": offline_figures,
        "memory": memory_figures,
        "snapshot": snapshot_figures,
        "kafka": lambda a, s, p: asyncio.run(kafka_figures(a, s, p)),
    }
    figures: list[Figure] = []
    for section in sections:
        try:
            measured = runners[section](args, settings, say)
        except BrokerError as exc:
            print(f"vigil bench: {exc}", file=sys.stderr)
            return exc.exit_code
        figures += [_in_section(f, section) for f in measured]
    if args.json:
        print(_report(figures, sections, settings).decode())
    elif figures:
        print(format_table(figures))
    return 0


def _in_section(figure: Figure, section: str) -> Figure:
    return Figure(figure.key, figure.label, figure.value, figure.unit, figure.note, section)


def _progress_printer(quiet: bool) -> Progress:
    def say(line: str) -> None:
        if not quiet:
            print(f"vigil bench: {line}", file=sys.stderr, flush=True)

    return say
