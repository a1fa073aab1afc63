"""Does the sidecar's batch anomaly model add detection quality to the online model? (issue 18)

The fair comparison, per set and service, everything else equal:

* ``online``: the online anomaly model as it is (``ServiceAnomalyModel``, default config);
* ``+batch``: the same model with the batch model's score as one more calibrated channel
  (its own ``ScoreCalibrator``, combined with the others by the same harmonic-mean p-value,
  learned under the same rules, the same budget).

The batch model is trained as the sidecar trained it (:class:`Forest`: what
``models.batch.fit_anomaly_model`` fitted, seed 0, on the raw metrics of the rows the
detectors published), only on rows before the time it scores: at each midnight of event
time, a fit on the sampled rows of the window before, used for the next day (a day with too
few rows keeps the model in force). Its group is one service, or every service of the set
(``pooled``: the sidecar's default of one model group; ASD development and held-out servers
are pooled apart). Sampling is each row with probability ``rate``, seeded, as
``stream/detector/training_feed.py`` sampled events. Until a group has its first model, and until a
model's scores have a calibration, the channel is left out of the combination (the model is
then exactly the online one: checked on every run, with the channel's independence of the
batch boundaries).

Episode-wise precision/recall/F1 are ``models.alert_quality.alert_quality``'s, tolerance 3
samples, pooled over a report group's services, as in ``benchmarks/quality.py``. Sets:
``asd`` (the train half streamed, the test half scored; development omi-1..6 decide,
held-out omi-7..12 are reported apart), ``planted`` (``stream.dev.planted.PlantedStream`` at
``--planted-seeds``, 6 services, 7 days at 60 s, 40 positive episodes and 8 benign drops).

The channel is attached through the model's ``ScoringCore`` and private ``_segment``
(``models/anomaly`` has no channel hook): a measurement harness, not a design.

Usage:
    python benchmarks/batch_channel.py [--sets asd,planted] [--variants NAME,...]
        [--sampling-seeds 0,1,2] [--planted-seeds 18] [--jobs 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import math
import operator
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from asd_quality import DEV, HELD_OUT, STEP_S, load
from sklearn.ensemble import IsolationForest

from models.alert_quality import AlertQuality, alert_quality, alert_spans
from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.anomaly.calibration import ScoreCalibrator
from models.anomaly.core import ScoringCore
from stream.dev.planted import PlantedStream

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOLERANCE = 3
DAY_S = 86_400.0
SIDECAR_MIN_ROWS = 200  # stream/sidecar/fitting.py: a group needs this many rows to be fitted
_TINY = 1e-300


@dataclass(frozen=True)
class Variant:
    """How the batch model is trained (``rate`` None: no batch model, the online one alone)."""

    name: str
    rate: float | None = None
    window_s: float = DAY_S
    pooled: bool = True
    min_rows: int = SIDECAR_MIN_ROWS
    sampling_seed: int = 0


VARIANTS = {
    v.name: v
    for v in (
        Variant("online"),
        # The sidecar as it is: 1 % of events, a day's window, one model group, 200 rows.
        Variant("sidecar", rate=0.01),
        # Generous: every event published, per service, a day's window or a week's.
        Variant("all-1d-service", rate=1.0, pooled=False),
        Variant("all-7d-service", rate=1.0, window_s=7 * DAY_S, pooled=False),
        Variant("all-1d-pooled", rate=1.0),
        # 1 % with a week's window, pooled, and the fewest rows a forest fits on (16).
        Variant("1pc-7d-pooled-16", rate=0.01, window_s=7 * DAY_S, min_rows=16),
    )
}


@dataclass
class Series:
    """One service: its rows, event times and the labels of its scored part."""

    name: str
    names: tuple[str, ...]
    X: np.ndarray  # [n, len(names)] raw metric values
    ts: np.ndarray
    labels: np.ndarray  # of rows scored_from..n
    scored_from: int
    sample_s: float


# -- data ---------------------------------------------------------------------------------------


def asd_series(data: Path, servers: Sequence[str]) -> list[Series]:
    """ASD servers: train half then test half, 5 min apart; the test half is scored."""
    out = []
    for server in servers:
        names, train = load(data / "asd" / f"{server}_train.csv.gz")
        _, test = load(data / "asd" / f"{server}_test.csv.gz")
        X = np.vstack([train, test[:, :-1]])
        order = np.argsort(names)
        ts = 1_767_571_200.0 + np.arange(len(X)) * STEP_S  # 2026-01-05, as quality_sets
        out.append(
            Series(
                server,
                tuple(np.asarray(names)[order].tolist()),
                X[:, order],
                ts,
                test[:, -1].astype(bool),
                len(train),
                STEP_S,
            )
        )
    return out


def planted_series(seed: int) -> list[Series]:
    """``PlantedStream(seed=seed)``: positive episodes' samples labelled (a level shift: its
    first), as ``benchmarks/quality_sets.py`` labels them; benign drops are not."""
    stream = PlantedStream(seed=seed)
    rows: dict[str, list[list[float]]] = {name: [] for name in stream.names}
    names: tuple[str, ...] = ()
    for payload in stream.events():
        metrics = payload["metrics"]
        names = tuple(sorted(metrics))
        rows[payload["service"]].append([float(metrics[m]) for m in names])
    ts = stream.start.timestamp() + np.arange(stream.samples) * stream.interval_s
    step = timedelta(seconds=stream.interval_s)
    labels = {name: np.zeros(stream.samples, dtype=bool) for name in stream.names}
    for e in stream.episodes():
        if e.positive:
            a, b = (e.start - stream.start) // step, (e.end - stream.start) // step
            labels[e.service][a : b + 1] = True
    return [
        Series(f"s{seed}/{n}", names, np.array(rows[n]), ts, labels[n], 0, stream.interval_s)
        for n in stream.names
    ]


# -- the batch model and its schedule -----------------------------------------------------------


class Forest:
    """The sidecar's anomaly model as ``models/batch/anomaly.py`` fitted it (removed once this
    measurement decided against it; its scores were checked identical before the removal):
    scikit-learn's ``IsolationForest`` (100 trees, 256-row subsamples, ``contamination="auto"``,
    ``random_state`` 0) on the raw metric values, NaN replaced by the training median; the
    score is the paper's ``s(x)`` in (0, 1], ``-score_samples``."""

    def __init__(self, X: np.ndarray, seed: int = 0) -> None:
        seen = ~np.all(np.isnan(X), axis=0)
        self.medians = np.zeros(X.shape[1])
        self.medians[seen] = np.nanmedian(X[:, seen], axis=0)
        self.forest = IsolationForest(
            n_estimators=100, max_samples=min(256, len(X)), contamination="auto", random_state=seed
        )
        self.forest.fit(np.where(np.isnan(X), self.medians, X))

    def score(self, X: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(X), self.medians, X)
        return -np.asarray(self.forest.score_samples(filled), np.float64)


def batch_scores(
    group: Sequence[Series], variant: Variant
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each service's batch score per row (NaN where no model is in force), and what was fitted.

    At every midnight of event time after the group's first row, the rows sampled in the
    ``window_s`` before are fitted (if at least ``min_rows``); the newest fit scores the next
    day.
    """
    assert variant.rate is not None
    rng = np.random.default_rng(variant.sampling_seed)
    sampled = [rng.random(len(s.ts)) < variant.rate for s in group]
    out = {s.name: np.full(len(s.ts), np.nan) for s in group}
    t0 = min(float(s.ts[0]) for s in group)
    t1 = max(float(s.ts[-1]) for s in group)
    day = math.floor(t0 / DAY_S) * DAY_S + DAY_S
    model: Forest | None = None
    fits, rows_per_fit, days_without = 0, [], 0
    while day <= t1:
        parts = [
            s.X[pick & (s.ts >= day - variant.window_s) & (s.ts < day)]
            for s, pick in zip(group, sampled, strict=True)
        ]
        X = np.vstack(parts)
        if len(X) >= max(variant.min_rows, 16):  # the sidecar's fit refused fewer than 16
            model = Forest(X)
            fits += 1
            rows_per_fit.append(len(X))
        if model is None:
            days_without += 1
        else:
            for s in group:
                at = (s.ts >= day) & (s.ts < day + DAY_S)
                if at.any():
                    out[s.name][at] = model.score(s.X[at])
        day += DAY_S
    info = {
        "fits": fits,
        "rows_per_fit_median": float(np.median(rows_per_fit)) if rows_per_fit else 0.0,
        "days_without_model": days_without,
    }
    return out, info


# -- the online model, with or without the extra channel ----------------------------------------


class _CoreWithBatch(ScoringCore):
    """The scoring core with one more channel: the batch score (NaN: no model in force),
    calibrated on its own (its rows come and go with the batch model)."""

    __slots__ = ("batch_calibrator", "extra")

    def __init__(self, names: tuple[str, ...], config: AnomalyConfig) -> None:
        super().__init__(names, 1, config)
        self.batch_calibrator = ScoreCalibrator(
            window=config.calibration_window, refresh_every=self.calibrator.refresh_every
        )
        self.extra = np.empty(0)

    def rows_to_change(self) -> int:
        """As the core's, the batch channel's calibration counted once it has scores (the
        model below ends a segment at the first one)."""
        rows = super().rows_to_change()
        if self.batch_calibrator.count:
            rows = min(rows, self.batch_calibrator.rows_to_refresh())
        return rows

    def _active(self) -> int:
        return len(self.channels) + (self.batch_calibrator.count > 0)

    def p_values(self, channels: np.ndarray) -> np.ndarray:
        inverse = (1.0 / np.maximum(self.calibrator.p_values(channels), _TINY)).sum(axis=1)
        count = np.full(channels.shape[0], float(len(self.channels)))
        use = ~np.isnan(self.extra)
        if self.batch_calibrator.size > 0 and use.any():  # once the channel has a calibration
            p = self.batch_calibrator.p_values(self.extra[use])
            inverse[use] += 1.0 / np.maximum(p, _TINY)
            count[use] += 1.0
        out: np.ndarray = np.minimum(1.0, count / inverse)
        return out

    def learn(self, raw, pending, keep, once, alpha):  # type: ignore[no-untyped-def]
        first_window = self.scorer.in_first_window
        self.scorer.learn(pending, keep)
        if not first_window:
            chosen = keep | once
            taken, capped = raw[chosen], once[chosen]
            if capped.any():
                cap = self.calibrator.score_at(alpha / self._active())
                taken = np.where(capped[:, None], np.minimum(taken, cap[None, :]), taken)
            self.calibrator.learn(taken, unscheduled=int(np.count_nonzero(capped)))
            column = self.extra[chosen]
            present = ~np.isnan(column)
            column, capped = column[present], capped[present]
            if capped.any():
                cap_batch = self.batch_calibrator.score_at(alpha / (len(self.channels) + 1))
                column = np.where(capped, np.minimum(column, cap_batch[0]), column)
            self.batch_calibrator.learn(column)
        self.learned += int(np.count_nonzero(keep))


class _WithBatch(ServiceAnomalyModel):
    """``ServiceAnomalyModel`` whose core carries the batch channel, looked up by event time."""

    def __init__(
        self, service: str, config: AnomalyConfig, names: tuple[str, ...], ts: np.ndarray,
        scores: np.ndarray,
    ) -> None:  # fmt: skip
        super().__init__(service, config)
        self._core = _CoreWithBatch(names, config)
        self._ts, self._batch = ts, scores
        # The index of the first row from each row on that has a batch score (n: none).
        valid = np.flatnonzero(~np.isnan(scores))
        self._next_scored = np.searchsorted(valid, np.arange(len(ts)))
        self._valid = np.append(valid, len(ts))

    def _rows_to_change(self, core, candidate, ts):  # type: ignore[no-untyped-def]
        rows = int(super()._rows_to_change(core, candidate, ts))
        at = self.events_seen  # every row is seen in order: the next row's index
        if not core.batch_calibrator.count and at < len(self._ts):
            first = int(self._valid[self._next_scored[at]])
            if first < len(self._ts):
                rows = min(rows, first - at + 1)
        return rows

    def _segment(self, core, candidate, X_all, ts, row0, out, learn):  # type: ignore[no-untyped-def]
        assert candidate is None
        at = np.searchsorted(self._ts, ts)
        core.extra = self._batch[at]
        return (yield from super()._segment(core, candidate, X_all, ts, row0, out, learn))


def run_online(series: Series, batch: np.ndarray | None, chunk: int) -> dict[str, np.ndarray]:
    """The model over every row (batches of ``chunk``): opened and resolved rows, episode
    starts, p-values."""
    config = AnomalyConfig()
    model: ServiceAnomalyModel
    if batch is None:
        model = ServiceAnomalyModel(series.name, config)
    else:
        model = _WithBatch(series.name, config, series.names, series.ts, batch)
    n = len(series.ts)
    opened, resolved = np.zeros(n, bool), np.zeros(n, bool)
    started, p = np.full(n, np.nan), np.ones(n)
    for a in range(0, n, chunk):
        rows = [dict(zip(series.names, r, strict=True)) for r in series.X[a : a + chunk].tolist()]
        v = model.observe_batch(rows, series.ts[a : a + chunk].tolist())
        b = a + len(rows)
        opened[a:b], resolved[a:b], started[a:b], p[a:b] = (
            v.alerts,
            v.resolved,
            v.started_s,
            v.p_values,
        )
    return {"opened": opened, "resolved": resolved, "started": started, "p": p}


def quality_of(series: Series, run: Mapping[str, np.ndarray]) -> AlertQuality:
    """Episode spans (firing to resolved) against the labels of the scored part."""
    n = len(series.ts)
    triples: list[tuple[int, str | None, str | None]] = []
    for i in np.flatnonzero(run["opened"] | run["resolved"]).tolist():
        status = "firing" if run["opened"][i] else "resolved"
        triples.append((i, status, repr(float(run["started"][i]))))
    spans = alert_spans(triples, n)
    shifted = [(a - series.scored_from, b - series.scored_from) for a, b in spans]
    return alert_quality(series.labels, shifted, sample_s=series.sample_s, tolerance=TOLERANCE)


# -- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    set_name: str
    report_group: str
    variant: Variant
    servers: tuple[str, ...]
    planted_seed: int
    data: Path


def run_job(job: Job) -> dict[str, Any]:
    started = time.perf_counter()
    if job.set_name == "asd":
        group = asd_series(job.data, job.servers)
        chunk = 288
    else:
        group = planted_series(job.planted_seed)
        chunk = 1440
    v = job.variant
    scores: dict[str, np.ndarray | None] = {s.name: None for s in group}
    fitted: list[dict[str, Any]] = []
    if v.rate is not None:
        subsets = [group] if v.pooled else [[s] for s in group]
        for subset in subsets:
            got, info = batch_scores(subset, v)
            scores.update(got)
            fitted.append(info)
    per: dict[str, AlertQuality] = {}
    coverage = []
    for s in group:
        batch = scores[s.name]
        if batch is not None and np.isnan(batch).all():
            batch = None  # never a model: the online model alone (checked below)
        run = run_online(s, batch, chunk)
        if batch is not None:
            coverage.append(float(np.mean(~np.isnan(batch[s.scored_from :]))))
        per[s.name] = quality_of(s, run)
    pooled = functools.reduce(operator.add, per.values())
    return {
        "set": job.set_name,
        "group": job.report_group,
        "variant": v.name,
        "sampling_seed": v.sampling_seed,
        "planted_seed": job.planted_seed,
        "quality": pooled.as_dict(),
        "per_service": {k: q.as_dict() for k, q in per.items()},
        "fits": fitted,
        "scored_rows_with_batch_score": float(np.mean(coverage)) if coverage else 0.0,
        "wall_s": time.perf_counter() - started,
    }


def check_equivalence(data: Path) -> None:
    """The harness with no batch score anywhere gives exactly the online model's verdicts,
    and with one, the same verdicts whatever the batch boundaries."""
    s = asd_series(data, ("omi-1",))[0]
    plain = run_online(s, None, 288)
    hooked = run_online(s, np.full(len(s.ts), np.nan), 97)
    scores, _ = batch_scores([s], Variant("check", rate=1.0, pooled=False))
    one, other = run_online(s, scores["omi-1"], 288), run_online(s, scores["omi-1"], 97)
    for key in ("opened", "resolved", "p"):
        if not np.array_equal(plain[key], hooked[key]):
            raise AssertionError(f"harness differs from the online model on {key}")
        if not np.array_equal(one[key], other[key]):
            raise AssertionError(f"the batch channel depends on batch boundaries ({key})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", default="asd,planted")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--sampling-seeds", default="0", help="for the variants that sample")
    parser.add_argument("--planted-seeds", default="18")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_check:
        check_equivalence(args.data)
        print("harness check: no batch score == the online model, exactly", file=sys.stderr)
    jobs = []
    for name in args.variants.split(","):
        base = VARIANTS[name]
        seeds = (
            [int(x) for x in args.sampling_seeds.split(",")]
            if base.rate not in (None, 1.0)
            else [0]
        )
        for seed in seeds:
            v = replace(base, sampling_seed=seed)
            if "asd" in args.sets:
                for label, servers in (("dev omi-1..6", DEV), ("held-out omi-7..12", HELD_OUT)):
                    jobs.append(Job("asd", label, v, servers, 0, args.data))
            if "planted" in args.sets:
                for ps in (int(x) for x in args.planted_seeds.split(",")):
                    jobs.append(Job("planted", f"seed {ps}", v, (), ps, args.data))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_job, jobs))
    print(
        f"{'set':<8} {'group':<19} {'variant':<17} {'seed':>4} {'ep P':>6} {'ep R':>6} "
        f"{'ep F1':>6} {'alerts':>6} {'caught':>9} {'pt F1':>6} {'false/sd':>8} "
        f"{'fits':>5} {'rows/fit':>8} {'cover':>6}"
    )
    for r in results:
        q = r["quality"]
        fits = sum(f["fits"] for f in r["fits"])
        rows = np.median([f["rows_per_fit_median"] for f in r["fits"]]) if r["fits"] else 0
        print(
            f"{r['set']:<8} {r['group']:<19} {r['variant']:<17} {r['sampling_seed']:>4} "
            f"{q['episode_precision']:>6.3f} {q['episode_recall']:>6.3f} {q['episode_f1']:>6.3f} "
            f"{q['alerts']:>6} {q['caught']:>4}/{q['segments']:<4} {q['f1']:>6.3f} "
            f"{q['false_per_service_day'] or 0:>8.3f} {fits:>5} {rows:>8.0f} "
            f"{r['scored_rows_with_batch_score']:>6.2f}"
        )
    print_summary(results)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


def print_summary(results: list[dict[str, Any]]) -> None:
    """Episode F1 per variant and report group (mean over sampling and planted seeds), and its
    change from the online model's."""
    cells: dict[tuple[str, str], list[float]] = {}
    for r in results:
        where = r["group"] if r["set"] == "asd" else "planted (mean of seeds)"
        cells.setdefault((r["variant"], where), []).append(r["quality"]["episode_f1"])
    wheres = list(dict.fromkeys(w for _, w in cells))
    print(f"\nepisode F1, mean over seeds (change from online)\n{'variant':<17}", end="")
    print("".join(f" {w:>26}" for w in wheres))
    for variant in dict.fromkeys(v for v, _ in cells):
        print(f"{variant:<17}", end="")
        for w in wheres:
            got = cells.get((variant, w))
            base = cells.get(("online", w))
            if got is None:
                print(f" {'':>26}", end="")
                continue
            mean = float(np.mean(got))
            delta = f" ({mean - float(np.mean(base)):+.3f})" if base else ""
            print(f" {f'{mean:.3f}{delta}':>26}", end="")
        print()


if __name__ == "__main__":
    raise SystemExit(main())
