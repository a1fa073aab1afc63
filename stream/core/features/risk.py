"""Incident-risk feature vectors: one per service per step of event time (pure).

A risk vector summarises one service's step (default one minute) of metric events:

- ``z:<metric>``: the step's mean value against the service's own trailing baseline (median
  and MAD of its last ``baseline_steps`` step means, default six hours), as a robust z-score,
  log-compressed (``sign(z)·log1p(|z|)``: an incident's z of 200 should not swamp a
  precursor's 3 in a linear model). 0 until ``min_baseline_steps`` steps are known;
- ``dz:<metric>``: that value now minus ``trend_steps`` steps ago: slow creep and drift;
- ``anomaly_ratio``: the step's highest anomaly score over its threshold (0 while warming up);
- ``anomaly_flagged``: the share of the step's events that reached their threshold;
- ``deploy_recent``: the share of the step's events sent with ``deploy_recent``;
- ``log_ratio``, ``log_new_error_templates``: the service's latest closed log window, if any.

Why a trailing baseline rather than the anomaly model's z-scores: that model keeps learning
and its seasonal baseline needs a day per bucket, so a drift that builds over half an hour (the
usual precursor) fades from its z while it builds. Measured on the incident simulator (12
services, 3 days, prequential, see docs/incident_risk.md), the trailing z-scores carry the
signal; the anomaly model's z-scores as extra features added PR-AUC 0.161 → 0.167 at a
third more cost per vector, so they are left out (its score ratio stays).

A step's vector is emitted when the service's first event of a later step arrives, so
vectors follow event time alone: replay and live detection build the same ones.

Cost: :meth:`RiskFeatureBuilder.add_batch` takes every service's rows of a batch at once, so
its numpy calls are per batch and per feature set, not per service: one pass sums each run
of rows that share a service, feature set and step, a Python loop per run folds it into the
service's open step, and the steps closed are turned into vectors together (the trailing
baseline is kept step by step, since each step's refresh must see the steps before it; the
z-scores, trends and shares are then computed as matrices). Vectors are
:class:`~models.incident.FeatureRow` rows, not dicts.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from models.anomaly import Deviations
from models.incident import FeatureRow
from stream.schemas import Evidence

__all__ = ["RiskFeatureBuilder", "RiskVector", "ServiceBatch", "compress"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RiskVector:
    """One service's step, summarised for the incident-risk model."""

    service: str
    ts_s: float
    """Event time of the step's last event."""
    features: FeatureRow
    """The features (a read-only mapping over one row; ``features.to_dict()`` for a dict)."""
    locate: Callable[[], Evidence]
    """Where the step's last event is stored (asked only when the vector alerts)."""

    @property
    def evidence(self) -> Evidence:
        """Where the step's last event is stored."""
        return self.locate()


class ServiceBatch(NamedTuple):
    """One service's rows of a batch, as :meth:`RiskFeatureBuilder.add_batch` takes them."""

    service: str
    indices: npt.NDArray[np.intp]
    """The rows' positions in the batch-wide arrays (ratios, flags, deploys, evidence)."""
    ts_s: Sequence[float] | FloatArray
    """Event time of each row, in order."""
    deviations: Sequence[Deviations]
    """The rows' values, one block per run of a feature set (row ranges relative to these
    rows, covering them in order)."""


def _compress(z: float) -> float:
    """:func:`compress` of one value (NaN stays NaN)."""
    return math.copysign(math.log1p(abs(z)), z)


def compress(z: FloatArray) -> FloatArray:
    """``sign(z)·log1p(|z|)``: keeps order and sign, tames the tails.

    Examples:
        >>> compress(np.array([0.0, 1.0, -200.0])).round(3).tolist()
        [0.0, 0.693, -5.303]
    """
    return np.sign(z) * np.log1p(np.abs(z))


def _compress_finite(z: FloatArray) -> FloatArray:
    """:func:`_compress` of every value, non-finite results as 0.

    ``math.log1p`` value by value: numpy's vectorised log1p may differ in the last bit, and
    vectors must not depend on the CPU numpy runs on.
    """
    logs = np.fromiter(map(math.log1p, np.abs(z).ravel().tolist()), np.float64, z.size)
    out = np.copysign(logs.reshape(z.shape), z)
    out[~np.isfinite(out)] = 0.0
    return out


def _column_medians(values: FloatArray) -> FloatArray:
    """``np.median(values, axis=0)`` for values without NaN, bit for bit, at half its cost
    (the same partition and mean of the middle two, without its generic checks).

    Examples:
        >>> _column_medians(np.array([[1.0, 4.0], [3.0, 2.0], [2.0, 9.0], [7.0, 0.0]])).tolist()
        [2.5, 3.0]
    """
    n = values.shape[0]
    k = n // 2
    if n % 2:
        middle: FloatArray = np.partition(values, k, axis=0)[k]
        return middle
    parted = np.partition(values, (k - 1, k), axis=0)
    out: FloatArray = (parted[k - 1] + parted[k]) / 2
    return out


_REFRESH_STEPS = 30
"""The trailing baseline's median and MAD are recomputed every this many steps."""

_SHARES = ("anomaly_ratio", "anomaly_flagged", "deploy_recent")
_LOG_FEATURES = 2  # log_ratio, log_new_error_templates (when the service has a log window)


@functools.cache
def _feature_names(
    names: tuple[str, ...], log: tuple[str, ...], smooth: bool = True
) -> tuple[str, ...]:
    """A vector's names for a feature set (and log features), built once per set."""
    prefixes = ("z", "dz", "sz") if smooth else ("z", "dz")
    return (*(f"{prefix}:{n}" for prefix in prefixes for n in names), *_SHARES, *log)


class _Step:
    """Running sums of one service's current step."""

    __slots__ = (
        "count",
        "deploys",
        "flagged",
        "index",
        "last_row",
        "last_ts",
        "locate",
        "names",
        "ratio",
        "v_count",
        "v_sum",
    )

    def __init__(self, index: int, names: tuple[str, ...], v_sum: FloatArray, v_count: FloatArray):
        self.index = index
        self.names = names
        self.v_sum = v_sum
        self.v_count = v_count
        self.count = 0
        self.ratio = 0.0
        self.flagged = 0
        self.deploys = 0
        self.last_ts = 0.0
        self.locate: Callable[[int], Evidence] | None = None
        self.last_row = 0


class _Located:
    """Evidence already looked up: where a snapshot's open step ended."""

    __slots__ = ("evidence",)

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence

    def __call__(self, row: int) -> Evidence:
        return self.evidence


class _Service:
    """One service's open step, its trailing step means, recent z-scores and log window."""

    __slots__ = ("baseline", "center", "filled", "history", "log", "names", "scale", "step")

    def __init__(self) -> None:
        self.step: _Step | None = None
        self.names: tuple[str, ...] = ()
        self.baseline: npt.NDArray[np.float32] = np.empty((0, 0), dtype=np.float32)
        """Ring of the last step means (float32: a baseline needs no more)."""
        self.filled = 0
        self.center: FloatArray | None = None
        self.scale: FloatArray = np.empty(0)
        self.history: list[FloatArray] = []
        """The last ``trend_steps`` z-score rows, oldest first."""
        self.log: dict[str, float] = {}

    def reset(self, names: tuple[str, ...], steps: int) -> None:
        """A new feature set: the baseline starts again (and the trend: see ``_close_all``)."""
        self.names = names
        self.baseline = np.full((steps, len(names)), np.nan, dtype=np.float32)
        self.filled = 0
        self.center = None


class _Close(NamedTuple):
    """A step closed by a batch, with the service it belongs to."""

    service: str
    state: _Service
    step: _Step


@dataclass
class _Layout:
    """A batch's services in row order (those with rows): each one's first row, state and
    open step, and its deviations blocks (feature sets) with their first rows."""

    states: list[_Service] = field(default_factory=list)
    live: list[ServiceBatch] = field(default_factory=list)
    firsts: list[int] = field(default_factory=list)
    block_starts: list[int] = field(default_factory=list)
    block_state: list[int] = field(default_factory=list)
    """Per block, the index of its service in ``states``."""
    block_names: list[tuple[str, ...]] = field(default_factory=list)
    open_rows: list[int] = field(default_factory=list)
    """First rows of the services with an open step, and (``open_steps``) its index."""
    open_steps: list[int] = field(default_factory=list)
    total: int = 0


class _Runs(NamedTuple):
    """Per run (rows of one service, block and step): what it adds to its step."""

    step: list[int]
    block: list[int]
    rows: list[int]
    sums: list[FloatArray]
    counts: list[FloatArray]
    ratio_max: list[float]
    flags: list[int]
    deploys: list[int]
    last_ts: list[float]
    last_row: list[int]


class RiskFeatureBuilder:
    """Builds risk vectors from the metric pipeline's per-service verdicts.

    Args:
        step_s: Event-time length of a step; one vector per service per step.
        trend_steps: How many steps back ``dz:`` features compare with.

    Examples:
        >>> builder = RiskFeatureBuilder(step_s=60.0, trend_steps=2)
        >>> ev = Evidence(topic="t", partition=0, offset=0)
        >>> def rows(t, z, value):
        ...     dev = Deviations(0, 1, ("cpu",), np.array([[z]]), np.array([[value]]))
        ...     return builder.add("api", np.array([t]), [dev], np.array([0.5]),
        ...                        np.array([False]), np.array([False]), lambda i: ev)
        >>> [rows(t, z, 50.0) for t, z in [(0, 1.0), (30, 1.0), (60, 3.0)]][:2]
        [[], []]
        >>> (vector,) = rows(120, 9.0, 50.0)
        >>> vector.ts_s, vector.features["z:cpu"], vector.features["anomaly_ratio"]
        (60.0, 0.0, 0.5)
    """

    def __init__(
        self,
        *,
        step_s: float = 60.0,
        trend_steps: int = 15,
        smooth_steps: int = 5,
        baseline_steps: int = 360,
        min_baseline_steps: int = 30,
    ) -> None:
        if step_s <= 0 or trend_steps < 1 or not 1 <= min_baseline_steps <= baseline_steps:
            raise ValueError(
                "need step_s > 0, trend_steps >= 1 and 1 <= min_baseline_steps <= baseline_steps"
            )
        self.step_s = step_s
        self.trend_steps = trend_steps
        self.smooth_steps = max(0, min(smooth_steps, trend_steps))
        self.baseline_steps = baseline_steps
        self.min_baseline_steps = min_baseline_steps
        self._services: dict[str, _Service] = {}

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, service: object) -> bool:
        """Whether this builder holds ``service`` (saw its metrics, and it was not forgotten)."""
        return service in self._services

    def add(
        self,
        service: str,
        ts_s: FloatArray,
        deviations: Sequence[Deviations],
        ratios: FloatArray,
        flagged: npt.NDArray[np.bool_],
        deploys: npt.NDArray[np.bool_],
        evidence: Callable[[int], Evidence],
    ) -> list[RiskVector]:
        """Fold one service's rows of a batch in; return the vectors of the steps they closed.

        Args:
            service: The service.
            ts_s: Event time of each row, in order.
            deviations: The rows' z-scores (row ranges relative to these rows).
            ratios: Each row's anomaly score over its threshold (0 while warming up).
            flagged: Whether each row's score reached its threshold.
            deploys: Whether each row was sent with ``deploy_recent``.
            evidence: Where row ``i`` is stored (asked only for a step's last row, and only if
                its vector alerts: it must stay valid until then).
        """
        ts = np.asarray(ts_s, dtype=np.float64)
        rows = ServiceBatch(service, np.arange(ts.size), ts, deviations)
        return self.add_batch([rows], ratios, flagged, deploys, evidence)

    def add_batch(
        self,
        batch: Sequence[ServiceBatch],
        ratios: FloatArray,
        flagged: npt.NDArray[np.bool_],
        deploys: npt.NDArray[np.bool_],
        evidence: Callable[[int], Evidence],
    ) -> list[RiskVector]:
        """Fold every service's rows of a batch in; return the vectors of the steps they closed
        (service by service in ``batch`` order, each service's in step order): the same
        vectors as :meth:`add` service by service.

        Args:
            batch: Each service's rows (a service at most once).
            ratios: Each batch row's anomaly score over its threshold (0 while warming up).
            flagged: Whether each batch row's score reached its threshold.
            deploys: Whether each batch row was sent with ``deploy_recent``.
            evidence: Where batch row ``i`` is stored (asked only for a step's last row, and
                only if its vector alerts: it must stay valid until then).
        """
        layout = self._layout(batch)
        if layout is None:
            return []
        live, total = layout.live, layout.total
        ts = np.fromiter(itertools.chain.from_iterable(r.ts_s for r in live), np.float64, total)
        index = np.concatenate([r.indices for r in live])
        steps = self._step_indices(ts, layout)
        # Runs: rows of one service, feature-set block and step (steps only go forward, so a
        # step's rows are one run). Each run is summed at once, all services together.
        change = np.empty(total, dtype=bool)
        change[0] = True
        np.not_equal(steps[1:], steps[:-1], out=change[1:])
        change[layout.block_starts] = True
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], total)
        lengths = ends - starts
        run_block = (np.searchsorted(layout.block_starts, starts, side="right") - 1).tolist()
        run_sums, run_counts = self._value_sums(
            batch, layout.block_names, run_block, starts, lengths, len(layout.block_starts)
        )
        runs = _Runs(
            step=steps[starts].tolist(),
            block=run_block,
            rows=lengths.tolist(),
            sums=run_sums,
            counts=run_counts,
            ratio_max=np.maximum.reduceat(ratios[index], starts).tolist(),
            flags=np.add.reduceat(flagged[index], starts).tolist(),
            deploys=np.add.reduceat(deploys[index], starts).tolist(),
            last_ts=ts[ends - 1].tolist(),
            last_row=index[ends - 1].tolist(),
        )
        closes = self._fold_runs(layout, runs, evidence)
        return self._close_all(closes) if closes else []

    def _layout(self, batch: Sequence[ServiceBatch]) -> _Layout | None:
        """Where each service's rows and deviations blocks start in the batch's rows, and
        its state (created for a new service); None for a batch without rows."""
        layout = _Layout()
        for rows in batch:
            state = self._services.get(rows.service)
            if state is None:
                state = self._services[rows.service] = _Service()
            n = len(rows.ts_s)
            if not n:
                continue
            if state.step is not None:
                layout.open_rows.append(layout.total)
                layout.open_steps.append(state.step.index)
            layout.firsts.append(layout.total)
            for dev in rows.deviations:
                layout.block_starts.append(layout.total + dev.start)
                layout.block_state.append(len(layout.states))
                layout.block_names.append(dev.names)
            layout.states.append(state)
            layout.live.append(rows)
            layout.total += n
        return layout if layout.total else None

    def _step_indices(self, ts: FloatArray, layout: _Layout) -> IntArray:
        """Each row's step; an event older than its service's open step (out of order) joins
        it: steps never go back."""
        steps = np.floor_divide(ts, self.step_s).astype(np.int64)
        if layout.open_rows:
            steps[layout.open_rows] = np.maximum(steps[layout.open_rows], layout.open_steps)
        back = steps[1:] < steps[:-1]
        back[np.array(layout.firsts[1:], dtype=np.intp) - 1] = False  # a new service may go back
        if back.any():
            for a, b in itertools.pairwise([*layout.firsts, layout.total]):
                np.maximum.accumulate(steps[a:b], out=steps[a:b])
        return steps

    @staticmethod
    def _fold_runs(
        layout: _Layout, runs: _Runs, evidence: Callable[[int], Evidence]
    ) -> list[_Close]:
        """Each run into its service's open step, or a new one (the one it replaces closes)."""
        services = [rows.service for rows in layout.live]
        closes: list[_Close] = []
        for r, (step_index, block, count) in enumerate(
            zip(runs.step, runs.block, runs.rows, strict=True)
        ):
            owner = layout.block_state[block]
            state, names = layout.states[owner], layout.block_names[block]
            step = state.step
            if step is not None and (step.index != step_index or step.names != names):
                state.step = None
                closes.append(_Close(services[owner], state, step))
                step = None
            if step is None:  # the usual case in a backlog: a run is a whole step
                step = state.step = _Step(step_index, names, runs.sums[r], runs.counts[r])
            else:
                step.v_sum = step.v_sum + runs.sums[r]
                step.v_count = step.v_count + runs.counts[r]
            step.count += count
            step.ratio = max(step.ratio, runs.ratio_max[r])
            step.flagged += int(runs.flags[r])
            step.deploys += int(runs.deploys[r])
            step.last_ts = runs.last_ts[r]
            step.locate, step.last_row = evidence, runs.last_row[r]
        return closes

    def _value_sums(
        self,
        batch: Sequence[ServiceBatch],
        block_names: list[tuple[str, ...]],
        run_block: list[int],
        starts: npt.NDArray[np.intp],
        lengths: npt.NDArray[np.intp],
        blocks: int,
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """Each run's sums of values and counts of present (not NaN) values, by feature set."""
        values = [dev.values for rows in batch if len(rows.ts_s) for dev in rows.deviations]
        sets: dict[tuple[str, ...], list[int]] = {}
        for block, names in enumerate(block_names):
            sets.setdefault(names, []).append(block)
        run_sums: list[FloatArray] = []
        run_counts: list[FloatArray] = []
        if len(sets) > 1:
            run_sums = [np.empty(0)] * len(run_block)
            run_counts = [np.empty(0)] * len(run_block)
        for names, members in sets.items():
            if len(sets) == 1:
                runs = np.arange(len(run_block))
                local = starts
            else:  # the set's runs, and where they start among the set's rows
                in_set = np.zeros(blocks, dtype=bool)
                in_set[members] = True
                runs = np.flatnonzero(in_set[run_block])
                local = np.cumsum(lengths[runs]) - lengths[runs]
            rows = (
                values[members[0]]
                if len(members) == 1
                else np.concatenate([values[b] for b in members])
            )
            sums = np.add.reduceat(rows, local, axis=0)
            if np.isnan(sums).any():  # a value was missing: count the rest
                present = ~np.isnan(rows)
                sums = np.add.reduceat(np.where(present, rows, 0.0), local, axis=0)
                counts = np.add.reduceat(present, local, axis=0).astype(np.float64)
            else:
                counts = np.repeat(lengths[runs].astype(np.float64)[:, None], len(names), axis=1)
            if len(sets) == 1:
                return list(sums), list(counts)
            for r, row_sum, row_count in zip(runs.tolist(), sums, counts, strict=True):
                run_sums[r], run_counts[r] = row_sum, row_count
        return run_sums, run_counts

    def set_log_window(self, service: str, ratio: float, new_error_templates: int) -> None:
        """The service's latest closed log window: its score over threshold and new errors."""
        state = self._services.get(service)
        if state is None:
            state = self._services[service] = _Service()
        state.log = {
            "log_ratio": min(ratio, 10.0) if math.isfinite(ratio) else 0.0,
            "log_new_error_templates": float(new_error_templates),
        }

    def forget(self, service: str) -> None:
        """Drop a service's state (its partition went to another detector)."""
        self._services.pop(service, None)

    def export(self, services: Iterable[str]) -> dict[str, _Service]:
        """These services' state, for a snapshot (live objects: pickle them). An open step's
        evidence is looked up now: the batch it points into is gone once the snapshot is."""
        out: dict[str, _Service] = {}
        for service in services:
            state = self._services.get(service)
            if state is None:
                continue
            step = state.step
            if step is not None and step.locate is not None and type(step.locate) is not _Located:
                step.locate = _Located(step.locate(step.last_row))
            out[service] = state
        return out

    def install(self, states: Mapping[str, _Service]) -> None:
        """Take over services' state from :meth:`export` (replacing their own)."""
        self._services.update(states)

    def _close_all(self, closes: list[_Close]) -> list[RiskVector]:
        """The vectors of closed steps, in order: each service's baseline and trend history
        are kept step by step, the values are computed per feature set as matrices."""
        sets: dict[tuple[str, ...], list[int]] = {}
        for j, close in enumerate(closes):
            sets.setdefault(close.step.names, []).append(j)
        means = _step_means(closes, sets)
        baselines, fresh = self._baselines(closes, means)
        z_rows = _z_rows(len(closes), sets, means, baselines)
        past_rows, smooth_rows = self._trends(closes, z_rows, fresh)
        k = self.smooth_steps
        vectors: list[RiskVector] = [None] * len(closes)  # type: ignore[list-item]
        for names, members in sets.items():
            width = len(names)
            steps = [closes[j].step for j in members]
            counts = np.array([s.count for s in steps], dtype=np.float64)
            blocks = 3 if k else 2
            rows = np.empty((len(members), blocks * width + len(_SHARES) + _LOG_FEATURES))
            rows[:, :width] = np.array([z_rows[j] for j in members])
            np.subtract(
                rows[:, :width],
                np.array([past_rows[j] for j in members]),
                out=rows[:, width : 2 * width],
            )
            if k:
                rows[:, 2 * width : 3 * width] = np.array([smooth_rows[j] for j in members])
            at = blocks * width
            rows[:, at] = np.minimum([s.ratio for s in steps], 10.0)
            rows[:, at + 1] = np.array([s.flagged for s in steps], np.float64) / counts
            rows[:, at + 2] = np.array([s.deploys for s in steps], np.float64) / counts
            used = at + len(_SHARES)
            for i, j in enumerate(members):
                service, state, step = closes[j]
                log = state.log
                if log:
                    rows[i, used : used + len(log)] = list(log.values())
                row = rows[i, : used + len(log)]
                assert step.locate is not None
                vectors[j] = RiskVector(
                    service,
                    step.last_ts,
                    FeatureRow(_feature_names(names, tuple(log), bool(k)), row),
                    functools.partial(step.locate, step.last_row),
                )
        return vectors

    def _baselines(
        self, closes: list[_Close], means: list[FloatArray]
    ) -> tuple[list[tuple[FloatArray, FloatArray] | None], list[bool]]:
        """Step by step (a refresh of the baseline must see the steps closed before it):
        each step's baseline (center, scale; None while too few steps are known), and whether
        its service's feature set changed (its history starts over)."""
        baselines: list[tuple[FloatArray, FloatArray] | None] = [None] * len(closes)
        fresh = [False] * len(closes)
        ring = self.baseline_steps
        for j, (_, state, step) in enumerate(closes):
            if state.names != step.names:
                state.reset(step.names, ring)
                fresh[j] = True
            known = min(state.filled, ring)
            if known >= self.min_baseline_steps:
                if state.center is None or state.filled % _REFRESH_STEPS == 0:
                    self._refresh(state, known)
                assert state.center is not None
                baselines[j] = (state.center, state.scale)
            state.baseline[state.filled % ring] = means[j]
            state.filled += 1
        return baselines, fresh

    def _trends(
        self, closes: list[_Close], z_rows: list[FloatArray], fresh: list[bool]
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """Step by step again: each step's z-scores ``trend_steps`` steps ago (``dz`` is now
        minus those) and their mean over the last ``smooth_steps``."""
        past_rows: list[FloatArray] = [np.empty(0)] * len(closes)
        smooth_rows: list[FloatArray] = [np.empty(0)] * len(closes)
        k = self.smooth_steps
        for j, (_, state, _) in enumerate(closes):
            if fresh[j]:
                state.history = []
            history, z_row = state.history, z_rows[j]
            past_rows[j] = history[0] if history else z_row
            history.append(z_row)
            if len(history) > self.trend_steps:
                del history[0]
            if k:
                recent = history[-k:]
                smooth_rows[j] = sum(recent[1:], recent[0]) / len(recent)
        return past_rows, smooth_rows

    def _refresh(self, state: _Service, known: int) -> None:
        """The trailing baseline's median and scale (MAD), from the ``known`` step means held.

        The baseline moves slowly: it is recomputed every ``_REFRESH_STEPS`` steps, not at
        each.
        """
        window = state.baseline[:known].astype(np.float64)
        if np.isnan(window).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no baseline
                median = np.nanmedian(window, axis=0)
                mad = np.nanmedian(np.abs(window - median), axis=0)
        else:  # the usual case, ten times faster
            median = _column_medians(window)
            mad = _column_medians(np.abs(window - median))
        state.center = median
        state.scale = np.maximum(1.4826 * mad, 1e-3 * np.abs(median) + 1e-9)


def _step_means(closes: list[_Close], sets: dict[tuple[str, ...], list[int]]) -> list[FloatArray]:
    """Each closed step's mean per feature (NaN where no value came), one matrix per set."""
    means: list[FloatArray] = [np.empty(0)] * len(closes)
    for members in sets.values():
        v_sum = np.array([closes[j].step.v_sum for j in members])
        v_count = np.array([closes[j].step.v_count for j in members])
        mean = np.full(v_sum.shape, math.nan)
        np.divide(v_sum, v_count, out=mean, where=v_count != 0)
        for j, row in zip(members, mean, strict=True):
            means[j] = row
    return means


def _z_rows(
    n: int,
    sets: dict[tuple[str, ...], list[int]],
    means: list[FloatArray],
    baselines: list[tuple[FloatArray, FloatArray] | None],
) -> list[FloatArray]:
    """Each step's compressed z-scores against its baseline (0 while it has none)."""
    z_rows: list[FloatArray] = [np.empty(0)] * n
    for names, members in sets.items():
        z = np.zeros((len(members), len(names)))
        known = [(i, b) for i, j in enumerate(members) if (b := baselines[j]) is not None]
        if known:
            center = np.array([b[0] for _, b in known])
            scale = np.array([b[1] for _, b in known])
            mean = np.array([means[members[i]] for i, _ in known])
            z[[i for i, _ in known]] = _compress_finite((mean - center) / scale)
        for j, row in zip(members, z, strict=True):
            z_rows[j] = row
    return z_rows
