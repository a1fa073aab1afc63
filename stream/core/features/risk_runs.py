"""A batch's rows folded into their services' steps of event time.

Rows of one service, feature set and step form a run; every run of the batch is summed in
one pass, all services together, and a Python loop per run folds it into its service's open
step (a run of a later step closes the open one). With ``folded`` sums (see
:mod:`stream.core.features.risk_sums`) a step's sums are the same floats however batches cut
its rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from models.anomaly import Deviations
from stream.core.features.risk_steps import Closed, ServiceSteps, Step
from stream.core.features.risk_sums import folded_sums
from stream.schemas import Evidence

__all__ = ["Layout", "Runs", "ServiceBatch", "fold_runs", "layout_of", "runs_of"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ServiceBatch(NamedTuple):
    """One service's rows of a batch, as
    :meth:`~stream.core.features.risk.RiskFeatureBuilder.add_batch` takes them."""

    service: str
    indices: npt.NDArray[np.intp]
    """The rows' positions in the batch-wide arrays (ratios, flags, deploys, evidence)."""
    ts_s: Sequence[float] | FloatArray
    """Event time of each row, in order."""
    deviations: Sequence[Deviations]
    """The rows' values, one block per run of a feature set (row ranges relative to these
    rows, covering them in order)."""


@dataclass
class Layout:
    """A batch's services in row order (those with rows): each one's first row, state and
    open step, and its deviations blocks (feature sets) with their first rows."""

    states: list[ServiceSteps] = field(default_factory=list)
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


class Runs(NamedTuple):
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
    first_row: list[int]
    folded: bool = False
    """Whether a run that continues its service's open step has that step's sums in its
    own (``folded_sums``): they replace the step's, not add to them."""


def layout_of(services: dict[str, ServiceSteps], batch: Sequence[ServiceBatch]) -> Layout | None:
    """Where each service's rows and deviations blocks start in the batch's rows, and
    its state (created for a new service); None for a batch without rows."""
    layout = Layout()
    for rows in batch:
        state = services.get(rows.service)
        if state is None:
            state = services[rows.service] = ServiceSteps()
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


def runs_of(
    batch: Sequence[ServiceBatch],
    layout: Layout,
    ratios: FloatArray,
    flagged: npt.NDArray[np.bool_],
    deploys: npt.NDArray[np.bool_],
    step_s: float,
    *,
    folded: bool = False,
) -> Runs:
    """The batch's runs: rows of one service, feature-set block and step (steps only go
    forward, so a step's rows are one run), each summed at once, all services together;
    ``folded``: each summed left to right from its open step's sums (a step's rows then
    stay one run across blocks of the same feature set)."""
    live, total = layout.live, layout.total
    ts = np.fromiter(itertools.chain.from_iterable(r.ts_s for r in live), np.float64, total)
    index = np.concatenate([r.indices for r in live])
    steps = step_indices(ts, layout, step_s)
    change = np.empty(total, dtype=bool)
    change[0] = True
    np.not_equal(steps[1:], steps[:-1], out=change[1:])
    change[_run_breaks(layout, folded)] = True
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], total)
    lengths = ends - starts
    run_block = (np.searchsorted(layout.block_starts, starts, side="right") - 1).tolist()
    opened = _opened_runs(layout, starts, steps, run_block) if folded else None
    run_sums, run_counts = _value_sums(
        batch, layout.block_names, run_block, starts, lengths, len(layout.block_starts), opened
    )
    return Runs(
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
        first_row=index[starts].tolist(),
        folded=folded,
    )


def _run_breaks(layout: Layout, folded: bool) -> list[int]:
    """The rows where a block starts a run: every block, or (``folded``) a service's first
    and those whose feature set differs from the block before."""
    if not folded:
        return layout.block_starts
    names, owner = layout.block_names, layout.block_state
    return [
        start
        for b, start in enumerate(layout.block_starts)
        if b == 0 or owner[b] != owner[b - 1] or names[b] != names[b - 1]
    ]


def _opened_runs(
    layout: Layout, starts: npt.NDArray[np.intp], steps: IntArray, run_block: list[int]
) -> dict[int, tuple[FloatArray, FloatArray]]:
    """Run index -> the sums and counts of the open step it continues (a service's first
    run, of the open step's index and feature set)."""
    opened: dict[int, tuple[FloatArray, FloatArray]] = {}
    for row in layout.open_rows:
        run = int(np.searchsorted(starts, row))
        block = run_block[run]
        step = layout.states[layout.block_state[block]].step
        names = layout.block_names[block]
        if step is not None and step.index == steps[row] and step.names == names:
            opened[run] = (step.v_sum, step.v_count)
    return opened


def step_indices(ts: FloatArray, layout: Layout, step_s: float) -> IntArray:
    """Each row's step; an event older than its service's open step (out of order) joins
    it: steps never go back."""
    steps = np.floor_divide(ts, step_s).astype(np.int64)
    if layout.open_rows:
        steps[layout.open_rows] = np.maximum(steps[layout.open_rows], layout.open_steps)
    back = steps[1:] < steps[:-1]
    back[np.array(layout.firsts[1:], dtype=np.intp) - 1] = False  # a new service may go back
    if back.any():
        for a, b in itertools.pairwise([*layout.firsts, layout.total]):
            np.maximum.accumulate(steps[a:b], out=steps[a:b])
    return steps


def fold_runs(layout: Layout, runs: Runs, evidence: Callable[[int], Evidence]) -> list[Closed]:
    """Each run into its service's open step, or a new one (the one it replaces closes)."""
    services = [rows.service for rows in layout.live]
    closes: list[Closed] = []
    for r, (step_index, block, count) in enumerate(
        zip(runs.step, runs.block, runs.rows, strict=True)
    ):
        owner = layout.block_state[block]
        state, names = layout.states[owner], layout.block_names[block]
        step = state.step
        if step is not None and (step.index != step_index or step.names != names):
            state.step = None
            closes.append(Closed(services[owner], state, step, runs.first_row[r]))
            step = None
        if step is None:  # the usual case in a backlog: a run is a whole step
            step = state.step = Step(step_index, names, runs.sums[r], runs.counts[r])
        elif runs.folded:  # its sums started from the step's
            step.v_sum, step.v_count = runs.sums[r], runs.counts[r]
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
    batch: Sequence[ServiceBatch],
    block_names: list[tuple[str, ...]],
    run_block: list[int],
    starts: npt.NDArray[np.intp],
    lengths: npt.NDArray[np.intp],
    blocks: int,
    opened: dict[int, tuple[FloatArray, FloatArray]] | None = None,
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Each run's sums of values and counts of present (not NaN) values, by feature set;
    with ``opened`` (run -> its open step's sums and counts), folded left to right
    (:func:`~stream.core.features.risk_sums.folded_sums`)."""
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
        if opened is not None:
            here = {i: opened[r] for i, r in enumerate(runs.tolist()) if r in opened}
            folded_s, folded_c = folded_sums(rows, local, lengths[runs], here)
            if len(sets) == 1:
                return list(folded_s), list(folded_c)
            for r, row_sum, row_count in zip(runs.tolist(), folded_s, folded_c, strict=True):
                run_sums[r], run_counts[r] = row_sum, row_count
            continue
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
