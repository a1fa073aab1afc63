"""One service's risk vectors held until they are labelled, and its known incident spans.

A :class:`VectorBuffer` keeps a service's vectors sorted by time in three compact arrays: the
meta rows (ts_s, probability, schema id: the id of the vector's tuple of feature names), the
keys (packed bytes, :func:`encode_key`) and the float32 values. It grows and shrinks by
chunks of rows; expiry and eviction take the oldest rows, as slices. The service's incident
spans (:class:`Span`) are kept with it, bounded, so vectors met inside or before one are
labelled at once. Buffers are snapshot state (their stable names are in
``stream/snapshot_classes.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["NO_KEY", "Span", "Taken", "VectorBuffer", "decode_key", "encode_key"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]
Taken = tuple[FloatArray, npt.NDArray[np.bytes_], Float32Array]
"""Rows taken out of a buffer: their meta (ts_s, probability, schema id), keys and values."""

_CHUNK = 8  # buffers grow and shrink by this many rows
_SPANS_PER_SERVICE = 64  # incident spans kept per service


@dataclass(slots=True)
class Span:
    incident_id: str
    open_s: float
    end_s: float


def encode_key(key: str) -> bytes:
    """A key as stored: lowercase hex packed into bytes (half the size) with a final 0x01,
    anything else as UTF-8 with a final 0x02 (the last byte is never NUL, so numpy's
    fixed-width bytes, which drop trailing NULs, keep every key intact)."""
    if len(key) % 2 == 0:
        try:
            packed = bytes.fromhex(key)
        except ValueError:
            pass
        else:
            if packed.hex() == key:
                return packed + b"\x01"
    return key.encode() + b"\x02"


NO_KEY = encode_key("")  # most vectors: only an alerting one has a key


def decode_key(stored: bytes) -> str:
    return stored[:-1].hex() if stored[-1] == 1 else stored[:-1].decode()


class VectorBuffer:
    """One service's vectors sorted by time, in three compact arrays (rows ``[:n]`` used)."""

    __slots__ = (
        "applied",
        "keys",
        "last_expired_s",
        "meta",
        "n",
        "newest_s",
        "scheduled_s",
        "spans",
        "values",
    )

    def __init__(self) -> None:
        self.meta: FloatArray = np.empty((0, 3))  # ts_s, probability, schema id
        self.keys: npt.NDArray[np.bytes_] = np.empty(0, dtype="S1")
        self.values: Float32Array = np.empty((0, 0), dtype=np.float32)
        self.n = 0
        self.newest_s = -math.inf  # newest ts of a vector ever added (-inf: none yet)
        self.spans: list[Span] | None = None
        self.applied: list[str] | None = None
        """Ids of the newest incidents applied (not pruned by time, unlike spans): an open
        read again (the topic is read from its beginning at each start) is not re-applied."""
        self.last_expired_s = -math.inf  # newest ts labelled negative (expired or evicted)
        self.scheduled_s: float | None = None  # due time of this buffer's entry in the heap

    @property
    def ts(self) -> FloatArray:
        return self.meta[: self.n, 0]

    def nbytes(self) -> int:
        return int(self.meta.nbytes + self.keys.nbytes + self.values.nbytes)

    def insert(
        self, ts_s: float, probability: float, schema: int, key: bytes, row: Float32Array
    ) -> None:
        rows, width = self.meta.shape[0], self.values.shape[1]
        if self.n == rows or row.size > width or len(key) > self.keys.itemsize:
            self._resize(
                rows + _CHUNK if self.n == rows else rows,
                max(row.size, width),
                max(len(key), self.keys.itemsize),  # never narrower: keys held would be cut
            )
        n = self.n
        at = n  # the usual case: the newest vector
        if n and ts_s < self.meta[n - 1, 0]:
            at = int(np.searchsorted(self.meta[:n, 0], ts_s, side="right"))
            # out of order: shift the newer rows up (numpy copes with the overlap)
            self.meta[at + 1 : n + 1] = self.meta[at:n]
            self.keys[at + 1 : n + 1] = self.keys[at:n]
            self.values[at + 1 : n + 1] = self.values[at:n]
        self.meta[at] = (ts_s, probability, schema)
        self.keys[at] = key
        if row.size == self.values.shape[1]:
            self.values[at] = row  # float64 values are rounded to float32 here
        else:
            self.values[at, : row.size] = row
            self.values[at, row.size :] = 0.0
        self.n = n + 1

    def take_first(self, count: int) -> Taken:
        """:meth:`take` of the ``count`` oldest rows (expiry, eviction): slices, no masks."""
        n = self.n
        taken = (self.meta[:count].copy(), self.keys[:count].copy(), self.values[:count].copy())
        if count:
            kept = n - count
            self.meta[:kept] = self.meta[count:n]
            self.keys[:kept] = self.keys[count:n]
            self.values[:kept] = self.values[count:n]
            self.n = kept
            if self.meta.shape[0] - kept >= 2 * _CHUNK:
                rows = -(-kept // _CHUNK) * _CHUNK
                self._resize(rows, self.values.shape[1], self.keys.itemsize)
        return taken

    def between(self, after_s: float, until_s: float) -> IntArray:
        """Row indices with ``after_s < ts <= until_s``."""
        start, end = np.searchsorted(self.ts, (after_s, until_s), side="right")
        return np.arange(start, max(start, end), dtype=np.int64)

    def take(self, index: IntArray) -> Taken:
        """Remove the rows at ``index`` and return copies of them."""
        taken = (self.meta[index], self.keys[index], self.values[index])
        if index.size:
            keep = np.ones(self.n, dtype=bool)
            keep[index] = False
            kept = self.n - index.size
            self.meta[:kept] = self.meta[: self.n][keep]
            self.keys[:kept] = self.keys[: self.n][keep]
            self.values[:kept] = self.values[: self.n][keep]
            self.n = kept
            if self.meta.shape[0] - kept >= 2 * _CHUNK:
                rows = -(-kept // _CHUNK) * _CHUNK
                self._resize(rows, self.values.shape[1], self.keys.itemsize)
        return taken

    def span_at(self, ts_s: float) -> Span | None:
        """The incident span ``ts_s`` falls inside (``open < ts <= end``), if any."""
        for span in self.spans or ():
            if span.open_s < ts_s <= span.end_s:
                return span
        return None

    def span_ahead(self, ts_s: float, horizon_s: float) -> Span | None:
        """An incident opening within the horizon after ``ts_s``, if one is known."""
        for span in self.spans or ():
            if span.open_s - horizon_s < ts_s <= span.open_s:
                return span
        return None

    def add_span(self, span: Span, keep_after_s: float) -> None:
        """Remember a span; forget those over before ``keep_after_s`` and the oldest beyond
        the per-service bound."""
        spans = [s for s in self.spans or () if s.end_s >= keep_after_s]
        spans.append(span)
        self.spans = spans[-_SPANS_PER_SERVICE:]
        applied = [*(getattr(self, "applied", None) or ()), span.incident_id]
        self.applied = applied[-_SPANS_PER_SERVICE:]

    def knows(self, incident_id: str) -> bool:
        """Whether this incident was applied to the buffer (a snapshot's from before this
        field was added knows its spans only)."""
        applied = getattr(self, "applied", None) or ()
        return incident_id in applied or any(s.incident_id == incident_id for s in self.spans or ())

    def find_key(self, stored: bytes) -> IntArray:
        """Row indices holding the stored key ``stored`` (:func:`encode_key`)."""
        if not self.n or len(stored) > self.keys.itemsize:
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(self.keys[: self.n] == stored)

    def renumber_schemas(self, ids: FloatArray) -> None:
        """Give each row schema id ``ids[i]`` for its id ``i`` (another labeler's numbering)."""
        schemas = self.meta[: self.n, 2].astype(np.intp)
        self.meta[: self.n, 2] = ids[schemas]

    def _resize(self, rows: int, width: int, key_bytes: int) -> None:
        n = self.n
        meta = np.empty((rows, 3))
        keys = np.empty(rows, dtype=f"S{max(1, key_bytes)}")
        values = np.zeros((rows, width), dtype=np.float32)
        meta[:n], keys[:n] = self.meta[:n], self.keys[:n]
        values[:n, : self.values.shape[1]] = self.values[:n]
        self.meta, self.keys, self.values = meta, keys, values
