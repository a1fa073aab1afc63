"""Each ``vigil`` command's own flags and arguments.

The settings flags every command also offers are :mod:`stream.cli_flags`'; :mod:`stream.cli`
builds the parser from both. The bench's flags need its section names: they are imported
from ``stream/dev`` inside the functions, when the parser is built.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["add_command_flags"]


def add_command_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags and arguments of ``command`` itself (``show`` for ``vigil config show``)."""
    _FLAGS[command](parser)


def _detect(parser: argparse.ArgumentParser) -> None:
    """``vigil detect`` has settings flags only."""


def _correlate(parser: argparse.ArgumentParser) -> None:
    """``vigil correlate`` has settings flags only."""


def _replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="JSONL file of events ('-' for stdin).")
    parser.add_argument("--out", type=Path, help="Write Alert JSONL here (default: stdout).")


def _evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="JSONL of MetricEvents (labelled lines counted), or MetricEvents and IncidentEvents "
        "(not with --problems).",
    )
    problems = parser.add_argument_group(
        "problems",
        "--problems: a fault scenario on a 15-service mesh through Kafka (detector, vigil "
        "correlate, maintenance windows as silences), problems scored against the faults",
    )
    problems.add_argument(
        "--problems", action="store_true", help="Evaluate problems and root causes."
    )
    problems.add_argument("--days", type=float, default=10.0, help="Days of events.")
    problems.add_argument(
        "--quiet-days", type=float, default=3.0, help="Days before the first fault (warm-up)."
    )
    problems.add_argument("--faults-per-day", type=float, default=2.0, help="Faults a day.")
    problems.add_argument(
        "--seeds", type=_seeds, default=[1, 2, 3], help="Scenario seeds, comma-separated."
    )
    problems.add_argument(
        "--log-lines-per-s",
        type=float,
        default=0.1,
        help="Log lines per service per second of event time (faults show in logs too; 0: "
        "metrics only).",
    )
    problems.add_argument("--bootstrap", help="Use this Kafka instead of a local broker.")
    parser.add_argument(
        "--out-dir",
        type=Path,
        help="Write the figures (timeline.png, pr_curve.png; with incidents also "
        "calibration.png) and the JSON report here.",
    )
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"need integers, comma-separated: {text!r}") from None


def _simulate(parser: argparse.ArgumentParser) -> None:
    _simulation(parser)
    parser.add_argument("--labels", type=Path, help="Write injected anomalies as JSONL here.")
    parser.add_argument(
        "--incidents",
        action="store_true",
        help="Services whose incidents follow precursors (memory creep, latency drift, error "
        "growth, deploys); their IncidentEvents go to the incidents topic, minutes late, and "
        "their log lines to the logs topic.",
    )
    parser.add_argument(
        "--interval-s", type=float, default=10.0, help="Seconds between a service's samples."
    )
    parser.add_argument(
        "--log-lines-per-s",
        type=float,
        default=0.5,
        help="With --incidents: log lines per service per second of event time, which keeps "
        "pace with the samples' (0: no logs).",
    )
    parser.add_argument(
        "--jsonl",
        type=Path,
        help="Write the events to this JSONL file (for vigil replay / evaluate), not to Kafka: "
        "metric samples and, with --incidents, incident labels; no log lines.",
    )
    parser.add_argument(
        "--start",
        type=_event_time,
        help="Event time of the first sample, RFC 3339 with a timezone (default: the current "
        "minute to Kafka, as a log-processor sends current events; 2026-11-23T00:00Z to "
        "--jsonl, so that files are reproducible).",
    )


def _simulation(parser: argparse.ArgumentParser) -> None:
    """What the simulator makes: how fast, how many events and services, how anomalous."""
    parser.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="Events per second (0: as fast as possible).",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="How many metric events (0 or omitted: until stopped; --jsonl: 20,000).",
    )
    parser.add_argument("--services", type=int, default=5, help="How many services.")
    parser.add_argument(
        "--anomaly-rate",
        type=float,
        default=0.005,
        help="Share of events with an injected anomaly.",
    )
    parser.add_argument("--sim-seed", type=int, default=7, help="Simulator seed.")


def _event_time(text: str) -> datetime:
    """An RFC 3339 time with a timezone, for ``--start``.

    Examples:
        >>> _event_time("2026-11-23T00:00:00Z").isoformat()
        '2026-11-23T00:00:00+00:00'
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a timezone (e.g. a trailing Z)")
    return value.astimezone(UTC)


def _demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Use this Kafka instead of starting a local broker.")
    parser.add_argument("--port", type=int, default=9092, help="Local broker port.")
    parser.add_argument("--duration", type=float, help="Stop after this many seconds.")
    parser.add_argument(
        "--rate",
        type=float,
        default=600.0,
        help="Metric samples per second (0: as fast as possible); with --services and "
        "--interval-s it sets how fast event time runs (default: 1,500 times real time).",
    )
    parser.add_argument("--services", type=int, default=12, help="How many services.")
    parser.add_argument(
        "--interval-s", type=float, default=30.0, help="Event-time seconds between samples."
    )
    parser.add_argument(
        "--log-lines-per-s",
        type=float,
        default=0.5,
        help="Log lines per service per second of event time (0: no logs).",
    )
    parser.add_argument("--sim-seed", type=int, default=7, help="Simulator seed.")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="Plain lines instead of the live view (the default when not on a terminal).",
    )
    parser.add_argument(
        "--run-dir",
        default=".vigil/demo",
        help="Where each run keeps its processes' logs, snapshots and artifacts.",
    )


def _silence_add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service",
        required=True,
        metavar="PATTERN",
        help="Services it covers, shell-style: db, payments-*, * (see docs/silences.md for "
        "which problems a pattern covers).",
    )
    parser.add_argument(
        "--metric", metavar="PATTERN", help="Only problems with a matching metric (default: any)."
    )
    parser.add_argument(
        "--for",
        dest="for_s",
        required=True,
        type=_duration,
        metavar="DURATION",
        help="How long it lasts: 90s, 30m, 2h, 1d, 1h30m.",
    )
    parser.add_argument(
        "--starts-at",
        type=_event_time,
        metavar="TIME",
        help="When it starts, RFC 3339 with a timezone (default: now).",
    )
    parser.add_argument(
        "--reason", required=True, help="Why: shown with every problem it silences."
    )
    parser.add_argument("--by", metavar="WHO", help="Who asked for it (default: the user name).")


def _silence_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all", action="store_true", help="Expired and future silences too (default: in force)."
    )
    parser.add_argument("--json", action="store_true", help="A JSON array instead of a table.")


def _silence_remove(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("silence_id", metavar="ID", help="The silence to end (a tombstone).")


def _duration(text: str) -> float:
    """``--for``: a duration such as 90s, 30m, 2h, 1d."""
    from stream.core.problems.windows import parse_duration_s

    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sidecar(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="Read the features topic, retrain once, print the decisions and exit.",
    )


def _notify(parser: argparse.ArgumentParser) -> None:
    """``vigil notify`` has settings flags only (``--notify-*``, ``--alertmanager-url``)."""


def _show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="A JSON array instead of text.")


def _bench(parser: argparse.ArgumentParser) -> None:
    """What the bench runs and how it reports (the sizes of its runs: :func:`_bench_sizes`)."""
    from stream.dev.bench import SECTIONS

    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument(
        "--only",
        type=_sections,
        default=list(SECTIONS),
        help=f"Sections to run, comma-separated (default: {','.join(SECTIONS)}).",
    )
    parser.add_argument("--repeats", type=int, default=3, help="Runs per rate (median quoted).")
    _bench_sizes(parser)
    parser.add_argument("--skip-kafka", action="store_true", help="Leave out the kafka section.")
    parser.add_argument("--bootstrap", help="Use this Kafka instead of a local broker.")
    parser.add_argument("--quiet", action="store_true", help="No progress lines on stderr.")


def _bench_sizes(parser: argparse.ArgumentParser) -> None:
    """How big each bench section's runs are: events, services, shapes, rates."""
    parser.add_argument(
        "--engine-events", type=int, default=20_000, help="Events per HST-engine-alone run."
    )
    parser.add_argument(
        "--large-shape",
        type=_shape,
        default=(25, 15),
        help="The second HST shape of the engine section, TREESxHEIGHT (default: 25x15).",
    )
    parser.add_argument(
        "--river-large-events",
        type=int,
        default=3_000,
        help="Events per river run at the large shape (river does ~1,000 events/s at 25x15).",
    )
    parser.add_argument(
        "--events", type=int, default=100_000, help="Events per offline run, per engine."
    )
    parser.add_argument(
        "--memory-services", type=int, default=1000, help="Services for the memory figures."
    )
    parser.add_argument(
        "--memory-events",
        type=int,
        help="Events per service for the memory figures (default: past warm-up and one window).",
    )
    parser.add_argument(
        "--snapshot-services",
        type=int,
        default=1000,
        help="Services in the snapshot figures' partition (default: 1000).",
    )
    parser.add_argument(
        "--snapshot-every-s",
        type=float,
        default=1.0,
        help="Seconds between snapshots in the snapshot section's throughput run (default: 1).",
    )
    parser.add_argument(
        "--kafka-events", type=int, default=100_000, help="Events for the Kafka throughput run."
    )
    parser.add_argument(
        "--kafka-pairs",
        type=int,
        default=5,
        help="Kafka throughput runs with and without incident risk, interleaved (median).",
    )
    parser.add_argument(
        "--latency-rates",
        type=_rates,
        default=[2000.0, 10_000.0],
        help="Events/s of each latency run, comma-separated (default: 2000,10000).",
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20.0, help="Length of each latency run."
    )


def _sections(text: str) -> list[str]:
    """``--only``: bench section names, comma-separated."""
    from stream.dev.bench import parse_sections

    try:
        return parse_sections(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shape(text: str) -> tuple[int, int]:
    """``--large-shape``: TREESxHEIGHT."""
    from stream.dev.bench import parse_shape

    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rates(text: str) -> list[float]:
    """``--latency-rates``: positive events/s, comma-separated."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"need positive events/s, comma-separated: {text!r}")
    return values


_FLAGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "detect": _detect,
    "replay": _replay,
    "evaluate": _evaluate,
    "simulate": _simulate,
    "demo": _demo,
    "sidecar": _sidecar,
    "notify": _notify,
    "correlate": _correlate,
    "bench": _bench,
    "show": _show,
    "silence_add": _silence_add,
    "silence_list": _silence_list,
    "silence_remove": _silence_remove,
}
"""Each command's own flags, by command (``show``: ``vigil config show``; ``silence_add``:
``vigil silence add``)."""
