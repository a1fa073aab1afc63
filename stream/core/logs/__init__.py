"""The log side of Vigil (pure): templates, event-time windows, window features, scoring."""

from stream.core.logs.config import LogConfig, default_window_anomaly_config
from stream.core.logs.outcome import LogBatchOutcome, ScoredWindow
from stream.core.logs.pipeline import LogPipeline

__all__ = [
    "LogBatchOutcome",
    "LogConfig",
    "LogPipeline",
    "ScoredWindow",
    "default_window_anomaly_config",
]
