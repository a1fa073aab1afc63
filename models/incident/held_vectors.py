"""Risk vectors of many services held until they are labelled (the labeler's storage).

Each service's vectors sit in a :class:`~models.incident.label_buffer.VectorBuffer`; their
rows carry a schema id for their tuple of feature names (interned once per distinct tuple);
a heap of (due time, service), one live entry per service, says when a buffer's oldest vector
has waited its horizon and grace: one heap per lane (a service's lane is ``lanes[service]``,
e.g. its input partition, or None), so that a lane's horizons pass on the lane's own time.
Buffers move between detectors with their services (:meth:`HeldVectors.export`,
:meth:`HeldVectors.forget`). What label a vector gets is
:class:`~models.incident.labels.HorizonLabeler`'s part.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping

import numpy as np

from models.incident.config import RiskConfig
from models.incident.feature_row import FeatureRow
from models.incident.label_buffer import Taken, VectorBuffer, encode_key
from models.incident.labelled import LabelledVector, Origin, labelled_rows

__all__ = ["HeldVectors"]


class HeldVectors:
    """Vectors held per service, their feature-name schemas and their expiry heap.

    Args:
        config: Horizon and grace (a buffer is due when its oldest vector has waited both).
    """

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self._buffers: dict[str, VectorBuffer] = {}
        self._dues: dict[int | None, list[tuple[float, str]]] = {None: []}
        """Lane -> its heap of (due time, service)."""
        self.lanes: dict[str, int] = {}
        """Service -> its lane (a service not here is in lane None)."""
        self._schemas: dict[tuple[str, ...], int] = {}
        self._schema_names: list[tuple[str, ...]] = []
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def export(
        self, services: Iterable[str]
    ) -> dict[str, tuple[VectorBuffer, list[tuple[str, ...]]]]:
        """The buffers of these services, for a snapshot: each with the feature-name sets its
        rows' schema ids refer to (ids are this labeler's own). Live objects: pickle them."""
        return {
            service: (buffer, list(self._schema_names))
            for service in services
            if (buffer := self._buffers.get(service)) is not None
        }

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
                    kept = self._buffers[service] = VectorBuffer()
                    kept.spans, kept.applied = buffer.spans, getattr(buffer, "applied", None)

    def _buffer(self, service: str) -> VectorBuffer:
        """The service's buffer, made empty if it has none."""
        buffer = self._buffers.get(service)
        if buffer is None:
            buffer = self._buffers[service] = VectorBuffer()
        return buffer

    def _hold(
        self,
        service: str,
        buffer: VectorBuffer,
        ts_s: float,
        vector: Mapping[str, float],
        probability: float,
        key: str,
    ) -> None:
        """Store a vector in its service's buffer and schedule the buffer's expiry."""
        if type(vector) is FeatureRow:
            names, row = vector.names, vector.row
        else:
            names = tuple(vector)
            row = np.fromiter(vector.values(), dtype=np.float32, count=len(names))
        schema = self._schema_id(names)
        buffer.insert(ts_s, probability, schema, encode_key(key), row)
        self._held += 1
        due = ts_s + self.config.horizon_s + self.config.label_grace_s
        if buffer.scheduled_s is None or due < buffer.scheduled_s:
            buffer.scheduled_s = due
            heapq.heappush(self._heap(service), (due, service))

    def _take_over(self, service: str, buffer: VectorBuffer, names: list[tuple[str, ...]]) -> None:
        """Hold an exported buffer (from :meth:`export`, ``names`` its schemas): its schema
        ids mapped onto these, its horizon scheduled."""
        if buffer.n:
            buffer.renumber_schemas(np.array([self._schema_id(n) for n in names], dtype=np.float64))
            buffer.scheduled_s = float(buffer.ts[0]) + (
                self.config.horizon_s + self.config.label_grace_s
            )
            heapq.heappush(self._heap(service), (buffer.scheduled_s, service))
        else:
            buffer.scheduled_s = None
        self._buffers[service] = buffer
        self._held += buffer.n

    def _heap(self, service: str) -> list[tuple[float, str]]:
        """The expiry heap of the service's lane."""
        lane = self.lanes.get(service)
        heap = self._dues.get(lane)
        if heap is None:
            heap = self._dues[lane] = []
        return heap

    def drop_lane(self, lane: int) -> None:
        """Forget a lane's expiry heap (its services went to another detector)."""
        self._dues.pop(lane, None)

    def _schema_id(self, names: tuple[str, ...]) -> int:
        schema = self._schemas.get(names)
        if schema is None:
            schema = self._schemas[names] = len(self._schema_names)
            self._schema_names.append(names)
        return schema

    def _label(
        self,
        service: str,
        taken: Taken,
        label: bool,
        incident_id: str | None,
        origin: Origin = "horizon",
    ) -> list[LabelledVector]:
        """Labelled vectors of rows taken out of a buffer (each a FeatureRow over its row)."""
        self._held -= len(taken[0])
        return labelled_rows(service, taken, self._schema_names, label, incident_id, origin)
