"""``vigil broker start|stop|status``: a local single-node Kafka broker (KRaft) from the
command line (see :mod:`stream.dev.broker`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream.dev.broker import DEFAULT_PORT, DEFAULT_START_TIMEOUT_S, LocalBroker
from stream.dev.broker_config import DEV_SASL_USERNAME, SASL_MECHANISMS
from stream.dev.broker_setup import EXIT_FAILED, BrokerError

__all__ = ["broker_main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil broker", description="Run a local single-node Kafka broker (KRaft)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="PLAINTEXT port")
        sub.add_argument(
            "--data", type=Path, default=None, help="data dir (default ~/.cache/vigil/broker-PORT)"
        )
        return sub

    start = add("start", "start a detached broker and print its bootstrap address")
    start.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_START_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for the broker to answer",
    )
    start.add_argument(
        "--sasl-port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"also listen for SASL_PLAINTEXT clients here ({', '.join(SASL_MECHANISMS)}; "
        f"user {DEV_SASL_USERNAME!r}, password in docs/security.md)",
    )
    add("stop", "stop the broker (a no-op if it is not running)")
    add("status", "exit 0 if the broker runs, 1 if not")
    return parser


def broker_main(argv: list[str]) -> int:
    """Run ``vigil broker start|stop|status``; return the exit code.

    ``start`` prints the bootstrap address on stdout. Errors print ``vigil broker: <message>``
    on stderr and exit 2 (missing tools or configuration) or 1 (the broker failed to start).
    """
    args = _build_parser().parse_args(argv)
    try:
        broker = LocalBroker(
            port=args.port, data_dir=args.data, sasl_port=getattr(args, "sasl_port", None)
        )
        if args.command == "start":
            print(broker.start(timeout_s=args.timeout))
            if broker.sasl_bootstrap is not None:
                print(f"SASL_PLAINTEXT on {broker.sasl_bootstrap}", file=sys.stderr)
            return 0
        if args.command == "stop":
            broker.stop()
            print(f"stopped (port {broker.port}, data {broker.data_dir})")
            return 0
        state = broker.status()
        print(state.describe())
        return 0 if state.running else EXIT_FAILED
    except BrokerError as exc:
        print(f"vigil broker: {exc}", file=sys.stderr)
        return exc.exit_code
