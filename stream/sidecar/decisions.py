"""Champion or challenger: what becomes of each model the sidecar fits, group by group.

The first model of a group is promoted (there is no champion to beat). A later risk model is
a *challenger*: announced to the detectors (key ``model/risk/<group>/challenger``), which
score every labelled vector with both it and the champion in shadow, without alerting on it
(:mod:`stream.detector.training_feed`). Once ``VIGIL_SIDECAR_SHADOW_MIN_ROWS`` such vectors,
their positives before ``VIGIL_SIDECAR_SHADOW_MIN_INCIDENTS`` distinct incidents, are in
(:class:`~models.batch.ShadowTally`), it is promoted only if its PR-AUC beats the champion's
by ``VIGIL_SIDECAR_MARGIN`` on them; otherwise it is recorded as rejected. A newer challenger
supersedes one still in shadow. With ``VIGIL_SIDECAR_DECISION=holdout`` it is decided at once
on its holdout instead (the most recent labelled rows, which neither model saw). Every
decision is stored with its artifact (:mod:`stream.sidecar.artifacts`); the sidecar
(:mod:`stream.sidecar.service`) announces it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from models.batch import Artifact, ShadowTally, TrainingWindow, WindowFrame, compare
from models.drift import FeatureDrift
from stream.settings import Settings
from stream.sidecar.artifacts import ArtifactError, ArtifactStore
from stream.sidecar.metrics import KINDS, SidecarMetrics

__all__ = ["Decisions", "GroupState"]

log = structlog.get_logger(__name__)

_REFERENCE_ROWS = 5000  # training rows kept with a champion as its drift reference


@dataclass
class GroupState:
    """What the sidecar knows of one kind and group beyond its window."""

    drift: FeatureDrift | None = None
    last_report: dict[str, Any] | None = None
    last_decision: dict[str, Any] | None = None
    shadow: ShadowTally | None = None
    """The challenger in shadow and its evidence so far (risk groups)."""


class Decisions:
    """The champion/challenger state of every group (``<kind>:<group>``), kept with the
    artifacts on disk.

    Args:
        settings: The configuration (margin, decision mode, shadow evidence needed).
        store: Where artifacts, champions, challengers and decisions are kept.
        metrics: The sidecar's metrics.
    """

    def __init__(self, settings: Settings, store: ArtifactStore, metrics: SidecarMetrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.groups: dict[str, GroupState] = {}

    def group(self, key: str) -> GroupState:
        """The state of group ``key`` (a fresh one the first time)."""
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = GroupState()
        return group

    def restore(self) -> None:
        """Pick up where a previous sidecar left: each champion's drift reference, and each
        challenger still in shadow (its evidence comes back as the features topic's
        retained rows are read again)."""
        for kind, group in self.store.groups():
            if kind not in KINDS:
                continue  # an older sidecar's anomaly models: left on disk, never used
            champion = self.store.champion_version(kind, group)
            if champion is None:
                continue
            state = self.group(f"{kind}:{group}")
            reference = self.store.load_reference(kind, group, champion)
            if reference is not None:
                state.drift = FeatureDrift(*reference)
            challenger = self.store.challenger_version(kind, group)
            if challenger is not None:
                state.shadow = ShadowTally(kind, champion, challenger, time.time())
            log.info(
                "sidecar_restored",
                kind=kind,
                group=group,
                champion=champion,
                challenger=challenger,
                drift_reference=reference is not None,
            )

    def shadow_row(self, key: str, row: dict[str, Any]) -> None:
        """A row the detectors scored with the champion and the challenger of ``key``."""
        tally = self.groups[key].shadow if key in self.groups else None
        if tally is not None and tally.add_row(row):
            self.metrics.shadow_rows.labels(group=row["g"]).inc()

    # -- a fresh model -----------------------------------------------------------------------

    def decide(
        self, kind: str, group: str, challenger: Artifact, frame: WindowFrame, reason: str
    ) -> dict[str, Any]:
        """Decide a freshly fitted model from ``frame``'s rows and store it with the decision
        (the caller announces it); ``reason`` is what triggered the fit."""
        champion = self._champion(kind, group)
        state = self.group(f"{kind}:{group}")
        result = compare(
            champion,
            challenger,
            frame.names,
            frame.X,
            frame.labels,
            margin=self.settings.sidecar_margin,
            ts_s=frame.ts_s,
        )
        detail = result.as_dict()
        if champion is None or self.settings.sidecar_decision == "holdout":
            status = "champion" if result.promote else "rejected"
            why = str(result.reason)
        else:  # to the detectors, to be scored in shadow; decided by settle
            status, why = "challenger", "in_shadow"
        decision = _decision(
            kind,
            group,
            challenger.version,
            status,
            why,
            trigger=reason,
            champion_before=None if champion is None else champion.version,
            comparison=detail,
        )
        stored = self.store.save(challenger, group, decision)
        decision["path"] = str(stored.path)
        if status == "champion":
            self._promote(kind, group, challenger.version, frame)
        elif status == "challenger":
            assert champion is not None
            self._supersede(kind, group, challenger.version)
            self.store.set_challenger(kind, group, challenger.version)
            state.shadow = ShadowTally(kind, champion.version, challenger.version, time.time())
        state.last_decision = decision
        self.metrics.decisions.labels(kind=kind, status=status).inc()
        log.info(
            "model_decided",
            kind=kind,
            group=group,
            version=challenger.version,
            status=status,
            reason=why,
            trigger=reason,
        )
        return decision

    def _champion(self, kind: str, group: str) -> Artifact | None:
        """The group's champion, None if it has none or it cannot be loaded."""
        try:
            return self.store.champion(kind, group)
        except ArtifactError as exc:
            log.warning("champion_unusable", kind=kind, group=group, error=str(exc))
            return None

    def _promote(self, kind: str, group: str, version: str, frame: WindowFrame) -> None:
        """Make ``version`` the champion; ``frame`` (a sample of it, kept with the model)
        becomes the reference feature drift is measured against: the rows it was fitted from,
        or, for a challenger promoted after its shadow run, the window at promotion."""
        self.store.set_champion(kind, group, version)
        rows = frame.X
        if len(rows) > _REFERENCE_ROWS:
            picked = np.random.default_rng(0).choice(len(rows), _REFERENCE_ROWS, replace=False)
            rows = rows[np.sort(picked)]
        self.store.save_reference(kind, group, version, list(frame.names), rows)
        self.group(f"{kind}:{group}").drift = FeatureDrift(list(frame.names), rows)

    def _supersede(self, kind: str, group: str, version: str) -> None:
        """A newer challenger replaces one still in shadow: the older is rejected."""
        tally = self.group(f"{kind}:{group}").shadow
        if tally is None or tally.challenger_version == version:
            return
        decision = _decision(
            kind, group, tally.challenger_version, "rejected", "superseded", shadow=tally.as_dict()
        )
        self.store.record_decision(kind, group, tally.challenger_version, decision)
        self.metrics.decisions.labels(kind=kind, status="rejected").inc()
        log.info("challenger_superseded", kind=kind, group=group, **tally.as_dict())

    # -- a challenger in shadow ----------------------------------------------------------------

    def settle(self, key: str, state: GroupState, window: TrainingWindow) -> dict[str, Any] | None:
        """Decide the challenger of group ``key`` (``state``) if its shadow evidence is
        complete, and store the decision (the caller announces it); None if it is not yet.
        A promoted challenger's drift reference is ``window``'s labelled rows of the group."""
        settings = self.settings
        tally = state.shadow
        if tally is None or not tally.ready(
            settings.sidecar_shadow_min_rows, settings.sidecar_shadow_min_incidents
        ):
            return None
        kind, group = key.split(":", 1)
        result = tally.decide(settings.sidecar_margin)
        status = "champion" if result.promote else "rejected"
        decision = _decision(
            kind,
            group,
            tally.challenger_version,
            status,
            str(result.reason),
            trigger="shadow",
            champion_before=tally.champion_version,
            comparison=result.as_dict(),
            shadow=tally.as_dict(),
        )
        self.store.record_decision(kind, group, tally.challenger_version, decision)
        if result.promote:
            frame = window.frame(key).labelled()
            self._promote(kind, group, tally.challenger_version, frame)
        state.shadow = None
        self.store.set_challenger(kind, group, None)
        state.last_decision = decision
        self.metrics.decisions.labels(kind=kind, status=status).inc()
        log.info(
            "challenger_decided",
            kind=kind,
            group=group,
            version=tally.challenger_version,
            status=status,
            detail=result.detail,
        )
        return decision

    # -- by hand -------------------------------------------------------------------------------

    def roll_back(self, kind: str, group: str, version: str) -> dict[str, Any]:
        """Make a stored ``version`` the group's champion again (the caller announces it). A
        challenger in shadow is then measured against this champion, from scratch."""
        self.store.set_champion(kind, group, version)
        state = self.group(f"{kind}:{group}")
        reference = self.store.load_reference(kind, group, version)
        if reference is not None:
            state.drift = FeatureDrift(*reference)
        if state.shadow is not None:
            state.shadow = ShadowTally(kind, version, state.shadow.challenger_version, time.time())
        decision = _decision(kind, group, version, "champion", "roll_back")
        state.last_decision = decision
        return decision


def _decision(
    kind: str, group: str, version: str, status: str, reason: str, **detail: Any
) -> dict[str, Any]:
    """A decision about a model, as stored with it and announced on the models topic."""
    return {
        "kind": kind,
        "group": group,
        "version": version,
        "status": status,
        "reason": reason,
        **detail,
        "decided_at": time.time(),
    }
