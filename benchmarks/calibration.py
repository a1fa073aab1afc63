"""Is a tail probability what it says? Calibration of the anomaly model on normal streams.

The model turns each row into a tail probability ``p`` per channel (HST, mean |z|, max |z|,
steps) and combines them (harmonic mean); a row alerts at ``p <= alpha``, and the budget
(false episodes per service-day) is kept only if ``p <= alpha`` happens at rate ``alpha`` on
normal data. This counts, on streams with nothing injected, how often each channel's ``p``
and the combined one fall at or below ``alpha``, against ``alpha`` (rows x alpha expected),
once a service's calibration holds most of its window (a young history is another question,
docs/anomaly.md "Known limits"):

* ``planted``: :class:`~stream.dev.planted.PlantedStream` with nothing planted (6 services,
  correlated metrics, daily seasons, 60 s);
* ``asd``: ASD's 12 training halves (real servers, unlabelled and mostly normal, 5 min);
* ``logs``: the log simulator's normal streams (``benchmarks/log_rates.py``), 30-s windows.

A ratio above 1 at the operating ``alpha`` means rare rows more often than the budget
assumes (rows, not episodes: consecutive rare rows make one episode, so alerts exceed the
budget by at most that ratio); counts are small there (the expected count is printed), so
read them with their Poisson noise.

Each row counts once, as the model decided it (its ``decide`` and ``write_verdicts`` are
wrapped for the run).

Usage: python benchmarks/calibration.py [--only planted,asd,logs] [--days 14] [--hours 48]
    [--rate 2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import log_rates
import numpy as np
import numpy.typing as npt
from asd_quality import load

import models.anomaly.model as model_module
from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.anomaly.core import ScoringCore
from models.anomaly.segment import Decision
from stream.dev.planted import PlantedStream

FloatArray = npt.NDArray[np.float64]
_SETS = ("planted", "asd", "logs")
_MATURE = 0.9  # a calibration holding this share of its window counts as grown up
_WRAPPED = ("decide", "write_verdicts")  # the model's steps that see each row's p-values


@contextmanager
def recorded(rows: list[FloatArray]) -> Iterator[None]:
    """Record, while inside, each row's per-channel and combined p-values once, as decided,
    where the service's calibration is grown up. Instrumentation: the model's ``decide`` and
    ``write_verdicts`` are wrapped (a segment that ends early at a level shift writes only
    its rows up to the shift, and the rest are decided again in the next one)."""
    decided: dict[int, FloatArray | None] = {}  # by core: services' steps may interleave
    originals = {name: getattr(model_module, name) for name in _WRAPPED}
    original_decide, original_write = originals["decide"], originals["write_verdicts"]

    def decide(core: ScoringCore, channels: FloatArray, z: FloatArray, **kw: Any) -> Decision:
        decision: Decision = original_decide(core, channels, z, **kw)
        calibrator = core.calibrator
        grown = calibrator.size >= _MATURE * calibrator.window
        p = np.column_stack([calibrator.p_values(channels), decision.p]) if grown else None
        decided[id(core)] = p
        return decision

    def write_verdicts(out: Any, row0: int, end: int, **kw: Any) -> None:
        original_write(out, row0, end, **kw)
        p = decided.pop(id(kw["core"]))
        if p is not None:
            rows.append(p[:end])

    wrappers = {"decide": decide, "write_verdicts": write_verdicts}
    for name in _WRAPPED:
        setattr(model_module, name, wrappers[name])
    try:
        yield
    finally:
        for name in _WRAPPED:
            setattr(model_module, name, originals[name])


def feed(model: ServiceAnomalyModel, names: list[str], X: FloatArray, step_s: float) -> None:
    """Rows of ``X`` (columns ``names``) through ``model``, ``step_s`` apart, in batches."""
    for a in range(0, X.shape[0], 1000):
        rows = [dict(zip(names, r, strict=True)) for r in X[a : a + 1000].tolist()]
        model.observe_batch(rows, (np.arange(a, a + len(rows)) * step_s).tolist())


def planted(args: argparse.Namespace) -> None:
    stream = PlantedStream(days=args.days)
    for name, series in stream.series(planted=False).items():
        names = sorted(series)
        X = np.column_stack([series[m] for m in names])
        feed(ServiceAnomalyModel(name, AnomalyConfig()), names, X, stream.interval_s)


def asd(args: argparse.Namespace) -> None:
    for i in range(1, 13):
        names, train = load(Path(args.data) / "asd" / f"omi-{i}_train.csv.gz")
        feed(ServiceAnomalyModel(f"omi-{i}", AnomalyConfig()), names, train, 300.0)


def logs(args: argparse.Namespace) -> None:
    run = argparse.Namespace(
        rate=args.rate, services=6, hours=args.hours, timeout_per_min=4.0, factor=10.0, budget=None
    )
    for seed in (1, 2):
        log_rates._run(run, seed, [])


def report(name: str, rows: list[FloatArray], channels: tuple[str, ...], alpha: float) -> None:
    P = np.vstack(rows) if rows else np.empty((0, len(channels) + 1))
    print(f"\n## {name}: {P.shape[0]:,} rows scored by a grown-up calibration\n")
    print(
        "| alpha | expected | " + " | ".join(f"{c} (observed / expected)" for c in channels) + " |"
    )
    print("|---" * (len(channels) + 2) + "|")
    for a in sorted({alpha, 1e-3, 1e-2}):
        expected = P.shape[0] * a
        hits = np.count_nonzero(a >= P, axis=0)
        cells = [f"{int(h)} ({h / expected:.2f})" if expected else "-" for h in hits]
        print(f"| {a:.2g} | {expected:.1f} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(_SETS))
    parser.add_argument("--days", type=float, default=14.0, help="planted days")
    parser.add_argument("--hours", type=float, default=48.0, help="log stream hours")
    parser.add_argument("--rate", type=float, default=2.0, help="log lines/s a service")
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args(argv)
    budget = AnomalyConfig().budget_per_day  # the default; log windows spend the same
    runs: dict[str, tuple[Callable[[argparse.Namespace], Any], float]] = {
        # The budget's alpha at each set's cadence (ServiceAnomalyModel.alpha).
        "planted": (planted, budget * 60 / 86_400),
        "asd": (asd, budget * 300 / 86_400),
        "logs": (logs, budget * 30 / 86_400),
    }
    channels = ("hst", "mean", "max", "steps", "combined")
    for name in args.only.split(","):
        run, alpha = runs[name]
        rows: list[FloatArray] = []
        with recorded(rows):
            run(args)
        report(name, rows, channels, alpha)  # every set here has several metrics: 4 channels
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
