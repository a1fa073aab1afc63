"""Is the incident simulator's future learnable, but not trivially?

Simulates services for a few days, builds one vector per service per minute from causal
features (each metric's robust z-score against the service's trailing 6 h median/MAD, log
compressed; its change over the last 15 minutes; the deploy flag), labels a vector positive
when an incident opens within the next 15 minutes (labels taken from the stream's
IncidentEvents; vectors overlapping an incident are left out), trains a balanced logistic
regression on the first half of the time and scores the second half.

Run: ``.venv/bin/python benchmarks/incident_learnability.py [--services 20] [--days 4]``
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stream.dev.incident_sim import IncidentRecord, IncidentSimulator

METRICS = ("cpu_p95", "mem_p95", "req_rate", "err_5xx", "latency_p95")
HORIZON_MIN = 15
BASELINE_MIN = 6 * 60
TREND_MIN = 15

Floats = npt.NDArray[np.float64]


def minute_means(
    sim: IncidentSimulator, duration_s: float
) -> tuple[Floats, Floats, list[tuple[int, float, float]]]:
    """Per service and minute: mean of each metric, share of samples with deploy_recent; and
    (service, opened, resolved) in seconds from the start, read from the incident records."""
    minutes = int(duration_s // 60)
    index = {name: i for i, name in enumerate(sim.names)}
    sums = np.zeros((sim.services, minutes, len(METRICS)))
    deploy = np.zeros((sim.services, minutes))
    counts = np.zeros((sim.services, minutes))
    opened: dict[str, tuple[int, float]] = {}
    spans: list[tuple[int, float, float]] = []
    start = sim.start.timestamp()
    for item in sim.stream(duration_s):
        payload = item.payload
        at = datetime.fromisoformat(payload["ts"]).timestamp() - start
        s = index[payload["service"]]
        if isinstance(item, IncidentRecord):
            if payload["status"] == "opened":
                opened[payload["incident_id"]] = (s, at)
            else:
                spans.append((*opened.pop(payload["incident_id"]), at))
            continue
        m = int(at // 60)
        values = payload["metrics"]
        sums[s, m] += [values[k] for k in METRICS]
        deploy[s, m] += payload["deploy_recent"]
        counts[s, m] += 1
    # Still open at the end: treat as lasting to the end.
    spans += [(s, at, duration_s) for s, at in opened.values()]
    return sums / counts[..., None], deploy / counts, spans


def features(means: Floats, deploy: Floats) -> Floats:
    """Causal features per service and minute, shape (services, minutes, features)."""
    # Baseline of minute m: minutes m-360 .. m-1 (nothing after m).
    windows = sliding_window_view(means, BASELINE_MIN, axis=1)[:, :-1]
    median = np.median(windows, axis=-1)
    mad = np.median(np.abs(windows - median[..., None]), axis=-1)
    scale = np.maximum(1.4826 * mad, 1e-3 * np.abs(median) + 1e-9)
    z = np.full_like(means, np.nan)
    z[:, BASELINE_MIN:] = (means[:, BASELINE_MIN:] - median) / scale
    z = np.sign(z) * np.log1p(np.abs(z))
    dz = np.full_like(z, np.nan)
    dz[:, TREND_MIN:] = z[:, TREND_MIN:] - z[:, :-TREND_MIN]
    return np.concatenate([z, dz, deploy[..., None]], axis=-1)


def labels(services: int, minutes: int, spans: list[tuple[int, float, float]]) -> Floats:
    """1 if an incident opens within the horizon after the minute ends, 0 if not, NaN for
    minutes that overlap an incident."""
    y = np.zeros((services, minutes))
    for s, opened, resolved in spans:
        first_bad = int(opened // 60)
        y[s, max(0, first_bad - HORIZON_MIN) : first_bad] = 1.0
        y[s, first_bad : int(np.ceil(resolved / 60))] = np.nan
    return y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sim = IncidentSimulator(services=args.services, seed=args.seed)
    duration_s = args.days * 86_400
    began = time.perf_counter()
    means, deploy, spans = minute_means(sim, duration_s)
    simulated_s = time.perf_counter() - began
    x = features(means, deploy)
    y = labels(sim.services, means.shape[1], spans)
    minute = np.broadcast_to(np.arange(means.shape[1]), y.shape)
    usable = ~np.isnan(y) & ~np.isnan(x).any(axis=-1)
    x, y, minute = x[usable], y[usable], minute[usable]
    train = minute < means.shape[1] // 2
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000)
    )
    model.fit(x[train], y[train])
    p = model.predict_proba(x[~train])[:, 1]
    test = y[~train]
    print(f"simulated {args.services} services x {args.days:g} days in {simulated_s:.1f} s")
    print(f"incidents: {len(spans)}, vectors: {len(y)} (train {train.sum()}, test {len(test)})")
    print(f"base rate: all {y.mean():.4f}, train {y[train].mean():.4f}, test {test.mean():.4f}")
    print(f"test PR-AUC (average precision): {average_precision_score(test, p):.3f}")
    print(f"test ROC AUC: {roc_auc_score(test, p):.3f}")


if __name__ == "__main__":
    main()
