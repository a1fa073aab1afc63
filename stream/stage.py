"""What the detector's stages (log, incident risk) share with it."""

from __future__ import annotations

import collections
from dataclasses import dataclass

from stream.publisher import Publisher
from stream.records import DeadLetterer
from stream.telemetry import DetectorMetrics

__all__ = ["StageContext"]


@dataclass(frozen=True, slots=True)
class StageContext:
    """Where a stage's output goes, what it counts, and where bad records go.

    Attributes:
        publisher: Sends alerts (and dead letters); each send returns an ack to await.
        metrics: The detector's Prometheus metrics.
        counts: The detector's running totals (stages add to ``scored`` and ``alerts``).
        dead_letter: The detector's dead-letter path, for records that do not decode.
        max_message_bytes: Larger records are dead-lettered as ``too_large``.
    """

    publisher: Publisher
    metrics: DetectorMetrics
    counts: collections.Counter[str]
    dead_letter: DeadLetterer
    max_message_bytes: int
