"""The incident-risk pipeline the settings ask for: :func:`risk_pipeline` (None when switched
off) and :func:`build_risk_pipeline` (whether or not it is on)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from models.batch import RiskArtifact
from models.incident import LabelledVector
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import Clock, utc_now

if TYPE_CHECKING:
    from stream.settings import Settings

__all__ = ["build_risk_pipeline", "risk_pipeline"]


def risk_pipeline(
    settings: Settings,
    clock: Clock = utc_now,
    *,
    champion_of: Callable[[str], RiskArtifact | None] | None = None,
    on_labelled: Callable[[str, LabelledVector], None] | None = None,
) -> IncidentRiskPipeline | None:
    """The incident-risk pipeline the settings ask for (None when it is switched off); see
    :class:`IncidentRiskPipeline` for ``champion_of`` and ``on_labelled``."""
    if not settings.incident_risk:
        return None
    return build_risk_pipeline(settings, clock, champion_of=champion_of, on_labelled=on_labelled)


def build_risk_pipeline(
    settings: Settings,
    clock: Clock = utc_now,
    *,
    champion_of: Callable[[str], RiskArtifact | None] | None = None,
    on_labelled: Callable[[str, LabelledVector], None] | None = None,
) -> IncidentRiskPipeline:
    """The incident-risk pipeline configured by ``settings``, whether or not it is on."""
    return IncidentRiskPipeline(
        settings.risk_config(),
        step_s=settings.incident_step_s,
        group_pattern=settings.incident_group_pattern,
        clock=clock,
        champion_of=champion_of,
        on_labelled=on_labelled,
        state=settings.incident_state,
    )
