"""``vigil bench --only offline``: the replay path (parse → features → score → learn → decide)
for ``engine=river`` and ``engine=numpy`` on the same events, runs interleaved, with the ratio;
and incident risk's cost on sparse and dense series."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import risk_pipeline
from stream.dev.bench_figures import Figure, Progress
from stream.dev.simulate import MetricSimulator
from stream.offline.replay import replay
from stream.settings import Settings

__all__ = ["hst_settings", "offline_figures", "offline_rates"]


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


def offline_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """The replay path for both engines on the same events, and the ratio."""
    say(f"offline: {args.events} events x {args.repeats} per run")
    rates = {
        name: statistics.median(runs)
        for name, runs in offline_rates(settings, args.events, args.repeats).items()
    }
    note = f"{args.events} events, 5 services, batches of {settings.max_batch}"
    figures = _engine_figures(rates, note, hst_settings(settings).detector)
    figures += _risk_figures(rates, note, settings.incident_step_s)
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


def _engine_figures(rates: dict[str, float], note: str, detector: str) -> list[Figure]:
    """Both engines' rates under an HST ``detector``, and their ratio."""
    return [
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
    ]


def _risk_figures(rates: dict[str, float], note: str, incident_step_s: float) -> list[Figure]:
    """Incident risk's cost with an event per service every 10 s (sparse) and every second."""
    sparse = incident_step_s / 10.0  # events per risk vector, an event every 10 s
    return [
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
