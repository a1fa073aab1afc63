"""Micro-benchmark of one service's model: ``observe_batch`` events per second and bytes held.

Streams rows of ``--features`` noisy daily-periodic metrics (10 s apart) through one
``ServiceAnomalyModel`` in batches of ``--batch`` and reports events/s after a warm-up, plus the
model's array bytes. Usage:
    python benchmarks/model_throughput.py [--rows 100000] [--batch 400] [--set detector=hst]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import numpy as np

from models.anomaly import AnomalyConfig, ServiceAnomalyModel


def make_rows(n: int, d: int, seed: int = 0) -> tuple[list[dict[str, float]], list[float]]:
    rng = np.random.default_rng(seed)
    ts = np.arange(n) * 10.0
    daily = np.sin(2 * np.pi * ts / 86_400.0)[:, None]
    X = 100.0 + 20.0 * daily + rng.normal(0, 3, (n, d))
    names = [f"m{j}" for j in range(d)]
    return [dict(zip(names, r, strict=True)) for r in X.tolist()], ts.tolist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="AnomalyConfig key=value")
    args = parser.parse_args()
    fields = {f.name: f.default for f in dataclasses.fields(AnomalyConfig)}
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = value if isinstance(fields[key], str) else type(fields[key])(value)
    rows, ts = make_rows(args.rows, args.features)
    warm = args.rows // 5
    best = 0.0
    for _ in range(args.repeat):
        model = ServiceAnomalyModel("svc", AnomalyConfig(**overrides))
        model.observe_batch(rows[:warm], ts[:warm])
        start = time.perf_counter()
        for a in range(warm, args.rows, args.batch):
            model.observe_batch(rows[a : a + args.batch], ts[a : a + args.batch])
        best = max(best, (args.rows - warm) / (time.perf_counter() - start))
    print(f"{best:,.0f} events/s ({1e6 / best:.2f} us/event), model arrays {model.nbytes():,} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
