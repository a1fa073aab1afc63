"""Incident risk: will a service have an incident within the horizon? (pure computation).

:class:`RiskConfig` configures everything; :class:`HorizonLabeler` turns late incident events
into labels; :class:`IncidentRiskModel` predicts calibrated probabilities and learns online
(from :class:`FeatureRow` vectors as matrices, or from any mappings);
:class:`RiskThreshold` tunes the alert threshold; :mod:`~models.incident.prequential` scores
it all honestly (every prediction made before its label was learned);
:mod:`~models.incident.timeline` lays incidents and their warnings out in time.
"""

from models.incident.config import RiskConfig, Strategy
from models.incident.feature_row import FeatureRow
from models.incident.labelled import LabelledVector
from models.incident.labels import OUTCOMES, HorizonLabeler
from models.incident.prequential import (
    IncidentReport,
    PrequentialTracker,
    incident_report,
    reliability_table,
)
from models.incident.risk import IncidentRiskModel, RiskContribution
from models.incident.thresholds import RiskThreshold
from models.incident.timeline import IncidentSpan, busiest_services, incident_spans

__all__ = [
    "OUTCOMES",
    "FeatureRow",
    "HorizonLabeler",
    "IncidentReport",
    "IncidentRiskModel",
    "IncidentSpan",
    "LabelledVector",
    "PrequentialTracker",
    "RiskConfig",
    "RiskContribution",
    "RiskThreshold",
    "Strategy",
    "busiest_services",
    "incident_report",
    "incident_spans",
    "reliability_table",
]
