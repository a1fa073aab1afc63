"""Opt-in, bounded per-service series: alerts and events by service, for the services an
operator names.

No other Vigil metric carries a ``service`` label: a fleet may have thousands of services,
and every label value is a series Prometheus keeps. :class:`ServiceSeries` exports two
counters labelled by service only for the services whose whole name matches a configured
regular expression (``VIGIL_METRICS_SERVICES``), at most ``max_services`` of them per
process; the services that match past the cap are counted together under
:data:`OTHER` (and a warning is logged once). Unconfigured, nothing is registered: the
exposition and its cardinality are what they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import structlog
from prometheus_client import CollectorRegistry, Counter

from stream.schemas import Alert

__all__ = ["OTHER", "SERVICE_ALERTS", "SERVICE_EVENTS", "ServiceSeries"]

log = structlog.get_logger(__name__)

OTHER = "_other"
"""The ``service`` label value of the matching services past the cap."""
SERVICE_ALERTS = "vigil_service_alerts_total"
SERVICE_EVENTS = "vigil_service_events_total"
_REMEMBERED = 100_000  # service -> label memo, cleared past this many services


class ServiceSeries:
    """Counters of alerts and events labelled by service, for the services configured.

    Args:
        registry: Where to register the counters (only when ``pattern`` is given).
        pattern: Services whose whole name matches get their own series; None: no
            per-service series at all (nothing registered, nothing counted).
        max_services: At most this many services get their own series; the matching ones
            seen after them are counted under ``service="_other"``.

    Examples:
        >>> series = ServiceSeries(CollectorRegistry(), r"pay.*|api", max_services=2)
        >>> [series.label_of(s) for s in ("payments", "api", "db")]
        ['payments', 'api', None]
        >>> from structlog.testing import capture_logs
        >>> with capture_logs() as logs:  # past the cap: one warning
        ...     series.label_of("payroll"), series.label_of("pay")
        ('_other', '_other')
        >>> [entry["event"] for entry in logs]
        ['service_series_capped']
        >>> ServiceSeries(CollectorRegistry(), None).enabled
        False
    """

    def __init__(
        self, registry: CollectorRegistry, pattern: str | None, max_services: int = 200
    ) -> None:
        self._pattern = re.compile(pattern) if pattern is not None else None
        self.max_services = max_services
        self._named: set[str] = set()
        self._memo: dict[str, str | None] = {}
        self._capped = False
        self.alerts: Counter | None = None
        self.events: Counter | None = None
        if self._pattern is None:
            return
        self.alerts = Counter(
            SERVICE_ALERTS,
            "Firing alerts published (episodes opened), by service, for the services matching "
            'VIGIL_METRICS_SERVICES (past VIGIL_METRICS_SERVICES_MAX: service="_other").',
            ["service", "kind", "source"],
            registry=registry,
        )
        self.events = Counter(
            SERVICE_EVENTS,
            "Events scored, by service, for the services matching VIGIL_METRICS_SERVICES "
            "(metric samples as scored; log lines as their window closes).",
            ["service", "source"],
            registry=registry,
        )

    @property
    def enabled(self) -> bool:
        """Whether per-service series are configured at all."""
        return self._pattern is not None

    @property
    def services(self) -> int:
        """How many services have their own series."""
        return len(self._named)

    def label_of(self, service: str) -> str | None:
        """The ``service`` label to count ``service`` under: itself, :data:`OTHER` past the
        cap, or None (not configured, or the name does not match: not counted)."""
        if service in self._memo:
            return self._memo[service]
        label: str | None
        if self._pattern is None or self._pattern.fullmatch(service) is None:
            label = None
        elif service in self._named or len(self._named) < self.max_services:
            self._named.add(service)
            label = service
        else:
            label = OTHER
            if not self._capped:
                self._capped = True
                log.warning(
                    "service_series_capped",
                    max_services=self.max_services,
                    service=service,
                )
        if len(self._memo) >= _REMEMBERED:
            self._memo.clear()  # the named set stays: a service keeps its own series
        self._memo[service] = label
        return label

    def count_alert(self, alert: Alert) -> None:
        """Count a published alert under its service, if it fires (a resolved one closes
        an episode: it is not counted)."""
        if self.alerts is None or alert.status != "firing":
            return
        label = self.label_of(alert.service)
        if label is not None:
            self.alerts.labels(service=label, kind=alert.kind, source=alert.source).inc()

    def count_events(self, counts: Iterable[tuple[str, int]], source: str) -> None:
        """Count events scored: ``(service, how many)`` pairs, one per service of a batch
        (a service may come more than once)."""
        if self.events is None:
            return
        for service, count in counts:
            label = self.label_of(service)
            if label is not None and count:
                self.events.labels(service=label, source=source).inc(count)
