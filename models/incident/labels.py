"""Horizon labels for incident-risk vectors: positive when an incident opens soon after."""

from __future__ import annotations

import collections
import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from models.incident.config import RiskConfig
from models.incident.feature_row import FeatureRow

__all__ = ["OUTCOMES", "HorizonLabeler", "LabelledVector"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]

OUTCOMES = (
    "positive",
    "negative",
    "evicted",
    "feedback",
    "during_incident",
    "duplicate",
    "late",
    "resolved_before_opened",
    "unknown_service",
)
"""The keys of :attr:`HorizonLabeler.counts`, all present from the start."""

_CHUNK = 8  # buffers grow and shrink by this many rows
_REMEMBERED_INCIDENTS = 20_000  # incident ids kept to recognise duplicate opens
_EARLY_RESOLVES = 10_000  # resolves waiting for their open
_SPANS_PER_SERVICE = 64  # incident spans kept per service
# CPython 3.11 (64-bit) sizes for the estimate in nbytes(), checked against tracemalloc by
# tests/unit/test_incident_labels.py: a service's buffer object, its three array headers and
# its dict entry; one heap entry; one remembered incident id (id string and table entry).
_SERVICE_BYTES = 700
_HEAP_ENTRY_BYTES = 80
_INCIDENT_BYTES = 200


@dataclass(frozen=True, slots=True)
class LabelledVector:
    """A risk vector with its label, ready to be learned and scored.

    Attributes:
        service: The service the vector describes.
        ts_s: The vector's event time (epoch seconds).
        vector: The features: a :class:`~models.incident.feature_row.FeatureRow` (a read-only
            mapping over the stored float32 row; no dict is built unless asked for) when the
            vector was buffered, a fresh copy of the features when it was labelled at once.
        probability: The prediction made for it before its label was known.
        label: True when an incident opened within the horizon after ``ts_s``.
        key: The caller's key for the vector (e.g. its alert id).
        incident_id: The incident that made it positive, else None.
        origin: ``"horizon"`` (an incident or the horizon passing decided), ``"feedback"``,
            or ``"during_incident"`` (inside a known incident: not a label of risk, only of
            "an incident is under way", see :meth:`HorizonLabeler.take_during`).
    """

    service: str
    ts_s: float
    vector: Mapping[str, float]
    probability: float
    label: bool
    key: str
    incident_id: str | None
    origin: Literal["horizon", "feedback", "during_incident"]


@dataclass(slots=True)
class _Span:
    incident_id: str
    open_s: float
    end_s: float


def _encode_key(key: str) -> bytes:
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


_NO_KEY = _encode_key("")  # most vectors: only an alerting one has a key


def _decode_key(stored: bytes) -> str:
    return stored[:-1].hex() if stored[-1] == 1 else stored[:-1].decode()


class _Buffer:
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
        self.spans: list[_Span] | None = None
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

    def take_first(self, count: int) -> tuple[FloatArray, npt.NDArray[np.bytes_], Float32Array]:
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

    def take(self, index: IntArray) -> tuple[FloatArray, npt.NDArray[np.bytes_], Float32Array]:
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

    def span_at(self, ts_s: float) -> _Span | None:
        """The incident span ``ts_s`` falls inside (``open < ts <= end``), if any."""
        for span in self.spans or ():
            if span.open_s < ts_s <= span.end_s:
                return span
        return None

    def span_ahead(self, ts_s: float, horizon_s: float) -> _Span | None:
        """An incident opening within the horizon after ``ts_s``, if one is known."""
        for span in self.spans or ():
            if span.open_s - horizon_s < ts_s <= span.open_s:
                return span
        return None

    def add_span(self, span: _Span, keep_after_s: float) -> None:
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

    def _resize(self, rows: int, width: int, key_bytes: int) -> None:
        n = self.n
        meta = np.empty((rows, 3))
        keys = np.empty(rows, dtype=f"S{max(1, key_bytes)}")
        values = np.zeros((rows, width), dtype=np.float32)
        meta[:n], keys[:n] = self.meta[:n], self.keys[:n]
        values[:n, : self.values.shape[1]] = self.values[:n]
        self.meta, self.keys, self.values = meta, keys, values


class HorizonLabeler:
    """Holds each service's risk vectors until incidents (or their absence) label them.

    Semantics, with H = ``config.horizon_s`` and times in event seconds:

    - **Positive**: a vector of service s at ``ts`` is positive when an incident of s opens
      at ``t_open`` with ``t_open - H < ts <= t_open``. :meth:`opened` returns those still
      buffered (``incident_id`` set); a vector :meth:`add`-ed after the open that falls in
      that range is returned at once as a positive.
    - **During an incident** (``t_open < ts <= end``, ``end`` the resolve time or
      ``t_open + incident_max_s`` without one) vectors get no label: those buffered when the
      open arrives and those added while it lasts are dropped (``"during_incident"``).
    - **Negative**: :meth:`expire` labels vectors with ``ts + H + label_grace_s <= now_s``
      negative. It pops a heap of (due time, service), one live entry per service, so a call
      with nothing due costs O(1) however many services there are.
    - **Evicted**: a service holding ``max_vectors_per_service`` vectors gives its oldest up
      as a negative to make room (``"evicted"``, not also ``"negative"``).
    - **Feedback**: :meth:`feedback` labels a still-buffered vector by key, now
      (``origin="feedback"``). It scans the buffers (feedback comes at human rate).
    - **Duplicate** opens of an incident id already seen (the last 20,000 ids) are ignored.
    - **Resolved before opened**: a resolve of an unknown id is remembered (the last
      10,000); when the open arrives, (open, resolved] is the incident span. A resolve whose
      open never arrives does nothing more.
    - **Unknown service**: an open for a service that never added a vector is counted and its
      span remembered, so later vectors inside it are dropped.
    - **Late**: an open whose range ``(t_open - H, t_open]`` reaches back before the newest
      vector the service already had labelled negative (expired or evicted) is counted once
      per incident; the still-buffered vectors in range become positives as usual.

    Every outcome is counted in :attr:`counts` (keys :data:`OUTCOMES`). Vectors are stored as
    float32 rows per service (feature names interned once per distinct name tuple), keys as
    packed bytes; a labelled vector leaves as a
    :class:`~models.incident.feature_row.FeatureRow` over its row (a vector given as a
    ``FeatureRow`` is stored without a dict either way). Expiry
    and eviction take the oldest rows, as slices. Non-finite ``ts_s`` is refused (ValueError).

    With ``keep_during``, the vectors dropped as ``"during_incident"`` are kept (label True,
    origin ``"during_incident"``) until :meth:`take_during` collects them: they teach what an
    incident under way looks like (the in-progress model), though they are no risk labels.

    Args:
        config: Horizon, grace, incident_max_s and max_vectors_per_service are used.
        keep_during: Keep the vectors inside known incidents for :meth:`take_during`.

    Examples:
        >>> labeler = HorizonLabeler(RiskConfig(horizon_s=600, label_grace_s=60))
        >>> for ts in (0, 300, 600, 900):
        ...     _ = labeler.add("api", ts, {"cpu_z": 1.0}, 0.1, f"k{ts}")
        >>> [(v.ts_s, v.label) for v in labeler.opened("api", "inc-1", 1000)]
        [(600.0, True), (900.0, True)]
        >>> [(v.ts_s, v.label) for v in labeler.expire(now_s=1000)]
        [(0.0, False), (300.0, False)]
        >>> c = labeler.counts
        >>> c["positive"], c["negative"], c["late"], len(labeler)
        (2, 2, 0, 0)
    """

    def __init__(self, config: RiskConfig, *, keep_during: bool = False) -> None:
        self.config = config
        self.keep_during = keep_during
        self._during: list[LabelledVector] = []
        self.counts: collections.Counter[str] = collections.Counter(dict.fromkeys(OUTCOMES, 0))
        self._buffers: dict[str, _Buffer] = {}
        self._due: list[tuple[float, str]] = []
        self._schemas: dict[tuple[str, ...], int] = {}
        self._schema_names: list[tuple[str, ...]] = []
        self._opened: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._early_resolves: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def add(
        self,
        service: str,
        ts_s: float,
        vector: Mapping[str, float],
        probability: float,
        key: str,
        *,
        expire: bool = True,
    ) -> list[LabelledVector]:
        """Hold a vector until it is labelled.

        Args:
            service: The vector's service.
            ts_s: Its event time.
            vector: Its features.
            probability: The prediction made for it.
            key: The caller's key for it (e.g. its alert id; ``""`` for none).
            expire: Whether a full buffer may first label its vectors due by ``ts_s`` as
                negatives (False while labels may still be unread: then only the bound evicts).

        Returns:
            The vector labelled at once (positive when a known incident opens within H after
            it), or what a full buffer gave up (negatives: due ones, else the oldest,
            evicted); usually nothing.
        """
        if not math.isfinite(ts_s):
            raise ValueError(f"ts_s must be finite, got {ts_s!r}")
        buffer = self._buffers.get(service)
        if buffer is None:
            buffer = self._buffers[service] = _Buffer()
        buffer.newest_s = max(buffer.newest_s, ts_s)
        if buffer.spans:
            if len(buffer.spans) > 4:  # a backlog of known incidents: forget the finished
                keep_after_s = ts_s - self.config.horizon_s - self.config.label_grace_s
                buffer.spans = [s for s in buffer.spans if s.end_s >= keep_after_s]
            inside = buffer.span_at(ts_s)
            if inside is not None:
                self.counts["during_incident"] += 1
                if self.keep_during:
                    self._during.append(
                        LabelledVector(
                            service,
                            ts_s,
                            _copy(vector),
                            probability,
                            True,
                            key,
                            inside.incident_id,
                            "during_incident",
                        )
                    )
                return []
            span = buffer.span_ahead(ts_s, self.config.horizon_s)
            if span is not None:
                self.counts["positive"] += 1
                return [
                    LabelledVector(
                        service,
                        ts_s,
                        _copy(vector),
                        probability,
                        True,
                        key,
                        span.incident_id,
                        "horizon",
                    )
                ]
        out: list[LabelledVector] = []
        if buffer.n >= self.config.max_vectors_per_service and expire:
            # Full of vectors already due by this one's time: label them now, as expire()
            # would (the caller's expiry may not have reached this service's time yet, as
            # when partitions are read at different event times).
            wait_s = self.config.horizon_s + self.config.label_grace_s
            count = int(np.searchsorted(buffer.ts, ts_s - wait_s, side="right"))
            if count:
                out = self._label(service, buffer.take_first(count), False, None)
                buffer.last_expired_s = max(buffer.last_expired_s, out[-1].ts_s)
                self.counts["negative"] += count
        if buffer.n >= self.config.max_vectors_per_service:
            out += self._label(service, buffer.take_first(1), False, None)
            buffer.last_expired_s = max(buffer.last_expired_s, out[-1].ts_s)
            self.counts["evicted"] += 1
        if type(vector) is FeatureRow:
            names, row = vector.names, vector.row
        else:
            names = tuple(vector)
            row = np.fromiter(vector.values(), dtype=np.float32, count=len(names))
        schema = self._schema_id(names)
        buffer.insert(ts_s, probability, schema, _encode_key(key), row)
        self._held += 1
        due = ts_s + self.config.horizon_s + self.config.label_grace_s
        if buffer.scheduled_s is None or due < buffer.scheduled_s:
            buffer.scheduled_s = due
            heapq.heappush(self._due, (due, service))
        return out

    def in_incident(self, service: str, ts_s: float) -> bool:
        """Whether a known incident of ``service`` was open at ``ts_s`` (risk alerts then
        say nothing an operator does not know)."""
        buffer = self._buffers.get(service)
        return buffer is not None and bool(buffer.spans) and buffer.span_at(ts_s) is not None

    def opened(self, service: str, incident_id: str, ts_s: float) -> list[LabelledVector]:
        """An incident opened: the service's vectors within H before it become positives."""
        if incident_id in self._opened:
            self.counts["duplicate"] += 1
            return []
        self._opened[incident_id] = None
        if len(self._opened) > _REMEMBERED_INCIDENTS:
            self._opened.popitem(last=False)
        end_s = ts_s + self.config.incident_max_s
        resolved_s = self._early_resolves.pop(incident_id, None)
        if resolved_s is not None:
            end_s = max(ts_s, resolved_s)
        buffer = self._buffers.get(service)
        if buffer is None:
            buffer = self._buffers[service] = _Buffer()
        if buffer.knows(incident_id):
            return []  # known from a restored snapshot: the topic is read again at start
        if buffer.newest_s == -math.inf:
            self.counts["unknown_service"] += 1
        if buffer.last_expired_s > ts_s - self.config.horizon_s:
            self.counts["late"] += 1
        return self._apply(service, buffer, _Span(incident_id, ts_s, end_s))

    def _apply(self, service: str, buffer: _Buffer, span: _Span) -> list[LabelledVector]:
        """Label the buffered vectors a new incident span settles, and remember the span."""
        horizon_s = self.config.horizon_s
        ts_s, incident_id = span.open_s, span.incident_id
        out = self._label(
            service, buffer.take(buffer.between(ts_s - horizon_s, ts_s)), True, incident_id
        )
        self.counts["positive"] += len(out)
        during = buffer.take(buffer.between(ts_s, span.end_s))
        self.counts["during_incident"] += len(during[0])
        if self.keep_during:
            self._during += self._label(service, during, True, incident_id, "during_incident")
        else:
            self._held -= len(during[0])
        # Spans over before the service's vectors could still need them are forgotten: the
        # service's vector time decides, not the incident's (an incidents backlog read ahead
        # of the metrics keeps every span its vectors will meet, up to the per-service bound).
        buffer.add_span(span, keep_after_s=buffer.newest_s - horizon_s - self.config.label_grace_s)
        return out

    def resolved(self, service: str, incident_id: str, ts_s: float) -> list[LabelledVector]:
        """An incident was resolved: its span ends at ``ts_s``.

        Returns:
            Nothing today (vectors inside a span were already dropped); a list so that every
            label event can be handled alike.
        """
        buffer = self._buffers.get(service)
        for span in (buffer.spans if buffer is not None else None) or ():
            if span.incident_id == incident_id:
                span.end_s = max(span.open_s, ts_s)
                return []
        if incident_id not in self._opened:
            self.counts["resolved_before_opened"] += 1
            self._early_resolves[incident_id] = ts_s
            if len(self._early_resolves) > _EARLY_RESOLVES:
                self._early_resolves.popitem(last=False)
        return []

    def expire(self, now_s: float) -> list[LabelledVector]:
        """Vectors whose horizon and grace passed by ``now_s`` (event time): negatives."""
        out: list[LabelledVector] = []
        wait_s = self.config.horizon_s + self.config.label_grace_s
        due = self._due
        while due and due[0][0] <= now_s:
            due_s, service = heapq.heappop(due)
            buffer = self._buffers.get(service)
            if buffer is None or buffer.scheduled_s != due_s:
                continue  # superseded by an earlier entry for the same service
            buffer.scheduled_s = None
            count = int(np.count_nonzero(buffer.ts + wait_s <= now_s))
            if count:
                expired = self._label(service, buffer.take_first(count), False, None)
                buffer.last_expired_s = max(buffer.last_expired_s, expired[-1].ts_s)
                self.counts["negative"] += count
                out += expired
            if buffer.n:
                buffer.scheduled_s = float(buffer.ts[0]) + wait_s
                heapq.heappush(due, (buffer.scheduled_s, service))
        return out

    @property
    def holds_during(self) -> bool:
        """Whether :meth:`take_during` has vectors to give."""
        return bool(self._during)

    def take_during(self) -> list[LabelledVector]:
        """The vectors found inside known incidents since the last call (``keep_during``)."""
        during, self._during = self._during, []
        return during

    def feedback(self, key: str, label: bool, service: str | None = None) -> LabelledVector | None:
        """Label the buffered vector with this key now (it leaves the buffer); None if not held.
        With ``service``, only that service's vectors are searched."""
        stored = _encode_key(key)
        buffers: Iterable[tuple[str, _Buffer]]
        if service is None:
            buffers = self._buffers.items()
        else:
            found_buffer = self._buffers.get(service)
            buffers = () if found_buffer is None else ((service, found_buffer),)
        for service, buffer in buffers:
            if not buffer.n or len(stored) > buffer.keys.itemsize:
                continue
            found = np.flatnonzero(buffer.keys[: buffer.n] == stored)
            if found.size:
                (item,) = self._label(service, buffer.take(found[:1]), label, None, "feedback")
                self.counts["feedback"] += 1
                return item
        return None

    def export(self, services: Iterable[str]) -> dict[str, tuple[_Buffer, list[tuple[str, ...]]]]:
        """The buffers of these services, for a snapshot: each with the feature-name sets its
        rows' schema ids refer to (ids are this labeler's own). Live objects: pickle them."""
        return {
            service: (buffer, list(self._schema_names))
            for service in services
            if (buffer := self._buffers.get(service)) is not None
        }

    def install(
        self, buffers: Mapping[str, tuple[_Buffer, list[tuple[str, ...]]]]
    ) -> list[LabelledVector]:
        """Take over buffers from :meth:`export` (replacing these services' own): schema ids
        are mapped onto this labeler's, and each buffer's horizon is scheduled.

        Incident spans known here that the snapshot's buffer lacks (read after the snapshot
        was taken) are applied to it: returns the vectors they label. A span both know keeps
        the resolve time known by either.
        """
        known = {
            service: self._buffers[service].spans for service in buffers if service in self._buffers
        }
        self.forget(buffers)
        out: list[LabelledVector] = []
        for service, (buffer, names) in buffers.items():
            if buffer.n:
                ids = np.array([self._schema_id(n) for n in names], dtype=np.float64)
                schemas = buffer.meta[: buffer.n, 2].astype(np.intp)
                buffer.meta[: buffer.n, 2] = ids[schemas]
                buffer.scheduled_s = float(buffer.ts[0]) + (
                    self.config.horizon_s + self.config.label_grace_s
                )
                heapq.heappush(self._due, (buffer.scheduled_s, service))
            else:
                buffer.scheduled_s = None
            self._buffers[service] = buffer
            self._held += buffer.n
            out += self._merge(service, buffer, known.get(service) or ())
        return out

    def _merge(self, service: str, buffer: _Buffer, spans: Iterable[_Span]) -> list[LabelledVector]:
        """Apply ``spans`` (known here) to an installed buffer."""
        out: list[LabelledVector] = []
        unresolved_s = self.config.incident_max_s
        theirs = {span.incident_id: span for span in buffer.spans or ()}
        for span in spans:
            same = theirs.get(span.incident_id)
            if same is None and not buffer.knows(span.incident_id):
                out += self._apply(
                    service, buffer, _Span(span.incident_id, span.open_s, span.end_s)
                )
            elif same is not None and same.end_s == same.open_s + unresolved_s:  # resolved here
                same.end_s = span.end_s
        return out

    def holds(self, service: str) -> bool:
        """Whether this labeler has had vectors of ``service`` (it owns or owned it)."""
        buffer = self._buffers.get(service)
        return buffer is not None and buffer.newest_s > -math.inf

    def forget(self, services: Iterable[str]) -> None:
        """Drop services' vectors (their partition went to another detector); their heap
        entries are skipped when they come due. Their incident spans stay (every detector
        reads every label; bounded per service): the service may come back."""
        for service in services:
            buffer = self._buffers.pop(service, None)
            if buffer is not None:
                self._held -= buffer.n
                if buffer.spans or getattr(buffer, "applied", None):
                    kept = self._buffers[service] = _Buffer()
                    kept.spans, kept.applied = buffer.spans, getattr(buffer, "applied", None)

    def _schema_id(self, names: tuple[str, ...]) -> int:
        schema = self._schemas.get(names)
        if schema is None:
            schema = self._schemas[names] = len(self._schema_names)
            self._schema_names.append(names)
        return schema

    def nbytes(self) -> int:
        """An estimate of the memory held: array bytes plus fixed per-object sizes."""
        buffers = self._buffers.values()
        names = sum(49 + len(name) + 8 for names in self._schema_names for name in names)
        spans = sum(len(b.spans) for b in buffers if b.spans)
        return (
            sum(b.nbytes() for b in buffers)
            + _SERVICE_BYTES * len(self._buffers)
            + _HEAP_ENTRY_BYTES * len(self._due)
            + _INCIDENT_BYTES * (len(self._opened) + len(self._early_resolves) + spans)
            + names
        )

    def _label(
        self,
        service: str,
        taken: tuple[FloatArray, npt.NDArray[np.bytes_], Float32Array],
        label: bool,
        incident_id: str | None,
        origin: Literal["horizon", "feedback", "during_incident"] = "horizon",
    ) -> list[LabelledVector]:
        """Labelled vectors of rows taken out of a buffer (each a FeatureRow over its row)."""
        meta, keys, values = taken
        self._held -= len(meta)
        schema_names = self._schema_names
        width = values.shape[1]
        out = []
        for (ts_s, probability, schema), key, row in zip(
            meta.tolist(), keys.tolist(), values, strict=True
        ):
            names = schema_names[int(schema)]
            vector = FeatureRow(names, row if len(names) == width else row[: len(names)])
            out.append(
                LabelledVector(
                    service,
                    ts_s,
                    vector,
                    probability,
                    label,
                    "" if key == _NO_KEY else _decode_key(key),
                    incident_id,
                    origin,
                )
            )
        return out


def _copy(vector: Mapping[str, float]) -> Mapping[str, float]:
    """A vector's values, owned (a batch's rows are reused once it is done)."""
    if type(vector) is FeatureRow:
        return FeatureRow(vector.names, np.array(vector.row))
    return {name: float(value) for name, value in vector.items()}
