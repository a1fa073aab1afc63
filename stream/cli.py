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
from pathlib import Path
from typing import NoReturn

from stream.cli_flags import add_settings_flags, config_file, setting_flags
from stream.command_flags import add_command_flags
from stream.settings import ConfigError, Settings, load_settings

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(setting_flags(args), config_file(args))


_COMMANDS = {
    "detect": "Run the detector service.",
    "replay": "Replay a JSONL file offline, alerts out.",
    "evaluate": 'Detection quality on a labelled JSONL replay: anomalies (lines with "label"), or '
    "incident risk when the file has IncidentEvent lines.",
    "simulate": "The stand-in log-processor: simulated metric events (with --incidents, also "
    "incident labels and log lines), until stopped or --count.",
    "demo": "A local broker, the simulated log-processor, the detector and the sidecar, live.",
    "sidecar": "Batch retraining, champion/challenger and drift, next to the detectors.",
    "notify": "Deliver problems (and, by choice, alerts) to Alertmanager, a signed webhook, "
    "PagerDuty and Slack.",
    "correlate": "Alerts into problems: grouped by service, dependency and labels, with "
    "root-cause suspects.",
    "bench": "Measure throughput, latency and memory.",
}
"""The commands that run something, in the order ``vigil --help`` lists them, with their help
(``config`` and ``broker`` follow)."""


_SILENCE_ACTIONS = {
    "add": "Add a silence; prints its id.",
    "list": "The silences and maintenance windows in force.",
    "remove": "End a silence (publishes a tombstone).",
}


def _build_parser() -> _Parser:
    parser = _Parser(prog="vigil", description="Streaming anomaly and incident-risk detection.")
    parser.add_argument(
        "--version", action="version", version=f"vigil {importlib.metadata.version('vigil')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in _COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        add_command_flags(command, name)
        add_settings_flags(command, name)

    config = commands.add_parser("config", help="Show the effective settings.")
    config_commands = config.add_subparsers(dest="action", required=True, parser_class=_Parser)
    show = config_commands.add_parser(
        "show", help="Each setting's value (secrets masked) and where it came from."
    )
    add_command_flags(show, "show")
    add_settings_flags(show, "show")

    silence = commands.add_parser(
        "silence", help="Silence problems for a while: add, list, remove (docs/silences.md)."
    )
    silence_commands = silence.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, help_text in _SILENCE_ACTIONS.items():
        sub = silence_commands.add_parser(action, help=help_text)
        add_command_flags(sub, f"silence_{action}")
        add_settings_flags(sub, "silence")

    schema = commands.add_parser(
        "schema", help="JSON Schemas of the messages on Vigil's topics (docs/schemas/)."
    )
    schema.add_argument("name", nargs="?", help="One message (default: list the names).")
    schema.add_argument("--out", type=Path, help="Write the schemas as DIR/NAME.json.")

    broker = commands.add_parser(
        "broker", help="The local development Kafka broker.", add_help=False
    )
    broker.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vigil`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["schema"]:
        from stream.json_schemas import run_schema

        args = _build_parser().parse_args(argv)
        return run_schema(args.name, args.out)
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
        "notify": _run_notify,
        "correlate": _run_correlate,
        "config": _run_config,
        "silence": _run_silence,
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


def _run_notify(args: argparse.Namespace, settings: Settings) -> int:
    from stream.notify.main import run_notify
    from stream.notify.sinks import build_sinks
    from stream.telemetry import configure_logging

    if not build_sinks(settings):
        print(
            "vigil notify: no sink configured: set VIGIL_ALERTMANAGER_URL, "
            "VIGIL_NOTIFY_WEBHOOK_URL, VIGIL_NOTIFY_PAGERDUTY_ROUTING_KEY or "
            "VIGIL_NOTIFY_SLACK_WEBHOOK_URL",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(run_notify(settings))


def _run_correlate(args: argparse.Namespace, settings: Settings) -> int:
    from stream.correlate.main import run_correlate
    from stream.telemetry import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(run_correlate(settings))
    except ConfigError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2


def _run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from stream.offline.replay import run_replay

    return run_replay(args.file, args.out, settings)


def _run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from stream.offline.evaluate import run_evaluate
    from stream.offline.evaluate_risk import has_incidents, run_evaluate_risk

    if args.problems:
        from stream.dev.problems_report import run_problems_evaluation

        return run_problems_evaluation(args, settings)
    if args.file is None:
        print("vigil evaluate: a FILE, or --problems", file=sys.stderr)
        return 2
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


def _run_silence(args: argparse.Namespace, settings: Settings) -> int:
    from stream.silence_command import run_silence
    from stream.telemetry import configure_logging

    # A command's output is its answer: the follower's progress lines only when asked for.
    configure_logging(
        "WARNING" if settings.log_level == "INFO" else settings.log_level, settings.log_format
    )
    return run_silence(args, settings)


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
