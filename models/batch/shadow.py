"""Shadow evidence: the champion and a challenger scored by detectors on the same live vectors.

A challenger is announced to the detectors, which score every incident-risk vector with both
the group's champion and the challenger once the vector's label is known (the models are
frozen, so this is the score either would have given when the vector was built; neither
alerts on it). :class:`ShadowTally` gathers those labelled pairs for one challenger, and
decides with :func:`~models.batch.compare.compare_scores` once enough labels, with positives
from enough distinct incidents, are in: a vector per step before each incident is positive, so
positives come in runs, and PR-AUC over two or three incidents is noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.batch.compare import Comparison, compare_scores

__all__ = ["ShadowTally"]


class ShadowTally:
    """Labelled shadow scores of one challenger against one champion.

    A vector counts once: a detector that re-reads records after a restart publishes their
    rows again, and the repeat (same service and event time) is ignored.

    Args:
        kind: The models' kind (``risk``).
        champion_version: The champion the challenger must beat.
        challenger_version: The challenger.
        started_s: Wall-clock time the challenger was announced (epoch seconds).

    Examples:
        >>> tally = ShadowTally("risk", "old", "new")
        >>> for i in range(200):
        ...     y = i % 10 == 0
        ...     _ = tally.add("api", float(i), y, 0.5, 0.9 if y else 0.1, f"inc-{i // 40}")
        >>> tally.add("api", 0.0, True, 0.5, 0.9)  # a repeat: ignored
        False
        >>> tally.rows, tally.positives, tally.incidents, tally.ready(100, min_incidents=5)
        (200, 20, 5, True)
        >>> c = tally.decide(margin=0.05)
        >>> c.promote, c.reason, c.evidence, c.challenger_pr_auc
        (True, 'better', 'shadow', 1.0)
    """

    def __init__(
        self, kind: str, champion_version: str, challenger_version: str, started_s: float = 0.0
    ) -> None:
        self.kind = kind
        self.champion_version = champion_version
        self.challenger_version = challenger_version
        self.started_s = started_s
        self._seen: set[tuple[str, float]] = set()
        self._incidents: set[str] = set()
        self._labels: list[bool] = []
        self._champion: list[float] = []
        self._challenger: list[float] = []

    @property
    def rows(self) -> int:
        """Labelled vectors scored by both."""
        return len(self._labels)

    @property
    def positives(self) -> int:
        """Positive ones among them."""
        return sum(self._labels)

    @property
    def incidents(self) -> int:
        """Distinct incidents the positive vectors preceded."""
        return len(self._incidents)

    def add(
        self,
        service: str,
        ts_s: float,
        label: bool,
        champion_p: float,
        challenger_p: float,
        incident_id: str | None = None,
    ) -> bool:
        """One labelled vector's two scores (and the incident that made it positive); False
        for a repeat or a non-finite score."""
        key = (service, ts_s)
        if key in self._seen or not (np.isfinite(champion_p) and np.isfinite(challenger_p)):
            return False
        self._seen.add(key)
        if label and incident_id is not None:
            self._incidents.add(incident_id)
        self._labels.append(bool(label))
        self._champion.append(float(champion_p))
        self._challenger.append(float(challenger_p))
        return True

    def add_row(self, row: dict[str, Any]) -> bool:
        """A published risk row (see :mod:`stream.detector.training_feed`) carrying shadow scores
        (``sh``: version to probability) of both models; False when it does not."""
        scores = row.get("sh")
        label = row.get("y")
        if not isinstance(scores, dict) or label is None:
            return False
        champion = scores.get(self.champion_version)
        challenger = scores.get(self.challenger_version)
        if champion is None or challenger is None:
            return False
        incident = row.get("i")
        return self.add(
            str(row["s"]),
            float(row["t"]),
            bool(label),
            champion,
            challenger,
            None if incident is None else str(incident),
        )

    def ready(self, min_rows: int, min_incidents: int) -> bool:
        """Enough evidence to decide: ``min_rows`` labelled vectors, and positive ones before
        ``min_incidents`` distinct incidents."""
        return self.rows >= min_rows and self.incidents >= min_incidents

    def decide(self, margin: float) -> Comparison:
        """Promote the challenger only if its PR-AUC beats the champion's by ``margin``."""
        return compare_scores(
            self.kind,
            self.champion_version,
            self.challenger_version,
            np.array(self._labels, dtype=np.float64),
            np.array(self._champion, dtype=np.float64),
            np.array(self._challenger, dtype=np.float64),
            margin=margin,
            evidence="shadow",
        )

    def as_dict(self) -> dict[str, Any]:
        """Progress, JSON-ready (for ``GET /models``)."""
        return {
            "champion": self.champion_version,
            "challenger": self.challenger_version,
            "started_s": self.started_s,
            "rows": self.rows,
            "positives": self.positives,
            "incidents": self.incidents,
        }
