"""The detector's side of batch retraining: labelled risk vectors, published for the sidecar.

Rows go to the features topic (``VIGIL_TOPIC_FEATURES``), a batch of rows per message: every
incident-risk vector once its label is known (kind ``risk``), with the label, the incident
that made it positive and the online model's prediction; while the sidecar has a challenger
in shadow for the group, also the probabilities the champion and the challenger give it
(``sh``, by version: the shadow scores the sidecar decides on).

Row fields: ``k`` kind, ``g`` model group, ``s`` service, ``t`` event time (epoch seconds),
``f`` features, ``y`` label, ``i`` incident id, ``p`` the online probability, ``sh`` shadow
scores.

Detectors before this version also published a 1 % sample of scored metric events (kind
``anomaly``) to train the sidecar's IsolationForest; that model did not help the online one
(docs/sidecar.md) and is gone, and so are those rows (a sidecar skips any it still reads).

Shadow scores are computed when the label arrives, from the features the vector had when it
was built: batch models are frozen, so that is the score either model would have given then,
and no score is computed for a vector that will not be compared. Training data is best effort: a
send that fails is logged and counted, never retried, and never holds up a commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
import structlog

from models.batch import RiskArtifact
from models.incident import LabelledVector
from stream.kafka.publisher import Publisher

__all__ = ["ShadowModels", "ShadowOutcome", "TrainingFeed"]

log = structlog.get_logger(__name__)

_MESSAGE_BYTES = 512 * 1024  # well under Kafka's 1 MiB default record and request limits

ShadowModels = Callable[[str], tuple[RiskArtifact, RiskArtifact] | None]
"""A group's risk champion and challenger while a challenger is in shadow, else None."""

ShadowOutcome = Callable[[str, str, str, int], None]
"""Told (group, role, outcome, count) for the vectors scored in shadow: role ``champion`` or
``challenger``, outcome ``tp``/``fp``/``fn``/``tn`` at the model's own threshold."""


class TrainingFeed:
    """Collects a batch's training rows and publishes them in one go.

    Args:
        publisher: The detector's producer.
        topic: The features topic.
        on_failure: Told of each failed send (a counter).
        shadow_of: A group's champion and challenger in shadow (None: no shadow scoring).
        on_shadow: Told how the shadow scores fared (metrics).
    """

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        on_failure: Callable[[], None] = lambda: None,
        shadow_of: ShadowModels | None = None,
        on_shadow: ShadowOutcome | None = None,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._on_failure = on_failure
        self._rows: list[dict[str, Any]] = []
        self.shadow_of = shadow_of
        self._on_shadow = on_shadow
        self._labelled: dict[str, list[tuple[dict[str, Any], Mapping[str, float]]]] = {}

    def labelled(self, group: str, item: LabelledVector) -> None:
        """An incident-risk vector whose label became known."""
        row = {
            "k": "risk",
            "g": group,
            "s": item.service,
            "t": item.ts_s,
            "f": {name: float(value) for name, value in item.vector.items()},
            "y": item.label,
            "i": item.incident_id,
            "p": item.probability,
        }
        self._rows.append(row)
        if self.shadow_of is not None:
            self._labelled.setdefault(group, []).append((row, item.vector))

    def _score_in_shadow(self) -> None:
        """Add the champion's and the challenger's probabilities to the labelled rows of each
        group that has a challenger in shadow (one matrix per group and model)."""
        labelled, self._labelled = self._labelled, {}
        if self.shadow_of is None:
            return
        for group, items in labelled.items():
            models = self.shadow_of(group)
            if models is None:
                continue
            vectors = [vector for _, vector in items]
            labels = np.array([bool(row["y"]) for row, _ in items])
            for role, model in zip(("champion", "challenger"), models, strict=True):
                probabilities = model.predict_mappings(vectors)
                for (row, _), p in zip(items, probabilities.tolist(), strict=True):
                    row.setdefault("sh", {})[model.version] = p
                if self._on_shadow is not None:
                    flags = probabilities >= model.threshold
                    for outcome, count in (
                        ("tp", flags & labels),
                        ("fp", flags & ~labels),
                        ("fn", ~flags & labels),
                        ("tn", ~flags & ~labels),
                    ):
                        self._on_shadow(group, role, outcome, int(count.sum()))

    async def flush(self) -> int:
        """Send what was collected; returns the number of rows sent."""
        self._score_in_shadow()
        rows, self._rows = self._rows, []
        for message in _messages(rows, _MESSAGE_BYTES):
            try:
                ack = await self._publisher.send_bytes(self._topic, b"features", message)
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


def _messages(rows: list[dict[str, Any]], max_bytes: int) -> list[bytes]:
    """``{"rows": [...]}`` messages of at most ``max_bytes`` each (a single larger row gets a
    message of its own).

    Examples:
        >>> [len(m) for m in _messages([{"a": 1}] * 5, 30)]
        [26, 26, 18]
    """
    messages: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for row in rows:
        part = orjson.dumps(row)
        if parts and size + len(part) + 1 > max_bytes - 10:
            messages.append(b'{"rows":[' + b",".join(parts) + b"]}")
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        messages.append(b'{"rows":[' + b",".join(parts) + b"]}")
    return messages
