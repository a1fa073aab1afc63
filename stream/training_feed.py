"""The detector's side of batch retraining: what it scored, published for the sidecar.

Two kinds of rows go to the features topic (``VIGIL_TOPIC_FEATURES``), a batch of rows per
message:

- ``anomaly``: a random sample (``VIGIL_FEATURE_SAMPLE_RATE``, 1 % by default) of the metric
  events scored, with their metrics and anomaly score (null while warming up);
- ``risk``: every incident-risk vector once its label is known, with the label and the
  incident that made it positive.

Row fields: ``k`` kind, ``g`` model group, ``s`` service, ``t`` event time (epoch seconds),
``f`` features, ``score``, ``y`` label, ``i`` incident id. Training data is best effort: a
send that fails is logged and counted, never retried, and never holds up a commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import structlog

from models.incident import LabelledVector
from stream.pipeline import BatchOutcome
from stream.publisher import Publisher
from stream.schemas import MetricSample

__all__ = ["TrainingFeed"]

log = structlog.get_logger(__name__)

_ROWS_PER_MESSAGE = 2000


class TrainingFeed:
    """Collects a batch's training rows and publishes them in one go.

    Args:
        publisher: The detector's producer.
        topic: The features topic.
        sample_rate: Share of metric events published.
        group_of: The model group of a service.
        on_failure: Told of each failed send (a counter).
        seed: Seeds the sampling.
    """

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        sample_rate: float,
        group_of: Callable[[str], str],
        on_failure: Callable[[], None] = lambda: None,
        seed: int = 0,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._rate = sample_rate
        self._group_of = group_of
        self._on_failure = on_failure
        self._rng = np.random.default_rng(seed)
        self._rows: list[dict[str, Any]] = []

    def metric_batch(self, events: Sequence[MetricSample], outcome: BatchOutcome) -> None:
        """Sample a scored metric batch."""
        if self._rate <= 0 or not events:
            return
        picked = np.flatnonzero(self._rng.random(len(events)) < self._rate).tolist()
        for i in picked:
            event = events[i]
            score = None if outcome.warming_up[i] else float(outcome.scores[i])
            self._rows.append(
                {
                    "k": "anomaly",
                    "g": self._group_of(event.service),
                    "s": event.service,
                    "t": event.ts.timestamp(),
                    "f": dict(event.metrics),
                    "score": score,
                }
            )

    def labelled(self, group: str, item: LabelledVector) -> None:
        """An incident-risk vector whose label became known."""
        self._rows.append(
            {
                "k": "risk",
                "g": group,
                "s": item.service,
                "t": item.ts_s,
                "f": {name: float(value) for name, value in item.vector.items()},
                "y": item.label,
                "i": item.incident_id,
            }
        )

    async def flush(self) -> int:
        """Send what was collected; returns the number of rows sent."""
        rows, self._rows = self._rows, []
        for start in range(0, len(rows), _ROWS_PER_MESSAGE):
            chunk = rows[start : start + _ROWS_PER_MESSAGE]
            try:
                ack = await self._publisher.send_json(self._topic, b"features", {"rows": chunk})
            except Exception as exc:
                self._failed(exc)
                continue
            ack.add_done_callback(self._check)
        return len(rows)

    def _check(self, ack: asyncio.Future[Any]) -> None:
        if not ack.cancelled() and ack.exception() is not None:
            self._failed(ack.exception())

    def _failed(self, exc: BaseException | None) -> None:
        self._on_failure()
        log.warning("training_rows_not_sent", topic=self._topic, error=str(exc))
