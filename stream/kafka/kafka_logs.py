"""Quiet outages: aiokafka's log lines, each kind logged once and then once per backoff step.

With the broker away, aiokafka logs "Unable connect to node", "Unable to update metadata",
"Failed fetch messages" and their like at every retry, each of its clients on its own: a
detector wrote 1.5 MB a minute here, 38 MB in one field run. :class:`KafkaLogFilter` sits on
the log handler: the first line of a kind (logger and message template) goes out, then at
most one per backoff step (1 s doubling to 60 s) saying how many like it were held back; a
kind not seen for a step's length starts over. Errors the client retries (their exception is
``retriable``) go out as warnings. Every line is counted, logged or not, and the
lines that say a broker cannot be reached tell :meth:`KafkaLogFilter.unreachable_for` that
Kafka is away (``/readyz`` reports it).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["KafkaLogCollector", "KafkaLogFilter", "LogThrottle"]

_LIBRARY = "aiokafka"
_UNREACHABLE = (
    "Unable connect to",
    "Unable to update metadata",
    "NodeNotReadyError",
    "KafkaConnectionError",
    "Marking the coordinator dead",
    "Group Coordinator Request failed",
)
"""Fragments of aiokafka's lines (template or arguments) that mean a broker is not reached."""
_QUIET_S = 10.0
"""Kafka counts as reachable again once no such line came for this long (aiokafka retries
every ``retry_backoff_ms`` while it is away, far more often)."""

_OUTCOMES = ("logged", "held")


@dataclass
class _Kind:
    step_s: float
    next_at: float
    last_seen: float
    held: int = 0


class LogThrottle:
    """Decides which lines of a repeating kind go out: the first, then one per backoff step.

    Args:
        first_step_s: The wait after the first line of a kind.
        max_step_s: The longest wait; a kind unseen this long starts over.

    Examples:
        >>> throttle = LogThrottle(first_step_s=1.0, max_step_s=8.0)
        >>> [throttle.admit("k", t) for t in (0.0, 0.5, 0.9, 1.0, 2.0, 3.0, 3.5)]
        [0, None, None, 2, None, 1, None]
        >>> throttle.admit("k", 30.0)  # quiet for longer than the longest step: anew
        0
    """

    def __init__(self, *, first_step_s: float = 1.0, max_step_s: float = 60.0) -> None:
        self.first_step_s = first_step_s
        self.max_step_s = max_step_s
        self._kinds: dict[object, _Kind] = {}

    def admit(self, key: object, now: float) -> int | None:
        """None: hold this line back; else let it out, with the number held back before it."""
        kind = self._kinds.get(key)
        if kind is None or now - kind.last_seen > self.max_step_s:
            self._kinds[key] = _Kind(self.first_step_s, now + self.first_step_s, now)
            return 0
        kind.last_seen = now
        if now < kind.next_at:
            kind.held += 1
            return None
        held, kind.held = kind.held, 0
        kind.step_s = min(kind.step_s * 2, self.max_step_s)
        kind.next_at = now + kind.step_s
        return held


class KafkaLogFilter(logging.Filter):
    """A handler filter: aiokafka's lines through a :class:`LogThrottle`; others untouched.

    Args:
        throttle: Which lines go out (default: 1 s doubling to 60 s).
        clock: Monotonic seconds.

    Examples:
        >>> now = [0.0]
        >>> kafka_logs = KafkaLogFilter(clock=lambda: now[0])
        >>> def line(msg: str) -> logging.LogRecord:
        ...     return logging.LogRecord("aiokafka", logging.ERROR, "c.py", 1, msg, ("n1",), None)
        >>> [kafka_logs.filter(line("Unable connect to node %s")) for _ in range(3)]
        [True, False, False]
        >>> now[0] = 1.5
        >>> shown = line("Unable connect to node %s")
        >>> kafka_logs.filter(shown), shown.getMessage()
        (True, 'Unable connect to node n1 (2 more like it held back)')
        >>> kafka_logs.unreachable_for(), dict(kafka_logs.counts)
        (1.5, {('error', 'logged'): 2, ('error', 'held'): 2})
    """

    def __init__(
        self, throttle: LogThrottle | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.throttle = throttle if throttle is not None else LogThrottle()
        self._clock = clock
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        """Lines seen, by (level, "logged" or "held")."""
        self._unreachable_since: float | None = None
        self._unreachable_last: float = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_LIBRARY):
            return True
        now = self._clock()
        template = str(record.msg)
        if _says_unreachable(template, record.args):
            if self._unreachable_since is None or now - self._unreachable_last > _QUIET_S:
                self._unreachable_since = now
            self._unreachable_last = now
        if record.levelno > logging.WARNING and _retriable(record.args):
            # aiokafka logs some errors it retries at ERROR ("Group Coordinator Request
            # failed" on every lookup): a retried condition is a warning.
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        held = self.throttle.admit((record.name, template), now)
        level = record.levelname.lower()
        self.counts[(level, "held" if held is None else "logged")] += 1
        if held is None:
            return False
        if held and isinstance(record.args, tuple):
            record.msg = f"{template} (%d more like it held back)"
            record.args = (*record.args, held)
        return True

    def unreachable_for(self) -> float | None:
        """Seconds since aiokafka first said a broker cannot be reached, while it keeps
        saying so (None: no such line for ``_QUIET_S``)."""
        since = self._unreachable_since
        now = self._clock()
        if since is None or now - self._unreachable_last > _QUIET_S:
            return None
        return now - since


def _retriable(args: object) -> bool:
    """Whether a line's arguments hold an error the client retries (``retriable``)."""
    return isinstance(args, tuple) and any(getattr(a, "retriable", False) is True for a in args)


def _says_unreachable(template: str, args: object) -> bool:
    text = template
    if isinstance(args, tuple):
        text += " ".join(str(a) for a in args)
    return any(fragment in text for fragment in _UNREACHABLE)


class KafkaLogCollector:
    """Exports a :class:`KafkaLogFilter`'s counts at scrape time (they move while the
    detector's loop waits on an absent broker): ``vigil_kafka_client_log_lines_total{level,
    outcome}`` and ``vigil_kafka_unreachable_seconds`` (0 while Kafka answers)."""

    def __init__(self, kafka_logs: KafkaLogFilter) -> None:
        self._logs = kafka_logs

    def collect(self) -> Iterator[Metric]:
        lines = CounterMetricFamily(
            "vigil_kafka_client_log_lines",
            "Warning and error lines of the Kafka client, by level and whether they were "
            "logged or held back (at most one per kind and backoff step goes out).",
            labels=["level", "outcome"],
        )
        counts = {(level, outcome): 0 for level in ("warning", "error") for outcome in _OUTCOMES}
        counts.update(self._logs.counts)
        for (level, outcome), count in sorted(counts.items()):
            lines.add_metric([level, outcome], count)
        yield lines
        yield GaugeMetricFamily(
            "vigil_kafka_unreachable_seconds",
            "How long the Kafka client has been saying a broker cannot be reached (0: it "
            "has not for 10 s).",
            value=self._logs.unreachable_for() or 0.0,
        )
