"""Level shifts: a metric that moved and stayed there is the new normal, quickly.

Inside an open episode, a metric that stays at least ``min_effect`` robust sds off its
expected value, on one side, for ``shift_after`` samples in a row has changed level: its
baseline moves by the median of those deviations (the seasonal profile keeps its shape and
the robust spread its width), so the episode resolves and later samples are judged against
the new level. It is a one-sided CUSUM with a
reference of ``min_effect`` and a run rule in place of a sum: robust to one outlier inside the
run, and it needs no constant fitted to the data.

The median of ``shift_after`` samples places the new level only roughly (to about half a
noise sd at 5 samples, which doubles the false alarms at 3 sds); the next
``4 * shift_after`` samples settle it: their median deviation is added once they are in.

The level before a shift is remembered. A value near it is not an anomaly (a burst or a
temporary shift returning is recovery, not a new problem), and a return that lasts
``shift_after`` samples moves the baseline back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.anomaly.episodes import EpisodeMarks
from models.anomaly.explain import FeatureContribution

__all__ = ["EpisodeMoves", "LevelShifts", "ShiftScan", "note_episode_moves", "run_lengths"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
EpisodeMoves = dict[str, tuple[float, float]]
"""Features whose level moved during the open episode: (level before, level now)."""


def run_lengths(flags: BoolArray, carry: IntArray) -> IntArray:
    """Consecutive true rows ending at each row, per column, continuing ``carry``.

    Examples:
        >>> flags = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
        >>> run_lengths(flags, np.array([2, 0])).tolist()
        [[3, 0], [4, 1], [0, 2]]
    """
    n = flags.shape[0]
    index = np.arange(n)[:, None]
    last_false = np.maximum.accumulate(np.where(flags, -1, index), axis=0)
    out: IntArray = np.where(last_false < 0, index + 1 + carry[None, :], index - last_false)
    return out


@dataclass(frozen=True, slots=True)
class ShiftScan:
    """The first row of a run at which some feature's level moves, and the moves."""

    row: int
    moves: tuple[tuple[str, float], ...]
    """(feature, delta) pairs: add ``delta`` to the feature's baseline."""


class LevelShifts:
    """Run counters, recent deviations and remembered levels of one model's features.

    Args:
        shift_after: Samples in a row a feature must stay off (or back) before it moves.
        min_effect: Robust sds that count as off.

    Examples:
        >>> shifts = LevelShifts(shift_after=3, min_effect=3.0)
        >>> z = np.array([[0.0], [5.0], [5.2], [4.9], [0.1]])
        >>> dev = z * 10.0
        >>> scan = shifts.scan(z, z, None, np.ones(5, dtype=bool), np.zeros(1), dev, ("lat",))
        >>> scan.row, [(n, round(d, 1)) for n, d in scan.moves]
        (3, [('lat', 50.0)])
    """

    def __init__(self, shift_after: int, min_effect: float) -> None:
        self.shift_after = shift_after
        self.min_effect = min_effect
        self._up: dict[str, int] = {}
        self._down: dict[str, int] = {}
        self._back: dict[str, int] = {}
        self._recent: dict[str, FloatArray] = {}
        self._settling: dict[str, FloatArray] = {}
        self.moved: dict[str, float] = {}
        """Feature -> the delta of its latest shift (what a return undoes)."""

    def effective(
        self, z: FloatArray, names: Sequence[str], scales: FloatArray
    ) -> tuple[FloatArray, FloatArray | None]:
        """``z`` measured from the nearer of a feature's levels, and from its previous one.

        Returns:
            ``(z_eff, z_prev)``: ``z_prev`` is None when no feature remembers a level.
        """
        if not self.moved:
            return z, None
        back = np.array([self.moved.get(n, np.nan) for n in names])
        z_prev = z + back / scales
        remembered = ~np.isnan(back)
        nearer = remembered[None, :] & (np.abs(z_prev) < np.abs(z))
        return np.where(nearer, z_prev, z), np.where(remembered[None, :], z_prev, np.nan)

    def scan(
        self,
        z_eff: FloatArray,
        z: FloatArray,
        z_prev: FloatArray | None,
        in_episode: BoolArray,
        signs: FloatArray,
        deviations: FloatArray,
        names: Sequence[str],
    ) -> ShiftScan | None:
        """The first row where a feature's level moves (nothing changes here).

        Args:
            z_eff: Robust z from the nearer level (``effective``), rows by features.
            z: Robust z from the current level.
            z_prev: Robust z from the remembered previous level (NaN where none), or None.
            in_episode: Rows of an open episode.
            signs: Per feature, +1 for metrics that alert on rises, -1 on drops, 0 both.
            deviations: Value minus expected value, in the metric's units.
            names: The features.
        """
        if self.quiet(in_episode):
            return None
        up, down, back = self._runs(z_eff, z, z_prev, in_episode, signs, names)
        need = self.shift_after
        hit = (up >= need) | (down >= need) | (back >= need)
        settled = self._settled(deviations, names)
        rows = np.flatnonzero(hit.any(axis=1) | settled.any(axis=1))
        if rows.size == 0:
            return None
        row = int(rows[0])
        history = self._history(deviations[: row + 1], names)
        moves = []
        for j in np.flatnonzero(hit[row] | settled[row]).tolist():
            name = names[j]
            if back[row, j] >= need:
                moves.append((name, -self.moved[name]))
            elif hit[row, j]:
                moves.append((name, float(np.nanmedian(history[-need:, j]))))
            else:
                seen = self._settle_values(name, deviations[: row + 1, j])
                moves.append((name, float(np.median(seen))))
        return ShiftScan(row, tuple(moves))

    def advance(
        self,
        z_eff: FloatArray,
        z: FloatArray,
        z_prev: FloatArray | None,
        in_episode: BoolArray,
        signs: FloatArray,
        deviations: FloatArray,
        names: Sequence[str],
        scan: ShiftScan | None,
    ) -> None:
        """Take in rows (the whole run, or up to and including ``scan.row``) and its moves."""
        if self.quiet(in_episode):  # no run can grow: every counter is 0, nothing to keep
            self.rest()
            return
        up, down, back = self._runs(z_eff, z, z_prev, in_episode, signs, names)
        history = self._history(deviations, names)
        keep = self.shift_after - 1
        moved_names = {name for name, _ in scan.moves} if scan is not None else set()
        for j, name in enumerate(names):
            if name in self._settling and name not in moved_names:
                self._settling[name] = self._settle_values(name, deviations[:, j])
            if name in moved_names:
                self._up.pop(name, None)
                self._down.pop(name, None)
                self._back.pop(name, None)
                self._recent.pop(name, None)
                continue
            self._up[name], self._down[name] = int(up[-1, j]), int(down[-1, j])
            self._back[name] = int(back[-1, j])
            self._recent[name] = history[history.shape[0] - keep :, j].copy()
        for name, delta in scan.moves if scan is not None else ():
            if name in self._settling:  # the settled level: a correction of the last move
                del self._settling[name]
                self.moved[name] = self.moved.get(name, 0.0) + delta
            elif name in self.moved and abs(delta + self.moved[name]) < 1e-12:
                del self.moved[name]  # back where it was
            else:
                self.moved[name] = delta
                self._settling[name] = np.empty(0)

    def quiet(self, in_episode: BoolArray | None) -> bool:
        """Nothing to look for in rows (``in_episode``: which are in an episode; None: none
        is): no episode, no level to return to or settle. (The common case, answered without
        a pass over the rows.) :meth:`scan` finds nothing in them and :meth:`advance` is
        :meth:`rest`."""
        return self.shift_after == 0 or not (
            self.moved
            or self._settling
            or (in_episode is not None and np.count_nonzero(in_episode))
        )

    def rest(self) -> None:
        """:meth:`advance` through rows where :meth:`quiet` holds: every run counter is 0."""
        self._up.clear()
        self._down.clear()
        self._back.clear()
        self._recent.clear()

    def _settle_values(self, name: str, deviations: FloatArray) -> FloatArray:
        """The deviations a settling feature has collected, with these rows'."""
        new = deviations[~np.isnan(deviations)]
        return np.concatenate([self._settling[name], new])[: 4 * self.shift_after]

    def _settled(self, deviations: FloatArray, names: Sequence[str]) -> BoolArray:
        """Per row and feature: the row at which a settling feature has all its samples."""
        out = np.zeros(deviations.shape, dtype=bool)
        for j, name in enumerate(names):
            have = self._settling.get(name)
            if have is None:
                continue
            count = have.size + np.cumsum(~np.isnan(deviations[:, j]))
            first = np.flatnonzero(count >= 4 * self.shift_after)
            if first.size:
                out[first[0], j] = True
        return out

    def _runs(
        self,
        z_eff: FloatArray,
        z: FloatArray,
        z_prev: FloatArray | None,
        in_episode: BoolArray,
        signs: FloatArray,
        names: Sequence[str],
    ) -> tuple[IntArray, IntArray, IntArray]:
        e = self.min_effect
        # Only inside an episode: outside one, a metric that wanders off (load drifting for an
        # hour, in a direction that cannot alert) is left to the baselines' own pace; moving a
        # whole seasonal profile on it would bias every hour of the day.
        eligible = in_episode[:, None]
        up = run_lengths(eligible & (z_eff >= e), self._carry(self._up, names))
        down = run_lengths(eligible & (z_eff <= -e), self._carry(self._down, names))
        if z_prev is None:
            back = np.zeros_like(up)
        else:
            returned = (np.abs(z_prev) < e) & (np.abs(z) >= e)
            back = run_lengths(returned, self._carry(self._back, names))
        return up, down, back

    @staticmethod
    def _carry(counts: dict[str, int], names: Sequence[str]) -> IntArray:
        return np.array([counts.get(n, 0) for n in names], dtype=np.int64)

    def _history(self, deviations: FloatArray, names: Sequence[str]) -> FloatArray:
        """The last ``shift_after - 1`` deviations carried over, then these rows."""
        keep = self.shift_after - 1
        before = np.full((keep, len(names)), np.nan)
        for j, name in enumerate(names):
            recent = self._recent.get(name)
            if recent is not None and recent.size:
                before[keep - recent.size :, j] = recent
        return np.vstack([before, deviations])


def note_episode_moves(
    moves: EpisodeMoves,
    marks: EpisodeMarks,
    end: int,
    scan: ShiftScan | None,
    expected: FloatArray,
    names: tuple[str, ...],
) -> tuple[EpisodeMoves, tuple[int, list[FeatureContribution]] | None]:
    """The levels that moved during the open episode after rows ``:end`` (``moves`` before
    them), and the row that resolves it, if one of these rows does, with its explanation by
    them: the new normal, from and to.

    Examples:
        >>> marks = EpisodeMarks(*(np.array([flag]) for flag in (False, True, False, False)),
        ...                      started_s=np.array([0.0]))
        >>> note_episode_moves({"cpu": (50.0, 80.0)}, marks, 1, None, np.zeros((1, 1)), ("cpu",))
        ({}, (0, [FeatureContribution(name='cpu', value=80.0, baseline=50.0, contribution=1.0)]))
    """
    explained = None
    resolved = np.flatnonzero(marks.resolved[:end])
    opened = np.flatnonzero(marks.opened[:end])
    # Moves are noted only at a scan, which ends a segment: an episode that opened in
    # this segment has none, one that resolves before any opening has them all.
    if resolved.size and moves and not (opened.size and opened[0] < resolved[0]):
        total = sum(abs(after - before) for before, after in moves.values()) or 1.0
        contributions = [
            FeatureContribution(name, after, before, round(abs(after - before) / total, 4))
            for name, (before, after) in sorted(moves.items())
        ]
        explained = (int(resolved[0]), contributions)
    if resolved.size or opened.size:
        moves = {}
    if scan is not None and marks.open[scan.row]:
        for name, delta in scan.moves:
            level = float(expected[scan.row, names.index(name)])
            before, _ = moves.get(name, (level, level))
            if abs(level + delta - before) < 1e-9:
                moves.pop(name, None)  # back where it was
            else:
                moves[name] = (before, level + delta)
    return moves, explained
