"""river's per-event Half-Space Trees against the numpy micro-batch engine, in one run.

A thin command line over :mod:`stream.dev.bench_engine_report` (the measuring code, shared
with ``vigil bench``): for each tree shape, river's events/s, numpy's events/s per batch size,
the speed-ups, the crossover batch size and the memory one model holds.

Usage::

    python benchmarks/hst_engine.py            # a table
    python benchmarks/hst_engine.py --json     # the same numbers as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from stream.dev.bench_engine_report import format_report, run_report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="timed events per run")
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip bytes per model")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    report = run_report(
        events=args.events,
        n_features=args.features,
        window_size=args.window,
        repeats=args.repeats,
        seed=args.seed,
        memory=not args.no_memory,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
