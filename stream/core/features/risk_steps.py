"""A service's steps of event time, for its risk vectors: the open step's running sums and
the service's trailing state (step means, recent z-scores, latest log window).

These are snapshotted (their stable names in ``stream.detector.snapshot_classes`` are those
of ``stream.features.risk``, where they were first defined).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stream.schemas import Evidence

__all__ = ["Closed", "Located", "ServiceSteps", "Step", "labels_at"]

FloatArray = npt.NDArray[np.float64]


class Step:
    """Running sums of one service's current step."""

    __slots__ = (
        "count",
        "deploys",
        "flagged",
        "index",
        "last_row",
        "last_ts",
        "locate",
        "names",
        "ratio",
        "v_count",
        "v_sum",
    )

    def __init__(self, index: int, names: tuple[str, ...], v_sum: FloatArray, v_count: FloatArray):
        self.index = index
        self.names = names
        self.v_sum = v_sum
        self.v_count = v_count
        self.count = 0
        self.ratio = 0.0
        self.flagged = 0
        self.deploys = 0
        self.last_ts = 0.0
        self.locate: Callable[[int], Evidence] | None = None
        self.last_row = 0


class Located:
    """Evidence already looked up: where a snapshot's open step ended, and that event's
    labels (``region``, ``host``, ``deploy_recent``: its alert's)."""

    __slots__ = ("evidence", "found_labels")

    def __init__(self, evidence: Evidence, labels: dict[str, str] | None = None) -> None:
        self.evidence = evidence
        self.found_labels = labels if labels is not None else {}

    def __call__(self, row: int) -> Evidence:
        return self.evidence

    def labels(self, row: int) -> dict[str, str]:
        """The labels of the event the evidence points at."""
        return self.found_labels


def labels_at(locate: Callable[[int], Evidence], row: int) -> dict[str, str]:
    """The labels of the event stored at batch row ``row``, where ``locate`` (a step's
    evidence look-up) knows them through a ``labels(row)`` method; none otherwise."""
    labels: Callable[[int], dict[str, str]] | None = getattr(locate, "labels", None)
    return labels(row) if labels is not None else {}


class ServiceSteps:
    """One service's open step, its trailing step means, recent z-scores and log window."""

    __slots__ = ("baseline", "center", "filled", "history", "log", "names", "scale", "step")

    def __init__(self) -> None:
        self.step: Step | None = None
        self.names: tuple[str, ...] = ()
        self.baseline: npt.NDArray[np.float32] = np.empty((0, 0), dtype=np.float32)
        """Ring of the last step means (float32: a baseline needs no more)."""
        self.filled = 0
        self.center: FloatArray | None = None
        self.scale: FloatArray = np.empty(0)
        self.history: list[FloatArray] = []
        """The last ``trend_steps`` z-score rows, oldest first."""
        self.log: dict[str, float] = {}

    def reset(self, names: tuple[str, ...], steps: int) -> None:
        """A new feature set: the baseline starts again (and the trend: see
        ``StepVectors.close_all``)."""
        self.names = names
        self.baseline = np.full((steps, len(names)), np.nan, dtype=np.float32)
        self.filled = 0
        self.center = None


class Closed(NamedTuple):
    """A step closed by a batch, with the service it belongs to."""

    service: str
    state: ServiceSteps
    step: Step
    row: int = -1
    """The batch row that closed it (the service's first row of a later step)."""
