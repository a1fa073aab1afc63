"""river's per-event Half-Space Trees against the numpy micro-batch engine, in one run.

For each tree shape it times river's ``score_one`` + ``learn_one`` per event and
``BatchHST.score_learn_batch`` over batches of several sizes (the crossover is the smallest batch
size at which numpy beats river per event), each the median of ``repeats`` runs, and measures the
memory one model holds. Tree construction is excluded from the timings (both engines build their
trees at the first learn, which happens before the clock starts).

Usage::

    python benchmarks/hst_engine.py            # a table
    python benchmarks/hst_engine.py --json     # the same numbers as JSON
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.metadata
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from river import anomaly

from models.hst_numpy import BatchHST, shared_structure

DEFAULT_SHAPES: tuple[tuple[int, int], ...] = ((10, 8), (25, 15))
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 10, 50, 100, 250, 1000)


def _median_rate(measure: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    rates = [measure() for _ in range(repeats)]
    return statistics.median(rates), rates


def _river_rate(
    dicts: Sequence[dict[str, float]], n_trees: int, height: int, window_size: int, seed: int
) -> float:
    model: Any = anomaly.HalfSpaceTrees(
        n_trees=n_trees, height=height, window_size=window_size, seed=seed
    )
    model.learn_one(dicts[0])  # builds the trees: not timed
    stream = dicts[1:]
    start = time.perf_counter()
    for x in stream:
        model.score_one(x)
        model.learn_one(x)
    return len(stream) / (time.perf_counter() - start)


def _numpy_rate(
    X: np.ndarray, batch_size: int, n_trees: int, height: int, window_size: int, seed: int
) -> float:
    model = BatchHST(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    model.learn_batch(X[:1])  # fetches the shared trees: not timed
    stream = X[1:]
    start = time.perf_counter()
    for i in range(0, len(stream), batch_size):
        model.score_learn_batch(stream[i : i + batch_size])
    return len(stream) / (time.perf_counter() - start)


def _traced_bytes(build: Callable[[], Any], count: int) -> float:
    """Bytes still allocated per object after building ``count`` objects (kept alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        kept = [build() for _ in range(count)]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return (after - before) / count


def run(
    *,
    rows: int = 20_000,
    n_features: int = 5,
    shapes: Sequence[tuple[int, int]] = DEFAULT_SHAPES,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    window_size: int = 250,
    seed: int = 0,
    repeats: int = 3,
    river_rows: dict[tuple[int, int], int] | None = None,
    small_batch_rows: int = 5_000,
    memory_models: dict[tuple[int, int], int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time and size both engines.

    Args:
        rows: Events per numpy run (and per river run unless ``river_rows`` says fewer).
        n_features: Features per event, uniform in [0, 1].
        shapes: ``(n_trees, height)`` pairs to compare.
        batch_sizes: numpy batch sizes to time.
        window_size: HST mass window.
        seed: Seed of the trees and of the data.
        repeats: Runs per measurement; the median is reported.
        river_rows: Events per river run by shape; river at (25, 15) swaps 1.6M node objects
            every window, so it defaults to 3,000 events there.
        small_batch_rows: Events per numpy run for batch sizes below 100.
        memory_models: River models built (after one learn) under ``tracemalloc`` per shape;
            defaults to 20, and 1 at (25, 15) where one river model is ~370 MB.
        progress: Called with a line of text before each measurement.

    Returns:
        A JSON-ready dict: parameters, versions, and per shape the events/s of river and of
        numpy per batch size, the speed-ups, the crossover batch size and the memory per model.
    """
    river_rows = {(25, 15): 3_000} if river_rows is None else river_rows
    memory_models = {(25, 15): 1} if memory_models is None else memory_models
    say = progress or (lambda _line: None)
    X = np.random.default_rng(seed).random((rows, n_features))
    names = [f"f{j}" for j in range(n_features)]  # sorted order == column order for <= 10
    dicts = [dict(zip(names, row, strict=True)) for row in X.tolist()]
    results: list[dict[str, Any]] = []
    for n_trees, height in shapes:
        shape = (n_trees, height)
        say(f"(n_trees={n_trees}, height={height}): building the shared trees")
        structure = shared_structure(n_features, n_trees, height, seed)

        n_river = min(rows, river_rows.get(shape, rows))
        say(f"  river, {n_river} events x {repeats}")
        river_median, river_runs = _median_rate(
            functools.partial(_river_rate, dicts[:n_river], n_trees, height, window_size, seed),
            repeats,
        )
        numpy_results: list[dict[str, Any]] = []
        for batch_size in batch_sizes:
            n_rows = rows if batch_size >= 100 else min(rows, small_batch_rows)
            say(f"  numpy, batches of {batch_size}, {n_rows} events x {repeats}")
            median, runs = _median_rate(
                functools.partial(
                    _numpy_rate, X[:n_rows], batch_size, n_trees, height, window_size, seed
                ),
                repeats,
            )
            numpy_results.append(
                {
                    "batch_size": batch_size,
                    "events": n_rows - 1,
                    "events_per_s": median,
                    "runs": runs,
                    "speedup": median / river_median,
                }
            )
        crossover = next(
            (r["batch_size"] for r in numpy_results if r["events_per_s"] > river_median), None
        )

        n_models = memory_models.get(shape, 20)
        say(f"  memory: {n_models} river model(s) and 20 numpy models under tracemalloc")

        def build_river(t: int = n_trees, h: int = height) -> Any:
            model: Any = anomaly.HalfSpaceTrees(
                n_trees=t, height=h, window_size=window_size, seed=seed
            )
            model.learn_one(dicts[0])
            return model

        def build_numpy(t: int = n_trees, h: int = height) -> BatchHST:
            model = BatchHST(n_trees=t, height=h, window_size=window_size, seed=seed)
            model.learn_batch(X[:1])
            return model

        river_bytes = _traced_bytes(build_river, n_models)
        numpy_traced = _traced_bytes(build_numpy, 20)
        mass_bytes = build_numpy().nbytes
        results.append(
            {
                "n_trees": n_trees,
                "height": height,
                "river": {"events": n_river - 1, "events_per_s": river_median, "runs": river_runs},
                "numpy": numpy_results,
                "crossover_batch_size": crossover,
                "memory": {
                    "river_bytes_per_model": river_bytes,
                    "river_models_measured": n_models,
                    "numpy_mass_bytes_per_model": mass_bytes,
                    "numpy_traced_bytes_per_model": numpy_traced,
                    "shared_structure_bytes": structure.feature.nbytes + structure.threshold.nbytes,
                },
            }
        )
    return {
        "benchmark": "hst_engine",
        "rows": rows,
        "n_features": n_features,
        "window_size": window_size,
        "seed": seed,
        "repeats": repeats,
        "versions": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "river": importlib.metadata.version("river"),
        },
        "results": results,
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f} MB" if n < 1e8 else f"{n / 1e6:.0f} MB"


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table.

    Args:
        report: What ``run`` returned.

    Returns:
        The table.
    """
    lines = [
        f"HST engines: d={report['n_features']}, window={report['window_size']}, "
        f"median of {report['repeats']}; numpy {report['versions']['numpy']}, "
        f"river {report['versions']['river']}"
    ]
    for r in report["results"]:
        river_rate = r["river"]["events_per_s"]
        lines.append("")
        lines.append(f"n_trees={r['n_trees']} height={r['height']}")
        lines.append(f"  {'engine':<22}{'events/s':>14}{'speed-up':>10}")
        lines.append(f"  {'river per event':<22}{river_rate:>14,.0f}{1.0:>9.1f}x")
        for n in r["numpy"]:
            label = f"numpy batch={n['batch_size']}"
            lines.append(f"  {label:<22}{n['events_per_s']:>14,.0f}{n['speedup']:>9.1f}x")
        lines.append(f"  crossover batch size: {r['crossover_batch_size']}")
        m = r["memory"]
        lines.append(
            f"  memory per model: river {_mb(m['river_bytes_per_model'])} "
            f"({m['river_models_measured']} measured), numpy masses "
            f"{_mb(m['numpy_mass_bytes_per_model'])} "
            f"(traced {_mb(m['numpy_traced_bytes_per_model'])}), "
            f"+ shared trees {_mb(m['shared_structure_bytes'])} once"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    report = run(
        rows=args.rows,
        n_features=args.features,
        window_size=args.window,
        repeats=args.repeats,
        seed=args.seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
