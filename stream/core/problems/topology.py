"""Which service depends on which: the optional topology (``services.toml``).

A service's problem can come from one it depends on, directly or through others: alerts of
services on one dependency path belong to one failure more often than alerts of unrelated
ones, and among a problem's services the one most others depend on is the likeliest root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Topology", "topology_from"]


@dataclass(frozen=True)
class Topology:
    """A dependency graph: ``depends_on[a]`` holds the services ``a`` calls.

    Examples:
        >>> t = Topology({"checkout": frozenset({"payments"}), "payments": frozenset({"db"})})
        >>> t.related("db", "payments"), t.related("checkout", "db"), t.related("db", "search")
        (True, True, False)
        >>> sorted(t.dependents("db", among={"checkout", "payments", "db", "search"}))
        ['checkout', 'payments']
    """

    depends_on: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _reach: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)
    _callers_of: dict[str, set[str]] = field(default_factory=dict, compare=False, repr=False)

    def related(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` are one service, or one depends on the other, directly or
        through others (a failure spreads along such a path)."""
        return a == b or b in self.reach(a) or a in self.reach(b)

    def _callers(self) -> dict[str, set[str]]:
        """Service -> the services that call it (built once)."""
        if not self._callers_of and self.depends_on:
            for caller, callees in self.depends_on.items():
                for callee in callees:
                    self._callers_of.setdefault(callee, set()).add(caller)
        return self._callers_of

    def reach(self, service: str) -> frozenset[str]:
        """The services ``service`` depends on, directly or through others."""
        cached = self._reach.get(service)
        if cached is None:
            found: set[str] = set()
            frontier = [service]
            while frontier:
                for callee in self.depends_on.get(frontier.pop(), ()):
                    if callee not in found:
                        found.add(callee)
                        frontier.append(callee)
            cached = self._reach[service] = frozenset(found - {service})
        return cached

    def dependents(self, service: str, among: Iterable[str]) -> set[str]:
        """The services of ``among`` that depend on ``service``, directly or through others
        (through any service, not only those of ``among``)."""
        wanted = set(among) - {service}
        found: set[str] = set()
        callers = self._callers()
        frontier, seen = [service], {service}
        while frontier:
            for caller in callers.get(frontier.pop(), ()):
                if caller not in seen:
                    seen.add(caller)
                    frontier.append(caller)
                    if caller in wanted:
                        found.add(caller)
        return found


def topology_from(data: Mapping[str, object]) -> Topology:
    """A topology from a parsed ``services.toml``: ``[services.NAME] depends_on = [...]``.

    Raises:
        ValueError: The document does not have that shape.

    Examples:
        >>> topology_from({"services": {"api": {"depends_on": ["db"]}}}).depends_on
        {'api': frozenset({'db'})}
        >>> topology_from({"services": {"api": {"depends_on": "db"}}})
        Traceback (most recent call last):
        ...
        ValueError: services.api.depends_on must be a list of service names
    """
    services = data.get("services", {})
    if not isinstance(services, Mapping):
        raise ValueError("services must be a table of services")
    depends_on: dict[str, frozenset[str]] = {}
    for name, spec in services.items():
        callees = spec.get("depends_on", []) if isinstance(spec, Mapping) else None
        if not isinstance(callees, list) or not all(isinstance(c, str) and c for c in callees):
            raise ValueError(f"services.{name}.depends_on must be a list of service names")
        depends_on[str(name)] = frozenset(callees)
    return Topology(depends_on)
