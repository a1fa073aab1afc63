"""What silences single alerts in ``vigil notify`` (``VIGIL_NOTIFY_ALERTS``).

Problems arrive marked ``silenced`` by the correlator; single alerts come straight from the
detectors, so the notifier asks the silences itself: it follows the silences topic
(:class:`~stream.kafka.silences.SilenceFollower`, read whole before the first alert) into a
book with the configured maintenance windows and deploy rule, and marks each alert that the
book silences at the alert's event time (``silenced_alert_by(alert, alert.event_ts)``). The
policy then skips it as a silenced problem (``stream.core.notifications.problem_of_alert``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry

from stream.core.notifications import problem_of_alert
from stream.kafka.silences import SilenceFollower
from stream.schemas import Alert, Problem
from stream.settings import Settings

__all__ = ["AlertSilenceBook", "AlertSilences"]


class AlertSilenceBook(Protocol):
    """What the notifier asks of a silence book (``SilenceBook`` is one)."""

    def silenced_alert_by(self, alert: Alert, at: datetime) -> list[str]:
        """What silences ``alert`` at event time ``at`` (empty: nothing)."""
        ...


class AlertSilences:
    """The silences of single alerts: a book, followed from the silences topic unless given.

    Args:
        settings: Connection settings, ``topic_silences``, the windows and deploy rule.
        book: The book to ask (tests); None: ``settings.silence_book()`` filled and kept
            current by a :class:`SilenceFollower` between :meth:`start` and :meth:`stop`.
        registry: Where the follower's metrics go (``vigil_silences_*``), if anywhere.
    """

    def __init__(
        self,
        settings: Settings,
        book: AlertSilenceBook | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.follower: SilenceFollower | None = None
        if book is None:
            self.follower = SilenceFollower(settings)
            book = self.follower.book
            if registry is not None:
                registry.register(self.follower)
        self.book: AlertSilenceBook = book

    async def start(self) -> None:
        """Read the silences topic up to its end, then follow it (nothing with a given book).

        Raises:
            KafkaError: As :meth:`SilenceFollower.start`.
            RuntimeError: The silences topic does not exist (and ``create_topics`` is off).
        """
        if self.follower is not None:
            await self.follower.start()

    async def stop(self) -> None:
        """Stop following; safe to call twice."""
        if self.follower is not None:
            await self.follower.stop()

    def silenced_by(self, alert: Alert) -> list[str]:
        """What silences ``alert`` at its event time (empty: nothing)."""
        return self.book.silenced_alert_by(alert, alert.event_ts)

    def problem_of(self, alert: Alert) -> Problem:
        """``alert`` as a one-member problem, marked silenced when something silences it."""
        return problem_of_alert(alert, silenced_by=self.silenced_by(alert))
