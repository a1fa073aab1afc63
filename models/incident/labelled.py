"""Labelled risk vectors: what the horizon labeler gives out, ready to be learned and scored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.incident.feature_row import FeatureRow
from models.incident.label_buffer import NO_KEY, Taken, decode_key

__all__ = ["LabelledVector", "Origin", "labelled_now", "labelled_rows"]

Origin = Literal["horizon", "feedback", "during_incident"]
"""What labelled a vector (see :attr:`LabelledVector.origin`)."""


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
            "an incident is under way", see
            :meth:`~models.incident.labels.HorizonLabeler.take_during`).
    """

    service: str
    ts_s: float
    vector: Mapping[str, float]
    probability: float
    label: bool
    key: str
    incident_id: str | None
    origin: Origin


def labelled_rows(
    service: str,
    taken: Taken,
    schema_names: list[tuple[str, ...]],
    label: bool,
    incident_id: str | None,
    origin: Origin = "horizon",
) -> list[LabelledVector]:
    """Labelled vectors of rows taken out of a buffer (each a FeatureRow over its row); a
    row's schema id indexes ``schema_names``."""
    meta, keys, values = taken
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
                "" if key == NO_KEY else decode_key(key),
                incident_id,
                origin,
            )
        )
    return out


def labelled_now(
    service: str,
    ts_s: float,
    vector: Mapping[str, float],
    probability: float,
    key: str,
    incident_id: str,
    origin: Origin,
) -> LabelledVector:
    """A vector labelled True as it arrives (a known incident settles it), with its values
    copied."""
    return LabelledVector(
        service, ts_s, _owned(vector), probability, True, key, incident_id, origin
    )


def _owned(vector: Mapping[str, float]) -> Mapping[str, float]:
    """A vector's values, owned (a batch's rows are reused once it is done)."""
    if type(vector) is FeatureRow:
        return FeatureRow(vector.names, np.array(vector.row))
    return {name: float(value) for name, value in vector.items()}
