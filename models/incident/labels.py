"""Horizon labels for incident-risk vectors: positive when an incident opens soon after."""

from __future__ import annotations

import collections
import heapq
import math
from collections.abc import Iterable, Mapping

import numpy as np

from models.incident.config import RiskConfig
from models.incident.held_vectors import HeldVectors
from models.incident.label_buffer import Span, VectorBuffer, encode_key
from models.incident.labelled import LabelledVector, Origin, labelled_now

__all__ = ["OUTCOMES", "HorizonLabeler"]

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

_REMEMBERED_INCIDENTS = 20_000  # incident ids kept to recognise duplicate opens
_EARLY_RESOLVES = 10_000  # resolves waiting for their open
# CPython 3.11 (64-bit) sizes for the estimate in nbytes(), checked against tracemalloc by
# tests/unit/models/incident/test_incident_labels.py: a service's buffer object, its three
# array headers and its dict entry; one heap entry; one remembered incident id (id string
# and table entry).
_SERVICE_BYTES = 700
_HEAP_ENTRY_BYTES = 80
_INCIDENT_BYTES = 200


class HorizonLabeler(HeldVectors):
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
        super().__init__(config)
        self.keep_during = keep_during
        self._during: list[LabelledVector] = []
        self.counts: collections.Counter[str] = collections.Counter(dict.fromkeys(OUTCOMES, 0))
        self._opened: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._early_resolves: collections.OrderedDict[str, float] = collections.OrderedDict()

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
        buffer = self._buffer(service)
        buffer.newest_s = max(buffer.newest_s, ts_s)
        settled = self._settle(buffer, ts_s)
        if settled is None:
            out = self._make_room(service, buffer, ts_s, expire)
            self._hold(service, buffer, ts_s, vector, probability, key)
            return out
        span, origin = settled
        if origin == "during_incident" and not self.keep_during:
            return []
        labelled = labelled_now(service, ts_s, vector, probability, key, span.incident_id, origin)
        if origin == "during_incident":
            self._during.append(labelled)
            return []
        return [labelled]

    def _settle(self, buffer: VectorBuffer, ts_s: float) -> tuple[Span, Origin] | None:
        """The known incident that settles a vector at ``ts_s`` as it arrives, and how
        (counted): inside it (``"during_incident"``: no risk label, kept for
        :meth:`take_during` with ``keep_during``), or opening within the horizon after it
        (``"horizon"``: a positive). None when no known incident does."""
        if not buffer.spans:
            return None
        if len(buffer.spans) > 4:  # a backlog of known incidents: forget the finished
            keep_after_s = ts_s - self.config.horizon_s - self.config.label_grace_s
            buffer.spans = [s for s in buffer.spans if s.end_s >= keep_after_s]
        inside = buffer.span_at(ts_s)
        if inside is not None:
            self.counts["during_incident"] += 1
            return inside, "during_incident"
        span = buffer.span_ahead(ts_s, self.config.horizon_s)
        if span is not None:
            self.counts["positive"] += 1
            return span, "horizon"
        return None

    def _make_room(
        self, service: str, buffer: VectorBuffer, ts_s: float, expire: bool
    ) -> list[LabelledVector]:
        """What a full buffer gives up before it holds a vector at ``ts_s``: its vectors due
        by then (negatives, with ``expire``), else its oldest (evicted)."""
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
        return out

    def in_incident(self, service: str, ts_s: float) -> bool:
        """Whether a known incident of ``service`` was open at ``ts_s`` (risk alerts then
        say nothing an operator does not know)."""
        buffer = self._buffers.get(service)
        return buffer is not None and bool(buffer.spans) and buffer.span_at(ts_s) is not None

    def incidents_of(self, service: str) -> list[tuple[str, float]]:
        """The known incidents of ``service`` still remembered: (incident id, open time)."""
        buffer = self._buffers.get(service)
        spans = (buffer.spans if buffer is not None else None) or ()
        return [(span.incident_id, span.open_s) for span in spans]

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
        buffer = self._buffer(service)
        if buffer.knows(incident_id):
            return []  # known from a restored snapshot: the topic is read again at start
        if buffer.newest_s == -math.inf:
            self.counts["unknown_service"] += 1
        if buffer.last_expired_s > ts_s - self.config.horizon_s:
            self.counts["late"] += 1
        return self._apply(service, buffer, Span(incident_id, ts_s, end_s))

    def _apply(self, service: str, buffer: VectorBuffer, span: Span) -> list[LabelledVector]:
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

    def expire(self, now_s: float, lane: int | None = None) -> list[LabelledVector]:
        """Vectors whose horizon and grace passed by ``now_s`` (event time): negatives; only
        those of the services of ``lane`` (see ``lanes``)."""
        out: list[LabelledVector] = []
        wait_s = self.config.horizon_s + self.config.label_grace_s
        due = self._dues.get(lane, [])
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
        stored = encode_key(key)
        buffers: Iterable[tuple[str, VectorBuffer]]
        if service is None:
            buffers = self._buffers.items()
        else:
            found_buffer = self._buffers.get(service)
            buffers = () if found_buffer is None else ((service, found_buffer),)
        for service, buffer in buffers:
            found = buffer.find_key(stored)
            if found.size:
                (item,) = self._label(service, buffer.take(found[:1]), label, None, "feedback")
                self.counts["feedback"] += 1
                return item
        return None

    def install(
        self, buffers: Mapping[str, tuple[VectorBuffer, list[tuple[str, ...]]]]
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
            self._take_over(service, buffer, names)
            out += self._merge(service, buffer, known.get(service) or ())
        return out

    def _merge(
        self, service: str, buffer: VectorBuffer, spans: Iterable[Span]
    ) -> list[LabelledVector]:
        """Apply ``spans`` (known here) to an installed buffer."""
        out: list[LabelledVector] = []
        unresolved_s = self.config.incident_max_s
        theirs = {span.incident_id: span for span in buffer.spans or ()}
        for span in spans:
            same = theirs.get(span.incident_id)
            if same is None and not buffer.knows(span.incident_id):
                out += self._apply(service, buffer, Span(span.incident_id, span.open_s, span.end_s))
            elif same is not None and same.end_s == same.open_s + unresolved_s:  # resolved here
                same.end_s = span.end_s
        return out

    def nbytes(self) -> int:
        """An estimate of the memory held: array bytes plus fixed per-object sizes."""
        buffers = self._buffers.values()
        names = sum(49 + len(name) + 8 for names in self._schema_names for name in names)
        spans = sum(len(b.spans) for b in buffers if b.spans)
        return (
            sum(b.nbytes() for b in buffers)
            + _SERVICE_BYTES * len(self._buffers)
            + _HEAP_ENTRY_BYTES * sum(len(heap) for heap in self._dues.values())
            + _INCIDENT_BYTES * (len(self._opened) + len(self._early_resolves) + spans)
            + names
        )
