"""Detection quality on the Application Server Dataset (ASD, 12 real servers), side by side.

For each server the train half (unlabelled) is streamed as warm-up (learned, not scored into
the report) and the test half is scored prequentially (score, then learn), exactly as live.
Compared at the same alert budgets (share of points flagged):

* river out of the box: ``MinMaxScaler | HalfSpaceTrees`` with a running quantile threshold;
* Vigil: robust scaling, Half-Space Trees and the adaptive per-service threshold.

Point-wise and point-adjusted F1 are both reported, and named. Usage:
    python benchmarks/asd_quality.py [--data ../shared/data/asd] [--rates 0.01,0.02,0.05]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
from pathlib import Path

import numpy as np
import orjson
from river import anomaly, compose, preprocessing

from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.evaluation import evaluate_detection

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "asd"
STEP_S = 300.0


def load(path: Path) -> tuple[list[str], np.ndarray]:
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        rows = np.loadtxt(f, delimiter=",", ndmin=2)
    return header, rows


def river_baseline(
    train: np.ndarray, test: np.ndarray, names: list[str], rate: float
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
    train: np.ndarray, test: np.ndarray, names: list[str], rate: float
) -> tuple[np.ndarray, np.ndarray]:
    model = ServiceAnomalyModel("server", AnomalyConfig(target_alert_rate=rate, cooldown_s=0.0))
    scores, flags = [], []
    t = 0.0
    for phase, rows in (("train", train), ("test", test)):
        for row in rows:
            verdict = model.observe(dict(zip(names, map(float, row), strict=True)), t)
            t += STEP_S
            if phase == "test":
                scores.append(verdict.score)
                flags.append(verdict.alert)
    return np.array(scores), np.array(flags, dtype=bool)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rates", default="0.01,0.02,0.05")
    parser.add_argument("--servers", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no ASD data at {args.data}", file=sys.stderr)
        return 2
    servers = args.servers.split(",") if args.servers else [f"omi-{i}" for i in range(1, 13)]
    results = []
    for rate in (float(r) for r in args.rates.split(",")):
        for server in servers:
            names, train = load(args.data / f"{server}_train.csv.gz")
            _, test_all = load(args.data / f"{server}_test.csv.gz")
            test, labels = test_all[:, :-1], test_all[:, -1].astype(bool)
            for name, run in (("river", river_baseline), ("vigil", vigil_model)):
                scores, flags = run(train, test, names, rate)
                report = evaluate_detection(labels, flags, scores)
                results.append(
                    {"rate": rate, "server": server, "detector": name, **report.as_dict()}
                )
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(
        f"{'rate':>5} {'detector':<8} {'F1 (point-wise)':>16} {'PA-F1':>7} {'ROC AUC':>8} "
        f"{'alerts/1k':>9}   medians over {len(servers)} servers"
    )
    for rate in sorted({r["rate"] for r in results}):
        for name in ("river", "vigil"):
            rows = [r for r in results if r["rate"] == rate and r["detector"] == name]
            med = {
                k: statistics.median(float(r[k] or 0.0) for r in rows)
                for k in ("f1", "pa_f1", "roc_auc", "alerts_per_1000")
            }
            mean_f1 = statistics.mean(float(r["f1"]) for r in rows)
            print(
                f"{rate:>5} {name:<8} {med['f1']:>10.3f} (mean {mean_f1:.3f}) "
                f"{med['pa_f1']:>7.3f} {med['roc_auc']:>8.3f} {med['alerts_per_1000']:>9.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
