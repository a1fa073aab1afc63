"""Detection quality on the Application Server Dataset (ASD, 12 real servers), side by side.

For each server the train half (unlabelled) is streamed as warm-up (learned, not scored into
the report) and the test half is scored prequentially (score, then learn), exactly as live.
Compared at the same alert budgets (share of points flagged):

* river out of the box: ``MinMaxScaler | HalfSpaceTrees`` with a running quantile threshold;
* Vigil: ``ServiceAnomalyModel`` with its default configuration (or ``--set`` overrides).

Designs and parameters are chosen on the development servers omi-1..omi-6 only; omi-7..omi-12
are held out and reported separately, then all 12 together. Point-wise F1 and point-adjusted
F1 (PA-F1) are both reported, and named. Usage:
    python benchmarks/asd_quality.py [--data ../shared/data/asd] [--rates 0.01,0.02,0.05]
        [--servers omi-1,omi-2] [--detectors river,vigil] [--set detector=hst] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from river import anomaly, compose, preprocessing

from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.evaluation import evaluate_detection

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "asd"
STEP_S = 300.0
BATCH = 288  # rows per observe_batch call (a day): batches give exactly one-at-a-time verdicts
DEV = tuple(f"omi-{i}" for i in range(1, 7))
HELD_OUT = tuple(f"omi-{i}" for i in range(7, 13))


def load(path: Path) -> tuple[list[str], np.ndarray]:
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        rows = np.loadtxt(f, delimiter=",", ndmin=2)
    return header, rows


def river_baseline(
    train: np.ndarray, test: np.ndarray, names: list[str], rate: float, _: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))
    quantile = anomaly.QuantileFilter(model, q=1.0 - rate)
    scores, flags = [], []
    for phase, rows in (("train", train), ("test", test)):
        for row in rows:
            x = dict(zip(names, map(float, row), strict=True))
            score = quantile.score_one(x)
            flag = quantile.classify(score)
            quantile.learn_one(x)
            if phase == "test":
                scores.append(score)
                flags.append(flag)
    return np.array(scores), np.array(flags, dtype=bool)


def vigil_model(
    train: np.ndarray, test: np.ndarray, names: list[str], rate: float, overrides: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    # The rate as a budget per day of 5-minute samples; flags are the anomalous rows (episodes
    # open on the first of them), so point-wise figures compare with river's flags.
    config = AnomalyConfig(budget_per_day=rate * 86_400 / STEP_S, **overrides)
    model = ServiceAnomalyModel("server", config)
    rows = np.vstack([train, test])
    ts = np.arange(len(rows)) * STEP_S
    scores, flags = np.empty(len(rows)), np.empty(len(rows), dtype=bool)
    for a in range(0, len(rows), BATCH):
        batch = [dict(zip(names, r, strict=True)) for r in rows[a : a + BATCH].tolist()]
        verdicts = model.observe_batch(batch, ts[a : a + BATCH].tolist())
        scores[a : a + BATCH], flags[a : a + BATCH] = verdicts.scores, verdicts.exceeded
    return scores[len(train) :], flags[len(train) :]


DETECTORS = {"river": river_baseline, "vigil": vigil_model}


def run_one(job: tuple[Path, str, float, str, dict[str, Any]]) -> dict[str, Any]:
    data, server, rate, detector, overrides = job
    names, train = load(data / f"{server}_train.csv.gz")
    _, test_all = load(data / f"{server}_test.csv.gz")
    test, labels = test_all[:, :-1], test_all[:, -1].astype(bool)
    scores, flags = DETECTORS[detector](train, test, names, rate, overrides)
    report = evaluate_detection(labels, flags, scores)
    return {"rate": rate, "server": server, "detector": detector, **report.as_dict()}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs into AnomalyConfig fields, typed like the field's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(AnomalyConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        default = defaults[key]
        out[key] = value if isinstance(default, str) or default is None else type(default)(value)
    return out


def print_table(title: str, results: list[dict[str, Any]], servers: list[str]) -> None:
    chosen = [r for r in results if r["server"] in servers]
    if not chosen:
        return
    print(f"\n{title}: medians over {len(servers)} servers")
    print(
        f"{'rate':>5} {'detector':<8} {'F1 point-wise (mean)':>21} {'PA-F1':>6} "
        f"{'ROC AUC':>8} {'alerts/1k':>9}"
    )
    for rate in sorted({r["rate"] for r in chosen}):
        for name in DETECTORS:
            rows = [r for r in chosen if r["rate"] == rate and r["detector"] == name]
            if not rows:
                continue
            med = {
                k: statistics.median(float(r[k] or 0.0) for r in rows)
                for k in ("f1", "pa_f1", "roc_auc", "alerts_per_1000")
            }
            mean_f1 = statistics.mean(float(r["f1"]) for r in rows)
            print(
                f"{rate:>5} {name:<8} {med['f1']:>13.3f} ({mean_f1:.3f}) {med['pa_f1']:>6.3f} "
                f"{med['roc_auc']:>8.3f} {med['alerts_per_1000']:>9.1f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rates", default="0.01,0.02,0.05")
    parser.add_argument("--servers", default="", help="comma-separated (default: all 12)")
    parser.add_argument("--detectors", default="river,vigil")
    parser.add_argument("--set", action="append", default=[], help="AnomalyConfig key=value")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no ASD data at {args.data}", file=sys.stderr)
        return 2
    servers = args.servers.split(",") if args.servers else [*DEV, *HELD_OUT]
    overrides = parse_overrides(args.set)
    jobs = [
        (args.data, server, float(rate), detector, overrides)
        for rate in args.rates.split(",")
        for server in servers
        for detector in args.detectors.split(",")
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, jobs))
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"Vigil overrides: {overrides or 'none (defaults)'}")
    print_table("Development servers omi-1..omi-6", results, [s for s in servers if s in DEV])
    print_table("Held-out servers omi-7..omi-12", results, [s for s in servers if s in HELD_OUT])
    print_table("All servers", results, servers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
