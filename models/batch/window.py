"""The sidecar's training data: a bounded rolling window of scored feature vectors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from models.batch._shared import FloatArray

__all__ = ["TrainingWindow", "WindowFrame"]

IntArray = npt.NDArray[np.int64]

_CHUNK = 1_024  # a block grows by at least this many rows (and by half its size when larger)
_UNLABELLED = -1
_NO_INCIDENT = -1
_ID_BYTES = 100  # estimated bytes per interned incident id (string + table entries)


class WindowFrame(NamedTuple):
    """A group's rows in time order (ties in arrival order).

    Attributes:
        names: The column names of ``X``.
        X: float64 [n, len(names)]; a feature missing from a row is NaN.
        ts_s: The rows' event times (epoch seconds).
        labels: 1.0 positive, 0.0 negative, NaN not (yet) labelled.
        incident_ids: The incident that made a row positive, else None.

    Examples:
        >>> w = TrainingWindow()
        >>> w.add("api", 0.0, {"cpu": 1.0}, None)
        >>> w.add("api", 60.0, {"cpu": 2.0}, True, "inc-1")
        >>> names, X, ts_s, labels, incident_ids = w.frame("api").labelled()
        >>> names, X.tolist(), ts_s.tolist(), labels.tolist(), incident_ids
        (('cpu',), [[2.0]], [60.0], [1.0], ('inc-1',))
    """

    names: tuple[str, ...]
    X: FloatArray
    ts_s: FloatArray
    labels: FloatArray
    incident_ids: tuple[str | None, ...]

    def labelled(self) -> WindowFrame:
        """Only the rows with a label."""
        keep = np.flatnonzero(~np.isnan(self.labels))
        return WindowFrame(
            self.names,
            self.X[keep],
            self.ts_s[keep],
            self.labels[keep],
            tuple(self.incident_ids[i] for i in keep.tolist()),
        )


class _Block:
    """The rows of one feature-name set: parallel arrays, rows ``[:n]`` in use."""

    __slots__ = ("incidents", "labels", "n", "names", "seq", "ts", "values")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.n = 0
        self._allocate(0)

    def _allocate(self, capacity: int) -> None:
        self.values = np.empty((capacity, len(self.names)), np.float32)
        self.ts = np.empty(capacity)
        self.seq = np.empty(capacity, np.int64)
        self.labels = np.empty(capacity, np.int8)
        self.incidents = np.empty(capacity, np.int32)

    def reserve(self, extra: int) -> None:
        capacity = self.ts.size
        if self.n + extra > capacity:
            self._resize(max(self.n + extra, capacity + max(_CHUNK, capacity // 2)))

    def _resize(self, capacity: int) -> None:
        values, ts, seq, labels, incidents = (
            self.values,
            self.ts,
            self.seq,
            self.labels,
            self.incidents,
        )
        self._allocate(capacity)
        n = self.n
        self.values[:n], self.ts[:n], self.seq[:n] = values[:n], ts[:n], seq[:n]
        self.labels[:n], self.incidents[:n] = labels[:n], incidents[:n]

    def keep(self, mask: npt.NDArray[np.bool_]) -> None:
        """Keep the rows in use where ``mask``; give memory back when mostly empty."""
        n = int(mask.sum())
        for array in (self.values, self.ts, self.seq, self.labels, self.incidents):
            array[:n] = array[: self.n][mask]
        self.n = n
        if self.ts.size > 4 * max(n, _CHUNK):
            self._resize(max(n + _CHUNK, 2 * n))

    def nbytes(self) -> int:
        arrays = (self.values, self.ts, self.seq, self.labels, self.incidents)
        return sum(a.nbytes for a in arrays)


class _Group:
    __slots__ = ("blocks", "ids", "newest_s", "orders", "pending", "seq")

    def __init__(self) -> None:
        self.blocks: dict[tuple[str, ...], _Block] = {}
        # a feature order as it arrives -> its block and the permutation into the block's order
        self.orders: dict[tuple[str, ...], tuple[_Block, IntArray | None]] = {}
        self.ids: dict[str, int] = {}
        self.newest_s = -math.inf
        self.pending = 0  # rows added since the bounds were last applied
        self.seq = 0

    def block_for(self, order: tuple[str, ...]) -> tuple[_Block, IntArray | None]:
        found = self.orders.get(order)
        if found is None:
            names = tuple(sorted(order))
            if len(set(names)) != len(names):
                raise ValueError("feature names must be unique")
            block = self.blocks.get(names)
            if block is None:
                block = self.blocks[names] = _Block(names)
            where = {name: i for i, name in enumerate(order)}
            permutation = np.array([where[name] for name in names], np.int64)
            unpermuted = bool(np.all(permutation == np.arange(len(names))))
            found = self.orders[order] = (block, None if unpermuted else permutation)
        return found

    def intern(self, incident_id: str | None) -> int:
        if incident_id is None:
            return _NO_INCIDENT
        code = self.ids.get(incident_id)
        if code is None:
            code = self.ids[incident_id] = len(self.ids)
        return code

    def rows(self) -> int:
        return sum(block.n for block in self.blocks.values())


class TrainingWindow:
    """Recent feature vectors per service group, labelled or not, bounded and compact.

    Rows of one feature-name set are stored together as a float32 matrix that grows in
    chunks, with their event times, labels (-1/0/1 as int8) and incident ids (interned as
    int32 codes), so a row costs ``4 d + 21`` bytes, not a dict. Rows may arrive out of
    time order (a vector is published once its label is known, and labels come minutes
    late, sooner for some vectors than for others).

    Bounds, per group: rows older than the group's newest event time minus ``span_s`` are
    dropped, and past ``max_rows`` the oldest rows (by event time, then arrival) go first.
    They are applied lazily, every ``max(1024, max_rows // 8)`` rows added, and before
    anything is read, so :meth:`frame` and :meth:`rows` always see them applied exactly
    while storage briefly holds up to that many extra rows.

    Args:
        span_s: Event-time span kept per group.
        max_rows: Rows kept per group at most.

    Examples:
        >>> w = TrainingWindow(span_s=3_600.0, max_rows=3)
        >>> w.add("api", 0.0, {"cpu": 1.0}, None)
        >>> w.add("api", 60.0, {"cpu": 2.0, "mem": 5.0}, True, "inc-1")
        >>> w.add("api", 30.0, {"mem": 4.0}, False)
        >>> f = w.frame("api")
        >>> f.names, f.X.tolist(), f.ts_s.tolist()
        (('cpu', 'mem'), [[1.0, nan], [nan, 4.0], [2.0, 5.0]], [0.0, 30.0, 60.0])
        >>> f.labels.tolist(), f.incident_ids
        ([nan, 0.0, 1.0], (None, None, 'inc-1'))
        >>> w.add("api", 3_630.0, {"cpu": 3.0}, False)  # 0.0 is now older than the span
        >>> w.frame("api").ts_s.tolist()
        [30.0, 60.0, 3630.0]
    """

    def __init__(self, *, span_s: float = 86_400.0, max_rows: int = 200_000) -> None:
        if not (math.isfinite(span_s) and span_s > 0):
            raise ValueError(f"span_s must be finite and > 0, got {span_s}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.span_s = span_s
        self.max_rows = max_rows
        self._groups: dict[str, _Group] = {}

    def add(
        self,
        group: str,
        ts_s: float,
        features: Mapping[str, float],
        label: bool | None,
        incident_id: str | None = None,
    ) -> None:
        """One scored vector (``label`` None while unknown); ``features`` is not kept."""
        g = self._group(group)
        block, permutation = g.block_for(tuple(features))
        row = np.fromiter(features.values(), np.float32, count=len(block.names))
        block.reserve(1)
        at = block.n
        block.values[at] = row if permutation is None else row[permutation]
        block.ts[at] = ts_s
        block.seq[at] = g.seq
        block.labels[at] = _UNLABELLED if label is None else int(bool(label))
        block.incidents[at] = g.intern(incident_id)
        block.n += 1
        self._added(group, g, 1, float(ts_s))

    def extend(
        self,
        group: str,
        names: Sequence[str],
        X: npt.ArrayLike,
        ts_s: npt.ArrayLike,
        labels: npt.ArrayLike | None = None,
        incident_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Many vectors with the same feature names at once (``labels``: NaN/0/1 or bools).

        Examples:
            >>> w = TrainingWindow()
            >>> w.extend("db", ["b", "a"], [[1.0, 2.0], [3.0, 4.0]], [10.0, 20.0], [0, 1])
            >>> w.frame("db").X.tolist(), w.rows("db")
            ([[2.0, 1.0], [4.0, 3.0]], 2)
        """
        g = self._group(group)
        block, permutation = g.block_for(tuple(names))
        matrix = np.array(X, dtype=np.float32, ndmin=2)
        times = np.asarray(ts_s, dtype=np.float64).ravel()
        n = times.size
        if matrix.shape != (n, len(block.names)):
            raise ValueError(f"X must have shape [{n}, {len(block.names)}], got {matrix.shape}")
        if n == 0:
            return
        codes = np.full(n, _UNLABELLED, np.int8)
        if labels is not None:
            given = np.asarray(labels, dtype=np.float64).ravel()
            if given.size != n:
                raise ValueError("labels and ts_s must have the same length")
            known = ~np.isnan(given)
            codes[known] = given[known] > 0.5
        ids = np.full(n, _NO_INCIDENT, np.int32)
        if incident_ids is not None:
            if len(incident_ids) != n:
                raise ValueError("incident_ids and ts_s must have the same length")
            ids[:] = [g.intern(i) for i in incident_ids]
        block.reserve(n)
        rows = slice(block.n, block.n + n)
        block.values[rows] = matrix if permutation is None else matrix[:, permutation]
        block.ts[rows] = times
        block.seq[rows] = np.arange(g.seq, g.seq + n)
        block.labels[rows] = codes
        block.incidents[rows] = ids
        block.n += n
        self._added(group, g, n, float(times.max()))

    def groups(self) -> list[str]:
        """The groups holding rows, sorted."""
        self._apply_all()
        return sorted(name for name, g in self._groups.items() if g.rows())

    def rows(self, group: str) -> int:
        """How many rows ``group`` holds (0 for an unknown group)."""
        g = self._groups.get(group)
        if g is None:
            return 0
        self._apply(g)
        return g.rows()

    def nbytes(self) -> int:
        """Bytes held by the arrays (allocated capacity) and an estimate for incident ids."""
        return sum(
            sum(b.nbytes() for b in g.blocks.values()) + _ID_BYTES * len(g.ids)
            for g in self._groups.values()
        )

    def frame(self, group: str, names: Sequence[str] | None = None) -> WindowFrame:
        """``group``'s rows in time order, as columns ``names`` (default: every feature seen
        in the window, sorted); a feature missing from a row, or unknown, is NaN."""
        g = self._groups.get(group)
        blocks: list[_Block] = []
        if g is not None:
            self._apply(g)
            blocks = [b for b in g.blocks.values() if b.n]
        if names is None:
            names = sorted({name for b in blocks for name in b.names})
        columns = tuple(names)
        index = {name: j for j, name in enumerate(columns)}
        n = sum(b.n for b in blocks)
        X = np.full((n, len(columns)), np.nan)
        ts, seq = np.empty(n), np.empty(n, np.int64)
        labels, codes = np.empty(n), np.empty(n, np.int32)
        start = 0
        for b in blocks:
            rows = slice(start, start + b.n)
            pairs = [(i, index[name]) for i, name in enumerate(b.names) if name in index]
            if pairs:
                source, target = (list(side) for side in zip(*pairs, strict=True))
                X[rows, target] = b.values[: b.n, source]
            ts[rows], seq[rows] = b.ts[: b.n], b.seq[: b.n]
            stored = b.labels[: b.n].astype(np.float64)
            stored[stored < 0] = np.nan
            labels[rows], codes[rows] = stored, b.incidents[: b.n]
            start += b.n
        order = np.lexsort((seq, ts))
        by_code = {code: name for name, code in g.ids.items()} if g is not None else {}
        incident_ids = tuple(by_code.get(code) for code in codes[order].tolist())
        return WindowFrame(columns, X[order], ts[order], labels[order], incident_ids)

    def _group(self, group: str) -> _Group:
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group()
        return g

    def _added(self, group: str, g: _Group, n: int, newest_s: float) -> None:
        g.seq += n
        g.pending += n
        g.newest_s = max(g.newest_s, newest_s)
        if g.pending >= max(_CHUNK, self.max_rows // 8):
            self._apply(g)

    def _apply_all(self) -> None:
        for g in self._groups.values():
            self._apply(g)

    def _apply(self, g: _Group) -> None:
        """Drop rows past the span, then the oldest past ``max_rows``; forget unused ids."""
        if not g.pending:
            return
        g.pending = 0
        blocks = [b for b in g.blocks.values() if b.n]
        ts = np.concatenate([b.ts[: b.n] for b in blocks])
        keep = ts >= g.newest_s - self.span_s
        excess = int(keep.sum()) - self.max_rows
        if excess > 0:
            seq = np.concatenate([b.seq[: b.n] for b in blocks])
            order = np.lexsort((seq, ts))
            keep[order[keep[order]][:excess]] = False
        start = 0
        for b in blocks:
            b.keep(keep[start : start + b.n])
            start += b.n
        empty = {names for names, b in g.blocks.items() if b.n == 0}
        if empty:
            g.blocks = {names: b for names, b in g.blocks.items() if names not in empty}
            g.orders = {o: f for o, f in g.orders.items() if f[0].names not in empty}
        self._forget_ids(g)

    @staticmethod
    def _forget_ids(g: _Group) -> None:
        """Re-intern incident ids once most of the table is no longer referenced."""
        if len(g.ids) < _CHUNK:
            return
        codes = np.concatenate(
            [b.incidents[: b.n] for b in g.blocks.values()] or [np.empty(0, np.int32)]
        )
        live = np.unique(codes[codes >= 0]).astype(np.int64)
        if 2 * live.size > len(g.ids):
            return
        by_code = {code: name for name, code in g.ids.items()}
        remap = np.full(len(g.ids), _NO_INCIDENT, np.int32)
        remap[live] = np.arange(live.size, dtype=np.int32)
        g.ids = {by_code[int(code)]: i for i, code in enumerate(live.tolist())}
        for b in g.blocks.values():
            used = b.incidents[: b.n]
            b.incidents[: b.n] = np.where(used >= 0, remap[np.maximum(used, 0)], _NO_INCIDENT)
