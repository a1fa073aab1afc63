"""Champion/challenger: does a freshly fitted model beat the one in force?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score

from models.batch._shared import align
from models.batch.risk import RiskArtifact

__all__ = ["Artifact", "Comparison", "Evidence", "Reason", "compare", "compare_scores"]

Artifact = RiskArtifact
"""What the sidecar fits and :func:`compare` compares (rows scored by ``score(X, names)``).
The batch anomaly model that was the other kind is gone (docs/sidecar.md)."""

Reason = Literal["no_champion", "better", "not_better", "no_labels", "no_positives"]
"""Why a challenger was (not) promoted: there was no champion; it beat the champion by the
margin; it did not; the rows had no labels (or none after the challenger's training data);
they had no positive (PR-AUC is undefined): in the last two cases it cannot be compared."""

Evidence = Literal["holdout", "shadow"]
"""Where the labelled rows came from: the sidecar's holdout (both models scored by the
sidecar), or the detectors' shadow scores of live vectors labelled since the challenger was
announced (see :mod:`models.batch.shadow`)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The verdict of :func:`compare`, with both figures.

    Attributes:
        promote: Whether the challenger should replace the champion.
        reason: See :data:`Reason`.
        detail: One human sentence.
        kind: ``risk``.
        champion_version: None when there was no champion.
        challenger_version: The challenger's version.
        champion_pr_auc: The champion's PR-AUC on the rows (None when not computed).
        challenger_pr_auc: The challenger's PR-AUC on the rows (None when not computed).
        rows: Labelled rows scored.
        positives: Positive rows among them.
        margin: The absolute PR-AUC gain required.
        evidence: See :data:`Evidence`.

    Examples:
        >>> from models.batch.risk_fit import _example
        >>> c = compare(None, _example(), ["latency"], [[0.0]], [np.nan])
        >>> c.as_dict()["promote"], c.reason, c.champion_version
        (True, 'no_champion', None)
    """

    promote: bool
    reason: Reason
    detail: str
    kind: str
    champion_version: str | None
    challenger_version: str
    champion_pr_auc: float | None
    challenger_pr_auc: float | None
    rows: int
    positives: int
    margin: float
    evidence: Evidence = "holdout"

    def as_dict(self) -> dict[str, Any]:
        """Plain values, JSON-ready."""
        return asdict(self)


def compare(
    champion: Artifact | None,
    challenger: Artifact,
    names: Sequence[str],
    X: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    margin: float = 0.01,
    ts_s: npt.ArrayLike | None = None,
) -> Comparison:
    """Score both models on the same labelled rows; promote only a clear winner.

    Both are scored by PR-AUC (average precision) of their probabilities over the rows with a
    label (NaN labels are left out). The challenger is promoted when there is no champion, or when
    its PR-AUC is at least ``margin`` above the champion's. Rows without labels, or without
    a positive, cannot compare the two: the champion stays. ``X``'s columns are ``names``;
    each model picks its own features from them (a missing one is imputed).

    Pass ``ts_s`` so only rows after the challenger's training data are scored (rows it was
    fitted on would flatter it; its holdout is fair, since PR-AUC ignores its threshold).

    Raises:
        ValueError: ``margin`` is negative.

    Examples:
        >>> from models.batch.risk_fit import _example
        >>> good = _example()
        >>> rng = np.random.default_rng(5)
        >>> y = (rng.random(400) < 0.1).astype(float)
        >>> X = np.c_[rng.normal(size=400) + 2.5 * y, rng.normal(size=400)]
        >>> c = compare(None, good, ["latency", "noise"], X, y)
        >>> c.promote, c.reason
        (True, 'no_champion')
        >>> c = compare(good, good, ["latency", "noise"], X, y, margin=0.01)
        >>> c.promote, c.reason, c.champion_pr_auc == c.challenger_pr_auc
        (False, 'not_better', True)
        >>> compare(good, good, ["latency", "noise"], X, np.full(400, np.nan)).reason
        'no_labels'
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    given = np.asarray(labels, np.float64).ravel()
    keep = ~np.isnan(given)
    if ts_s is not None and challenger.train_range is not None:
        times = np.asarray(ts_s, np.float64).ravel()
        keep &= times > challenger.train_range["last_ts_s"]
    matrix = align(names, X, names)[keep]
    y = given[keep] > 0.5
    positives = int(y.sum())

    scored = y.size > 0 and positives > 0
    return compare_scores(
        challenger.kind,
        None if champion is None else champion.version,
        challenger.version,
        y,
        None if champion is None else champion.score(matrix, names) if scored else np.zeros(y.size),
        challenger.score(matrix, names) if scored else np.zeros(y.size),
        margin=margin,
    )


def compare_scores(
    kind: str,
    champion_version: str | None,
    challenger_version: str,
    labels: npt.ArrayLike,
    champion_scores: npt.ArrayLike | None,
    challenger_scores: npt.ArrayLike,
    *,
    margin: float = 0.01,
    evidence: Evidence = "holdout",
) -> Comparison:
    """Decide on scores both models already gave the same labelled rows (see :func:`compare`);
    with no champion (``champion_version`` None) the challenger is promoted.

    Examples:
        >>> y = [0, 0, 1, 1, 0]
        >>> c = compare_scores("risk", "old", "new", y, [.9, .1, .2, .8, .3], [.1, .2, .9, .8, .3],
        ...                    margin=0.05, evidence="shadow")
        >>> c.promote, c.reason, c.champion_pr_auc < c.challenger_pr_auc, c.evidence
        (True, 'better', True, 'shadow')
        >>> compare_scores("risk", "old", "new", [0, 0], [.1, .2], [.2, .1]).reason
        'no_positives'
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    y = np.asarray(labels, np.float64).ravel() > 0.5
    positives = int(y.sum())

    def verdict(
        promote: bool,
        reason: Reason,
        detail: str,
        champion_pr_auc: float | None = None,
        challenger_pr_auc: float | None = None,
    ) -> Comparison:
        return Comparison(
            promote=promote,
            reason=reason,
            detail=detail,
            kind=kind,
            champion_version=champion_version,
            challenger_version=challenger_version,
            champion_pr_auc=champion_pr_auc,
            challenger_pr_auc=challenger_pr_auc,
            rows=int(y.size),
            positives=positives,
            margin=margin,
            evidence=evidence,
        )

    if champion_version is None or champion_scores is None:  # nothing to beat
        score = (
            float(average_precision_score(y, np.asarray(challenger_scores, np.float64).ravel()))
            if positives
            else None
        )
        return verdict(True, "no_champion", "no champion: the challenger is promoted", None, score)
    if y.size == 0:
        return verdict(False, "no_labels", "no labelled rows: the models cannot be compared")
    if positives == 0:
        detail = f"no positive among {y.size} labelled rows: the models cannot be compared"
        return verdict(False, "no_positives", detail)
    old = float(average_precision_score(y, np.asarray(champion_scores, np.float64).ravel()))
    new = float(average_precision_score(y, np.asarray(challenger_scores, np.float64).ravel()))
    better = new - old >= margin - 1e-12
    detail = (
        f"challenger PR-AUC {new:.4f} vs champion {old:.4f} on {y.size} {evidence} rows "
        f"({positives} positive): {'at least' if better else 'less than'} the margin {margin}"
    )
    return verdict(better, "better" if better else "not_better", detail, old, new)
