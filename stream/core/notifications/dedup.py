"""De-duplication of deliveries by (problem_id, revision, sink), bounded."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DeliveryLedger"]

Key = tuple[str, int, str]
"""(problem_id, revision, sink)."""


class DeliveryLedger:
    """The deliveries settled (delivered, or given up on and dead-lettered) or in flight, so
    a record read again (a replay after a rebalance) is not sent twice by this process.

    Args:
        capacity: Most keys remembered (the oldest are forgotten first).

    Examples:
        >>> ledger = DeliveryLedger(capacity=2)
        >>> ledger.claim(("p1", 1, "slack")), ledger.claim(("p1", 1, "slack"))
        (True, False)
        >>> ledger.claim(("p1", 2, "slack")), ledger.claim(("p2", 1, "slack"))
        (True, True)
        >>> ("p1", 1, "slack") in ledger  # forgotten: over capacity
        False
        >>> ledger.release(("p2", 1, "slack")); ("p2", 1, "slack") in ledger
        False
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[Key, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def claim(self, key: Key) -> bool:
        """Record ``key``; False when it was already there (a duplicate: do not send)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def release(self, key: Key) -> None:
        """Forget ``key`` (its delivery was abandoned unsettled, e.g. a partition revoked)."""
        self._keys.pop(key, None)
