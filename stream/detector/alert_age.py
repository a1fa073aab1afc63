"""Which alerts are too old to send (``VIGIL_MAX_ALERT_AGE_S``); pure, the time comes in.

A first deploy on topics with days of history, or a detector catching up after an outage,
reads events whose alerts no one can act on any more: a pager should not ring for last
week. Their events are learned from as usual (the models, calibration and episodes move
exactly as they would); only the sending is withheld. The live detector alone applies it:
``vigil replay``, ``vigil evaluate`` and the benchmarks work on historic event times and
alert on them.
"""

from __future__ import annotations

from datetime import datetime

from stream.schemas import Alert

__all__ = ["AlertAgeGate"]


class AlertAgeGate:
    """Withholds the alerts of events older than ``max_age_s`` (event time against ``now``).

    - A firing alert is withheld when its event is older than the limit.
    - The resolved alert of an episode whose firing alert was withheld is withheld too: it
      would close an episode no consumer saw open.
    - Any other resolved alert is sent, however old: a consumer saw its episode open and
      must see it close (after an outage, say).

    Args:
        max_age_s: The limit in seconds; 0: none, every alert is sent.
        remember: Most withheld episodes remembered for their resolved alerts (the oldest
            forgotten first: its resolved alert would then be sent).

    Examples:
        >>> from datetime import UTC, datetime, timedelta
        >>> now = datetime(2026, 12, 6, 12, tzinfo=UTC)
        >>> def alert(age_h, status="firing"):  # the fields the gate reads
        ...     ts = now - timedelta(hours=age_h)
        ...     return Alert.model_construct(event_ts=ts, status=status, episode_id=f"ep{age_h}")
        >>> gate = AlertAgeGate(3600.0)
        >>> gate.withholds(alert(30), now), gate.withholds(alert(30, "resolved"), now)
        (True, True)
        >>> gate.withholds(alert(0.5), now), gate.withholds(alert(2, "resolved"), now)
        (False, False)
        >>> AlertAgeGate(0).withholds(alert(30), now)
        False
    """

    def __init__(self, max_age_s: float, *, remember: int = 100_000) -> None:
        self.max_age_s = max_age_s
        self._remember = remember
        self._withheld: dict[str, None] = {}
        """Episodes whose firing alert was withheld, oldest first."""

    def withholds(self, alert: Alert, now: datetime) -> bool:
        """Whether ``alert``, about to be sent at ``now``, is withheld instead."""
        if self.max_age_s <= 0:
            return False
        episode = alert.episode_id
        if alert.status == "resolved":
            if episode is not None and episode in self._withheld:
                del self._withheld[episode]
                return True
            return False
        if (now - alert.event_ts).total_seconds() <= self.max_age_s:
            return False
        if episode is not None:
            self._withheld[episode] = None
            if len(self._withheld) > self._remember:
                del self._withheld[next(iter(self._withheld))]
        return True

    def __len__(self) -> int:
        """Withheld episodes remembered."""
        return len(self._withheld)
