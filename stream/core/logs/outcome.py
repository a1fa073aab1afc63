"""What a log batch did: :class:`LogBatchOutcome`, with each closed window's
:class:`ScoredWindow` (what the detectors made of it), as :class:`~stream.core.logs.LogPipeline`
returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from stream.schemas import Alert

__all__ = ["LogBatchOutcome", "ScoredWindow"]


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """One closed window of one service and what the detectors made of it."""

    service: str
    start: datetime
    lines: int
    score: float
    threshold: float
    warming_up: bool
    flagged: bool
    """The window model's score reached its threshold after warm-up (alerted or suppressed)."""
    new_error_templates: int
    rule_flagged: bool
    """The new-template rule held (alerted or suppressed)."""
    rate_surprise: float
    """``-log10`` of the window's template-rate p-value (corrected for the templates tested)."""
    rate_flagged: bool
    """The template-rate test held after warm-up (alerted or suppressed)."""
    alerts: tuple[str, ...]
    """Names of the detectors that alerted on this window."""


@dataclass
class LogBatchOutcome:
    """What a batch (or an :meth:`LogPipeline.advance`) did, with counts for metrics."""

    alerts: list[Alert] = field(default_factory=list)
    windows: list[ScoredWindow] = field(default_factory=list)
    """Windows closed, by start time, then service in first-seen order."""
    lines: int = 0
    """Lines that went into a window."""
    late: int = 0
    """Lines whose window had already closed (counted, in no window)."""
    truncated: int = 0
    """Messages longer than ``max_message_chars``, cut to it."""
    new_templates: int = 0
    templates_evicted: int = 0
    empty_windows: int = 0
    suppressed: int = 0
    """Windows whose detectors held while the service's episode was already open."""
