"""The anomaly model of one service and source: calibrated scores, episodes, level shifts.

``config`` (what shapes it), ``calibration`` (raw score -> tail probability), ``episodes``
(one alert per problem), ``shifts`` (the new normal), ``verdicts`` (what it concluded) and
``core`` (trees and calibration over one feature set), ``segment`` (the steps of one run of
rows: read, decide, write), ``rows`` (a batch as arrays), ``model``
(:class:`ServiceAnomalyModel`, which conducts them) and ``fleet`` (many services at once).
"""

from models.anomaly.config import (
    DEFAULT_DIRECTIONS,
    AnomalyConfig,
    Direction,
    DirectionRule,
    ServiceRule,
    state_id,
)
from models.anomaly.fleet import episodes_per_service_day, observe_together
from models.anomaly.model import ServiceAnomalyModel
from models.anomaly.verdicts import BatchVerdict, Deviations, Verdict

__all__ = [
    "DEFAULT_DIRECTIONS",
    "AnomalyConfig",
    "BatchVerdict",
    "Deviations",
    "Direction",
    "DirectionRule",
    "ServiceAnomalyModel",
    "ServiceRule",
    "Verdict",
    "episodes_per_service_day",
    "observe_together",
    "state_id",
]
