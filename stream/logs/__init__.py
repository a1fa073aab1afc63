"""The log side of Vigil (pure): templates, event-time windows, window features, scoring."""

from stream.logs.config import LogConfig, default_window_anomaly_config
from stream.logs.pipeline import LogBatchOutcome, LogPipeline, ScoredWindow
from stream.logs.simulate import LogIncident, LogSimulator

__all__ = [
    "LogBatchOutcome",
    "LogConfig",
    "LogIncident",
    "LogPipeline",
    "LogSimulator",
    "ScoredWindow",
    "default_window_anomaly_config",
]
