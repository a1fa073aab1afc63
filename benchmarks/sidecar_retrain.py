"""How long the sidecar takes to retrain on 24 hours of data at 1,000 events/s.

At 1,000 metric events/s a day is 86.4M events. The sidecar sees labelled risk vectors, one
per service per minute; at one sample per service every 10 s, 1,000 events/s is 10,000
services, 14.4M risk vectors a day, so the window holds its cap
(``VIGIL_SIDECAR_WINDOW_ROWS``, 1M): 1,000,000 rows of 13 features (the default risk vector
of 5 metrics), 3 % positive. (Sidecars before this version also held a 1 % sample of the
metric events, 864,000 rows, and fitted an IsolationForest on them: see docs/sidecar.md.)

The rows go through the sidecar's own :class:`~models.batch.TrainingWindow` and fits; the
synthetic features carry a precursor signal so the fit has something to find.

Run: ``.venv/bin/python benchmarks/sidecar_retrain.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time

import numpy as np

from models.batch import TrainingWindow, fit_risk_model
from stream.offline.holdout_figures import pr_curve_png, risk_timeline_png

DAY_S = 86_400.0
RISK_ROWS = 1_000_000
METRICS = ("cpu_p95", "mem_p95", "req_rate", "err_5xx", "latency_p95")
RISK_FEATURES = (
    *(f"z:{m}" for m in METRICS),
    *(f"dz:{m}" for m in METRICS),
    "anomaly_ratio",
    "anomaly_flagged",
    "deploy_recent",
)


def fill(window: TrainingWindow, rng: np.random.Generator) -> float:
    """The risk rows into the window, in bulk; returns seconds."""
    started = time.perf_counter()
    labels = rng.random(RISK_ROWS) < 0.03
    X = rng.normal(size=(RISK_ROWS, len(RISK_FEATURES)))
    X[:, 0] += 1.5 * labels
    ids = [f"inc-{i // 15}" if y else None for i, y in enumerate(labels)]
    ts = np.linspace(DAY_S - 6000.0, DAY_S, RISK_ROWS)
    window.extend("risk:all", list(RISK_FEATURES), X, ts, labels.astype(float), ids)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    window = TrainingWindow(span_s=DAY_S, max_rows=RISK_ROWS)
    fill_s = fill(window, rng)
    times: dict[str, list[float]] = {"frame": [], "risk": [], "png": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        risk = window.frame("risk:all").labelled()
        times["frame"].append(time.perf_counter() - started)
        started = time.perf_counter()
        model = fit_risk_model(risk.names, risk.X, risk.labels, risk.ts_s, risk.incident_ids)
        times["risk"].append(time.perf_counter() - started)
        started = time.perf_counter()
        pr_curve_png(model)
        risk_timeline_png(model)
        times["png"].append(time.perf_counter() - started)
    print(f"window: {window.rows('risk:all'):,} risk rows,")
    print(f"  {window.nbytes() / 2**20:,.0f} MiB, filled in {fill_s:.1f} s")
    for name, values in times.items():
        print(f"{name:>8}: median {statistics.median(values):.2f} s of {values}")
    total = sum(statistics.median(v) for v in times.values())
    print(
        f"retrain (frame + fit + figures): {total:.1f} s; holdout PR-AUC "
        f"{model.metrics['pr_auc']:.3f} at base rate {model.metrics['base_rate']:.3f}"
    )
    print(f"risk artifact: {len(pickle.dumps(model, protocol=5)):,} bytes pickled")


if __name__ == "__main__":
    main()
