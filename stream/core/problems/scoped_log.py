"""One partition of the scoped alerts log, read into problems: alerts and ticks, in order.

``vigil correlate`` routes every alert to the partition of its scope (the value of the scope
label), and writes ticks into every partition as time passes (:mod:`.event_clock`). A
partition's records alone then decide its problems: the same records, from a snapshot's
offset on, give the same problems, revisions included, which is what makes a restart exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from stream.codec import DecodeError, parse_object, validate
from stream.core.problems.correlator import CorrelationConfig, Correlator
from stream.core.problems.topology import Topology
from stream.schemas import Alert, Problem

__all__ = ["ScopedLog", "Taken", "tick_value"]

_TICK = "tick_s"


def tick_value(event_s: float) -> bytes:
    """A tick's record value: event time reached ``event_s`` in every scope of the partition.

    Examples:
        >>> tick_value(1700000000.5)
        b'{"tick_s":1700000000.5}'
    """
    return orjson.dumps({_TICK: event_s})


@dataclass
class Taken:
    """What one record did: the problem messages it caused, or why it was refused."""

    problems: list[Problem]
    error: DecodeError | None = None
    alert: Alert | None = None


class ScopedLog:
    """A partition's correlator and the offset it has read up to.

    Examples:
        >>> log = ScopedLog(CorrelationConfig(), Topology())
        >>> log.take(0, tick_value(60.0)).problems, log.next_offset
        ([], 1)
        >>> log.take(1, b"{oops").error.reason
        'invalid_json'
    """

    def __init__(
        self,
        config: CorrelationConfig,
        topology: Topology,
        correlator: Correlator | None = None,
        next_offset: int = 0,
    ) -> None:
        self.correlator = correlator or Correlator(config, topology)
        self.next_offset = next_offset
        """The offset of the next record to read: everything before it is in the state."""

    def take(self, offset: int, value: bytes | None) -> Taken:
        """Read the record at ``offset``; records before :attr:`next_offset` were read
        already and change nothing."""
        if offset < self.next_offset:
            return Taken([])
        self.next_offset = offset + 1
        data = parse_object(value)
        if isinstance(data, DecodeError):
            return Taken([], data)
        tick = data.get(_TICK)
        if isinstance(tick, int | float) and "alert_id" not in data:
            return Taken(self.correlator.advance_all(float(tick)))
        alert = validate(data, Alert)
        if isinstance(alert, DecodeError):
            return Taken([], alert)
        return Taken(self.correlator.add(alert), alert=alert)

    def latest_event_s(self) -> float | None:
        """The newest event time read (None before the first alert or tick)."""
        return self.correlator.latest_event_s()

    def state(self) -> dict[str, Any]:
        """The correlator's state and the offset it covers."""
        return {"next_offset": self.next_offset, "correlator": self.correlator.state()}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: CorrelationConfig, topology: Topology
    ) -> ScopedLog:
        """The log :meth:`state` described."""
        correlator = Correlator.from_state(state["correlator"], config, topology)
        return cls(config, topology, correlator, int(state["next_offset"]))
