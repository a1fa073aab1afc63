"""Recurring maintenance windows (from configuration) and durations written for people.

A window starts at every time its cron expression names (five fields, minute hour
day-of-month month day-of-week, always in UTC) and lasts ``duration_s``: it is in force at
``at`` when its latest start at or before ``at`` is less than ``duration_s`` before it, so a
window that starts at 23:00 and lasts two hours covers 00:30 the next day. Windows that
overlap themselves (every hour, for two hours) are in force without a gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

__all__ = ["MaintenanceWindow", "check_cron", "parse_duration_s"]

_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration_s(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` or a plain
    number of seconds.

    Raises:
        ValueError: Not a positive duration.

    Examples:
        >>> parse_duration_s("90s"), parse_duration_s("2h"), parse_duration_s("1h30m")
        (90.0, 7200.0, 5400.0)
        >>> parse_duration_s("1d"), parse_duration_s("45")
        (86400.0, 45.0)
        >>> parse_duration_s("2 hours")
        Traceback (most recent call last):
        ...
        ValueError: not a duration: '2 hours' (use e.g. 90s, 30m, 2h, 1d, 1h30m)
    """
    compact = text.strip().lower()
    total = 0.0
    try:
        total = float(compact)
    except ValueError:
        if not compact or _DURATION.sub("", compact):
            raise ValueError(
                f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 1d, 1h30m)"
            ) from None
        total = sum(float(n) * _UNITS_S[unit] for n, unit in _DURATION.findall(compact))
    if not total > 0 or total == float("inf"):
        raise ValueError(f"a duration must be positive and finite: {text!r}")
    return total


def check_cron(expression: str) -> None:
    """Raise ValueError, saying why, unless ``expression`` is a five-field cron expression.

    Examples:
        >>> check_cron("0 2 * * sun")
        >>> check_cron("0 25 * * *")
        Traceback (most recent call last):
        ...
        ValueError: bad hour
        >>> check_cron("0 0 2 * * *")
        Traceback (most recent call last):
        ...
        ValueError: needs five fields (minute hour day-of-month month day-of-week), got 6
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"needs five fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(str(exc).strip().rstrip(".").lower() or "not a cron expression") from None


@dataclass(frozen=True)
class MaintenanceWindow:
    """A window that recurs: problems matching it are silenced while it is in force.

    Attributes:
        name: Its name; what silences a problem is reported as ``window:<name>``.
        cron: When it starts, a five-field cron expression in UTC (``0 2 * * sun``).
        duration_s: How long each occurrence lasts.
        service: Shell-style pattern of the services it covers (``db``, ``payments-*``).
        metric: Shell-style pattern of the metrics it covers (None: any).

    Raises:
        ValueError: A bad field, with the window's name and why.

    Examples:
        >>> w = MaintenanceWindow("nightly", "0 23 * * *", 7200, service="db")
        >>> w.occurrence(datetime(2026, 12, 8, 0, 30, tzinfo=UTC))
        (datetime.datetime(2026, 12, 7, 23, 0, tzinfo=datetime.timezone.utc), \
datetime.datetime(2026, 12, 8, 1, 0, tzinfo=datetime.timezone.utc))
        >>> w.occurrence(datetime(2026, 12, 8, 1, 0, tzinfo=UTC)) is None
        True
        >>> MaintenanceWindow("bad", "0 24 * * *", 60)
        Traceback (most recent call last):
        ...
        ValueError: maintenance window 'bad': cron '0 24 * * *': bad hour
    """

    name: str
    cron: str
    duration_s: float
    service: str = "*"
    metric: str | None = None

    def __post_init__(self) -> None:
        where = f"maintenance window {self.name!r}"
        if not self.name.strip():
            raise ValueError("a maintenance window needs a name")
        try:
            check_cron(self.cron)
        except ValueError as exc:
            raise ValueError(f"{where}: cron {self.cron!r}: {exc}") from None
        if not 0 < self.duration_s < float("inf"):
            raise ValueError(f"{where}: duration_s must be positive, got {self.duration_s}")
        if not self.service:
            raise ValueError(f"{where}: service pattern is empty (use * for every service)")
        if self.metric is not None and not self.metric:
            raise ValueError(f"{where}: metric pattern is empty (leave it out for any metric)")

    def last_start(self, at: datetime) -> datetime:
        """The latest start at or before ``at`` (a timezone-aware time)."""
        second = at.astimezone(UTC).replace(microsecond=0)
        # cronsim steps once before it looks: from one second later, ``second`` itself counts.
        return next(CronSim(self.cron, second + timedelta(seconds=1), reverse=True))

    def occurrence(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence in force at ``at`` as (start, end), end excluded; None outside."""
        start = self.last_start(at)
        end = start + timedelta(seconds=self.duration_s)
        return (start, end) if at < end else None
