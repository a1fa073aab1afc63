"""The HST engine benchmark's report (``benchmarks/hst_engine.py``): both engines timed, and
optionally sized, at each tree shape, as JSON-ready data or a plain-text table. The measuring is
:mod:`stream.dev.bench_engine`'s."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stream.dev.bench_engine import (
    CROSSOVER_BATCH_SIZES,
    DEFAULT_SHAPES,
    EngineRun,
    Shape,
    engine_memory,
    measure_engines,
)

__all__ = ["format_report", "run_report"]


def run_report(
    *,
    events: int = 20_000,
    river_events: dict[Shape, int] | None = None,
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    batch_sizes: Sequence[int] = (*CROSSOVER_BATCH_SIZES, 2000),
    window_size: int = 250,
    n_features: int = 5,
    seed: int = 0,
    repeats: int = 3,
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time (and optionally size) both engines for each shape: a JSON-ready report.

    Args:
        events: Timed events per numpy run (and per river run unless ``river_events`` says).
        river_events: Timed events per river run by shape; 3,000 at (25, 15) by default.
        shapes: ``(n_trees, height)`` pairs.
        batch_sizes: numpy batch sizes.
        window_size: HST mass window.
        n_features: Features per event.
        seed: Seed of the trees and the data.
        repeats: Runs per measurement.
        memory: Whether to measure bytes per model too (one river model at (25, 15)).
        progress: Called with a line of text as measurements start.

    Returns:
        Parameters, versions and, per shape, rates, speed-ups, crossover and memory.
    """
    river_events = {(25, 15): 3_000} if river_events is None else river_events
    results = []
    for n_trees, height in shapes:
        run = measure_engines(
            n_trees=n_trees,
            height=height,
            batch_sizes=batch_sizes,
            events=events,
            river_events=min(events, river_events.get((n_trees, height), events)),
            repeats=repeats,
            window_size=window_size,
            n_features=n_features,
            seed=seed,
            progress=progress,
        )
        result = _shape_result(run)
        if memory:
            if progress is not None:
                progress(f"engines {n_trees}x{height}: memory per model")
            result["memory"] = engine_memory(
                n_trees=n_trees,
                height=height,
                river_models=1 if (n_trees, height) == (25, 15) else 20,
                window_size=window_size,
                n_features=n_features,
                seed=seed,
            )
        results.append(result)
    return {
        "benchmark": "hst_engine",
        "events": events,
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


def _shape_result(run: EngineRun) -> dict[str, Any]:
    """One shape's rates, speed-ups and crossover, as the report holds them."""
    return {
        "n_trees": run.n_trees,
        "height": run.height,
        "river": {"events": run.river_events, "events_per_s": run.river_per_s},
        "numpy": [
            {
                "batch_size": b,
                "events": run.numpy_events,
                "events_per_s": rate,
                "speedup": run.speedup(b),
            }
            for b, rate in run.numpy_per_s.items()
        ],
        "crossover_batch_size": run.crossover,
    }


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f} MB" if n < 1e8 else f"{n / 1e6:.0f} MB"


def format_report(report: dict[str, Any]) -> str:
    """A :func:`run_report` report as a plain-text table."""
    lines = [
        f"HST engines: d={report['n_features']}, window={report['window_size']}, "
        f"median of {report['repeats']}; numpy {report['versions']['numpy']}, "
        f"river {report['versions']['river']}"
    ]
    for r in report["results"]:
        lines += [
            "",
            f"n_trees={r['n_trees']} height={r['height']}",
            f"  {'engine':<22}{'events/s':>14}{'speed-up':>10}",
            f"  {'river per event':<22}{r['river']['events_per_s']:>14,.0f}{1.0:>9.1f}x",
        ]
        for n in r["numpy"]:
            label = f"numpy batch={n['batch_size']}"
            lines.append(f"  {label:<22}{n['events_per_s']:>14,.0f}{n['speedup']:>9.1f}x")
        lines.append(f"  crossover batch size: {r['crossover_batch_size']}")
        if "memory" in r:
            m = r["memory"]
            lines.append(
                f"  memory per model: river {_mb(m['river_bytes_per_model'])}, numpy "
                f"{_mb(m['numpy_bytes_per_model'])} traced "
                f"({_mb(m['numpy_mass_bytes_per_model'])} of masses) + shared trees once"
            )
    return "\n".join(lines)
