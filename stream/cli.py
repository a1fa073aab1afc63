"""The ``vigil`` command: parses flags, builds Settings, calls the run functions.

Each command offers as flags the :class:`~stream.settings.Settings` it uses
(``--http-port`` for ``http_port``; :data:`stream.cli_flags.COMMAND_GROUPS`), documented by
the field's description; every setting also comes from ``VIGIL_<NAME>`` and the TOML file.
Bad configuration exits with status 2 and one readable line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from stream.cli_flags import add_settings_flags, config_file, setting_flags
from stream.settings import ConfigError, Settings, load_settings

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(setting_flags(args), config_file(args))


def _build_parser() -> _Parser:
    parser = _Parser(prog="vigil", description="Streaming anomaly and incident-risk detection.")
    parser.add_argument(
        "--version", action="version", version=f"vigil {importlib.metadata.version('vigil')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    detect = commands.add_parser("detect", help="Run the detector service.")
    add_settings_flags(detect, "detect")

    replay = commands.add_parser("replay", help="Replay a JSONL file offline, alerts out.")
    replay.add_argument("file", type=Path, help="JSONL file of events ('-' for stdin).")
    replay.add_argument("--out", type=Path, help="Write Alert JSONL here (default: stdout).")
    add_settings_flags(replay, "replay")

    evaluate = commands.add_parser(
        "evaluate",
        help='Detection quality on a labelled JSONL replay: anomalies (lines with "label"), or '
        "incident risk when the file has IncidentEvent lines.",
    )
    evaluate.add_argument(
        "file",
        type=Path,
        help="JSONL of MetricEvents (labelled lines counted), or MetricEvents and IncidentEvents.",
    )
    evaluate.add_argument(
        "--out-dir",
        type=Path,
        help="Write the figures (timeline.png, pr_curve.png; with incidents also "
        "calibration.png) and the JSON report here.",
    )
    evaluate.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    add_settings_flags(evaluate, "evaluate")

    simulate = commands.add_parser(
        "simulate",
        help="The stand-in log-processor: simulated metric events (with --incidents, also "
        "incident labels and log lines), until stopped or --count.",
    )
    _add_simulation_flags(simulate)
    simulate.add_argument("--labels", type=Path, help="Write injected anomalies as JSONL here.")
    simulate.add_argument(
        "--incidents",
        action="store_true",
        help="Services whose incidents follow precursors (memory creep, latency drift, error "
        "growth, deploys); their IncidentEvents go to the incidents topic, minutes late, and "
        "their log lines to the logs topic.",
    )
    simulate.add_argument(
        "--interval-s", type=float, default=10.0, help="Seconds between a service's samples."
    )
    simulate.add_argument(
        "--log-lines-per-s",
        type=float,
        default=0.5,
        help="With --incidents: log lines per service per second of event time, which keeps "
        "pace with the samples' (0: no logs).",
    )
    simulate.add_argument(
        "--jsonl",
        type=Path,
        help="Write the events to this JSONL file (for vigil replay / evaluate), not to Kafka: "
        "metric samples and, with --incidents, incident labels; no log lines.",
    )
    simulate.add_argument(
        "--start",
        type=_event_time,
        help="Event time of the first sample, RFC 3339 with a timezone (default: the current "
        "minute to Kafka, as a log-processor sends current events; 2026-11-23T00:00Z to "
        "--jsonl, so that files are reproducible).",
    )
    add_settings_flags(simulate, "simulate")

    demo = commands.add_parser(
        "demo",
        help="A local broker, the simulated log-processor, the detector and the sidecar, live.",
    )
    demo.add_argument("--bootstrap", help="Use this Kafka instead of starting a local broker.")
    demo.add_argument("--port", type=int, default=9092, help="Local broker port.")
    demo.add_argument("--duration", type=float, help="Stop after this many seconds.")
    demo.add_argument(
        "--rate",
        type=float,
        default=600.0,
        help="Metric samples per second (0: as fast as possible); with --services and "
        "--interval-s it sets how fast event time runs (default: 1,500 times real time).",
    )
    demo.add_argument("--services", type=int, default=12, help="How many services.")
    demo.add_argument(
        "--interval-s", type=float, default=30.0, help="Event-time seconds between samples."
    )
    demo.add_argument(
        "--log-lines-per-s",
        type=float,
        default=0.5,
        help="Log lines per service per second of event time (0: no logs).",
    )
    demo.add_argument("--sim-seed", type=int, default=7, help="Simulator seed.")
    demo.add_argument(
        "--plain",
        action="store_true",
        help="Plain lines instead of the live view (the default when not on a terminal).",
    )
    demo.add_argument(
        "--run-dir",
        default=".vigil/demo",
        help="Where each run keeps its processes' logs, snapshots and artifacts.",
    )
    add_settings_flags(demo, "demo")

    sidecar = commands.add_parser(
        "sidecar", help="Batch retraining, champion/challenger and drift, next to the detectors."
    )
    sidecar.add_argument(
        "--once",
        action="store_true",
        help="Read the features topic, retrain once, print the decisions and exit.",
    )
    add_settings_flags(sidecar, "sidecar")

    bench = commands.add_parser("bench", help="Measure throughput, latency and memory.")
    _add_bench_flags(bench)
    add_settings_flags(bench, "bench")

    config = commands.add_parser("config", help="Show the effective settings.")
    config_commands = config.add_subparsers(dest="action", required=True, parser_class=_Parser)
    show = config_commands.add_parser(
        "show", help="Each setting's value (secrets masked) and where it came from."
    )
    show.add_argument("--json", action="store_true", help="A JSON array instead of text.")
    add_settings_flags(show, "show")

    broker = commands.add_parser(
        "broker", help="The local development Kafka broker.", add_help=False
    )
    broker.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _add_bench_flags(parser: argparse.ArgumentParser) -> None:
    from stream.dev.bench import SECTIONS, parse_sections, parse_shape

    def sections(text: str) -> list[str]:
        try:
            return parse_sections(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def shape(text: str) -> tuple[int, int]:
        try:
            return parse_shape(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def rates(text: str) -> list[float]:
        try:
            values = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            values = []
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"need positive events/s, comma-separated: {text!r}")
        return values

    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument(
        "--only",
        type=sections,
        default=list(SECTIONS),
        help=f"Sections to run, comma-separated (default: {','.join(SECTIONS)}).",
    )
    parser.add_argument("--repeats", type=int, default=3, help="Runs per rate (median quoted).")
    parser.add_argument(
        "--engine-events", type=int, default=20_000, help="Events per HST-engine-alone run."
    )
    parser.add_argument(
        "--large-shape",
        type=shape,
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
        type=rates,
        default=[2000.0, 10_000.0],
        help="Events/s of each latency run, comma-separated (default: 2000,10000).",
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20.0, help="Length of each latency run."
    )
    parser.add_argument("--skip-kafka", action="store_true", help="Leave out the kafka section.")
    parser.add_argument("--bootstrap", help="Use this Kafka instead of a local broker.")
    parser.add_argument("--quiet", action="store_true", help="No progress lines on stderr.")


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


def _add_simulation_flags(parser: argparse.ArgumentParser) -> None:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vigil`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["broker"]:
        from stream.dev.broker_cli import broker_main

        return broker_main(argv[1:])
    args = _build_parser().parse_args(argv)
    try:
        settings = _settings_from(args)
    except ConfigError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    runners: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "detect": _run_detect,
        "replay": _run_replay,
        "evaluate": _run_evaluate,
        "simulate": _run_simulate,
        "demo": _run_demo,
        "bench": _run_bench,
        "sidecar": _run_sidecar,
        "config": _run_config,
    }
    try:
        return runners[args.command](args, settings)
    except KeyboardInterrupt:
        return 130


def _run_detect(args: argparse.Namespace, settings: Settings) -> int:
    from stream.detector.detector_main import run_detector
    from stream.telemetry import configure_logging

    kafka_logs = configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_detector(settings, kafka_logs=kafka_logs))


def _run_sidecar(args: argparse.Namespace, settings: Settings) -> int:
    from stream.sidecar.main import run_sidecar
    from stream.telemetry import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_sidecar(settings, once=args.once))


def _run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from stream.offline.replay import run_replay

    return run_replay(args.file, args.out, settings)


def _run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from stream.offline.evaluate import run_evaluate
    from stream.offline.evaluate_risk import has_incidents, run_evaluate_risk

    if not args.file.is_file():
        print(f"vigil evaluate: no such file: {args.file}", file=sys.stderr)
        return 2
    with args.file.open("rb") as lines:
        incidents = has_incidents(lines)
    if incidents:
        return run_evaluate_risk(args.file, args.out_dir, args.json, settings)
    return run_evaluate(args.file, args.out_dir, args.json, settings)


def _run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from stream.dev.simulate_run import run_simulate

    return asyncio.run(run_simulate(args, settings))


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from stream.dev.demo import run_demo

    return run_demo(args, settings)


def _run_bench(args: argparse.Namespace, settings: Settings) -> int:
    from stream.dev.bench import run_bench

    return run_bench(args, settings)


def _run_config(args: argparse.Namespace, settings: Settings) -> int:
    from stream.config_show import effective_settings, format_settings

    rows = effective_settings(settings, setting_flags(args), os.environ, config_file(args))
    try:
        print(format_settings(rows, as_json=args.json), flush=True)
    except BrokenPipeError:  # `vigil config show | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
