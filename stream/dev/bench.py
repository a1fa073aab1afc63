"""``vigil bench``: throughput, latency and memory, offline and through a real Kafka broker.

Sections (``--only`` picks some; all by default), each figure measured in this one run:

* ``engine``: the HST engine alone, river per event against numpy micro-batches (of
  ``max_batch``) at the configured shape and at 25 trees of height 15, with the speed-ups; and
  the crossover: numpy's events/s per batch size at the configured shape, and the smallest
  batch at which numpy is at least as fast as river (see :mod:`stream.dev.bench_engine`);
* ``offline``: parse → features → score → learn → decide through the replay path, for
  ``engine=river`` and ``engine=numpy`` on the same events, runs interleaved, with the ratio
  (see :mod:`stream.dev.bench_offline`);
* ``memory``: a fresh process replays ``--memory-services`` services, each past its first HST
  window and its warm-up; RSS growth in total and per 1,000 services, and the bytes of the
  models' arrays (allocated; RSS counts only the pages touched so far; see
  :mod:`stream.dev.bench_memory`);
* ``kafka``: through a real broker (a local one unless ``--bootstrap``): throughput of one
  detector over a pre-loaded topic, then event→alert latency (p50/p99/max and the rate
  achieved) at each of ``--latency-rates`` events/s; see :mod:`stream.dev.bench_kafka`, which also
  explains why latency stays low at low rates (the detector never waits for a full batch), and
  :mod:`stream.dev.bench_kafka_figures`.

Medians of ``--repeats`` runs are quoted; ratios are taken between rates measured in this run.
The figures are shown as :mod:`stream.dev.bench_figures` formats them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable, Sequence

from stream.dev.bench_engine import CROSSOVER_BATCH_SIZES, EngineRun, measure_engines
from stream.dev.bench_figures import MIB, Figure, Progress, format_table, in_section, json_report
from stream.dev.bench_kafka_figures import kafka_figures
from stream.dev.bench_memory import memory_figures
from stream.dev.bench_offline import offline_figures
from stream.dev.bench_snapshot import measure_snapshots
from stream.dev.broker import BrokerError
from stream.settings import Settings
from stream.telemetry import configure_logging

__all__ = [
    "SECTIONS",
    "engine_figures",
    "parse_sections",
    "parse_shape",
    "run_bench",
    "snapshot_figures",
]

SECTIONS = ("engine", "offline", "memory", "snapshot", "kafka")


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


def snapshot_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """Snapshot size, write and restore times at ``--snapshot-services``; throughput cost."""
    run = measure_snapshots(settings, args.snapshot_services, args.snapshot_every_s, say)
    note = f"one partition holding {run.services} services ({run.events_per_service} events each)"
    return [
        Figure("snapshot_bytes", "snapshot size", run.bytes / MIB, "MiB", note),
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
        figures += [in_section(f, section) for f in measured]
    if args.json:
        print(json_report(figures, sections, settings).decode())
    elif figures:
        print(format_table(figures))
    return 0


def _progress_printer(quiet: bool) -> Progress:
    def say(line: str) -> None:
        if not quiet:
            print(f"vigil bench: {line}", file=sys.stderr, flush=True)

    return say
