"""The configuration of the log pipeline, with its defaults in one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Final

from models.anomaly import AnomalyConfig, DirectionRule, state_id
from models.fingerprint import short_id
from stream.core.logs.features import COUNT_FEATURES, FEATURE_NAMES

__all__ = [
    "DECISION_FIELDS",
    "LOG_DIRECTIONS",
    "LogConfig",
    "default_window_anomaly_config",
    "log_state_id",
]


LOG_DIRECTIONS: tuple[DirectionRule, ...] = (DirectionRule("msg_len_max", "up"),)
"""The window features' own direction rules (before the metric defaults; the operator's
``VIGIL_ANOMALY_DIRECTIONS`` come first)."""


def default_window_anomaly_config() -> AnomalyConfig:
    """The anomaly model of a service's log windows.

    A window model sees one row per window (2 a minute at 30 s), ~100 times fewer than a
    metric model sees events, so its counts are scaled down: Half-Space Trees over 50-window
    mass windows (25 min) of height 6 (64 leaves per tree for 50 points), a warm-up of 100
    windows (50 min of event time; two HST windows), and a scaler baseline over the last 512
    windows (about 4 h), and a calibration over the last 2,880 windows (a day at 30 s). The
    alert budget and episodes are the metric models' defaults (false episodes per
    service-day; an episode resolves after a few normal windows). The detector is Half-Space
    Trees: on the simulated streams (3 seeds) both HST and
    the robust-z score caught every incident in its first window, but robust-z raised 8 false
    alerts to HST's 3, driven by heavy-tailed features (message lengths); see docs/logs.md.
    """
    return AnomalyConfig(
        detector="ensemble",
        height=6,
        window_size=50,
        warmup_events=100,
        calibration_window=2880,
        # No level shifts: a window's counts fall to 0 when a service goes quiet, and a quiet
        # service is a problem until it speaks again, never a new normal after 5 windows.
        shift_after=0,
        scaler_window=512,
        # Counts move by whole units: the first time one moves (a window without the
        # longest message) it is one unit off, not a thousand spreads off a constant. A share
        # moves by one line of the window's: 0.05 is one line in 20 (a service at 0.7 lines
        # a second); one ERROR line among 12 was 83 spreads off a share that is 0 almost
        # always (benchmarks/log_rates.py at 0.5 lines/s: 36 false alerts in 11.6
        # service-days, 9 with it; docs/logs.md).
        resolutions=tuple((name, 1.0) for name in COUNT_FEATURES)
        + tuple((name, 0.05) for name in FEATURE_NAMES if name.startswith("ratio_")),
        # A window's longest message is usually one long template's; a window without it
        # (a shorter maximum) is no sign of trouble: at 15 lines a window one service
        # raised 151 such alerts a day. Longer ones (stack traces, dumps) still alert; the
        # mean and p95 move both ways (BGL's one-line windows need it; docs/logs.md).
        directions=LOG_DIRECTIONS,
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Everything that shapes the log pipeline.

    Attributes:
        window_s: Tumbling window length, seconds of event time.
        lateness_s: How late (behind the largest event time seen) a line may arrive and still
            count in its window; later lines are counted as late and dropped.
        idle_expiry_s: A service silent this long stops emitting (empty) windows.
        max_templates: Drain clusters kept per service; more are evicted (least recently used).
        similarity: Drain's similarity threshold for a line to join a cluster.
        depth: Drain's prefix-tree depth.
        max_template_chars: Only a message's first line, cut to this length, is templated.
        max_message_chars: Longer messages are cut to this length (and counted) before
            anything else reads them: a 1 MB line must not sit in a window's samples.
        min_new_error_templates: The new-template rule: a window alerts when it holds at least
            this many templates the service had never seen, first seen at ERROR or above, once
            the service's window model is past its warm-up.
        rate_false_alerts_per_day: The template-rate detector's budget: windows of a service
            found unusual per day, were every template's count to follow its learned
            distribution. Each window is tested at ``alpha = budget * window_s / 86,400``.
        rate_halflife_s: Event time over which a window's weight in the template rates
            halves (counted in windows learned: ``rate_halflife_s / window_s`` of them).
        top_templates: Templates listed in an alert's explanation.
        sample_chars: Sample lines in explanations are cut to this length.
        anomaly: The anomaly model of each service's window features.
    """

    window_s: float = 30.0
    lateness_s: float = 10.0
    idle_expiry_s: float = 3600.0
    max_templates: int = 1000
    similarity: float = 0.4
    depth: int = 4
    max_template_chars: int = 512
    max_message_chars: int = 16_384
    min_new_error_templates: int = 2
    rate_false_alerts_per_day: float = 0.25
    rate_halflife_s: float = 6 * 3600.0
    top_templates: int = 3
    sample_chars: int = 200
    anomaly: AnomalyConfig = field(default_factory=default_window_anomaly_config)

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.lateness_s < 0 or self.idle_expiry_s <= 0:
            raise ValueError("window_s and idle_expiry_s must be positive, lateness_s >= 0")
        if self.max_message_chars < 1:
            raise ValueError("max_message_chars must be at least 1")
        if self.max_templates < 1 or self.min_new_error_templates < 1:
            raise ValueError("max_templates and min_new_error_templates must be at least 1")
        if not 0 < self.rate_alpha < 1 or self.rate_halflife_s <= 0:
            raise ValueError(
                "rate_false_alerts_per_day must be in (0, 86400 / window_s), rate_halflife_s > 0"
            )

    @property
    def rate_alpha(self) -> float:
        """The template-rate test's level per window."""
        return self.rate_false_alerts_per_day * self.window_s / 86_400.0


DECISION_FIELDS: Final = (
    "lateness_s",
    "idle_expiry_s",
    "min_new_error_templates",
    "rate_false_alerts_per_day",
    "top_templates",
    "sample_chars",
)
"""Log settings that decide what learned state says (lateness, idle expiry, the rule's and the
rate test's levels, explanations): they apply to restored state at once. The window model's
own decisions are its :class:`AnomalyConfig`'s."""


def log_state_id(config: LogConfig) -> str:
    """A short id of what shapes the log pipeline's learned state: windows, templates, rate
    half-life, and the window model's :func:`~models.anomaly.state_id`.

    Examples:
        >>> log_state_id(LogConfig()) == log_state_id(LogConfig(rate_false_alerts_per_day=1.0))
        True
        >>> log_state_id(LogConfig()) == log_state_id(LogConfig(window_s=60.0))
        False
    """
    fields: dict[str, object] = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in (*DECISION_FIELDS, "anomaly")
    }
    fields["anomaly"] = state_id(config.anomaly)
    return short_id(fields)
