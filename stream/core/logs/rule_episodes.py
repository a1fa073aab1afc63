"""The log episode of the new-template rule and the rate test.

The two share one episode per service, apart from the window model's: while the window
model's episode is open (or opened in this window) they add nothing. Otherwise the first of
them to hold opens an episode of their own, which resolves once neither has held for as many
windows as an episode takes to resolve. The episode is the service's state (snapshotted with
it); this module only decides.
"""

from __future__ import annotations

from typing import Protocol

from stream.core.logs.alerts import LogAlerts
from stream.core.logs.config import LogConfig
from stream.core.logs.features import WindowStats
from stream.core.logs.outcome import LogBatchOutcome
from stream.core.logs.rate_verdict import RateVerdict
from stream.core.logs.windows import ClosedWindow

__all__ = ["RuleEpisodes", "RuleState"]


class RuleState(Protocol):
    """A service's rule episode, as :class:`RuleEpisodes` reads and moves it."""

    last_flag_s: float
    """When the new-template rule or the rate test last held."""
    rule_episode: tuple[float, str] | None
    """(start, detector) of the episode the rule or the rate test opened, while open."""


class RuleEpisodes:
    """Opens and resolves the episodes of the new-template rule and the rate test.

    Args:
        config: The window length and how many quiet windows resolve an episode.
        alerts: Builds the rule's, the rate test's and their resolved alerts.
    """

    def __init__(self, config: LogConfig, alerts: LogAlerts) -> None:
        self.config = config
        self._alerts = alerts

    def step(
        self,
        window: ClosedWindow[WindowStats],
        state: RuleState,
        in_episode: bool,
        verdict: RateVerdict,
        rule: bool,
        rates: bool,
        fired: list[str],
        out: LogBatchOutcome,
    ) -> None:
        """One closed window of the service: ``rule`` and ``rates`` say whether the rule and
        the rate test held in it, ``in_episode`` whether the window model's episode is open.
        Alerts go to ``out`` (their detectors' names to ``fired``)."""
        if rule or rates:
            state.last_flag_s = window.start_s
        if state.rule_episode is None and not in_episode and (rule or rates):
            alert = (
                self._alerts.rule(window, verdict) if rule else self._alerts.rate(window, verdict)
            )
            state.rule_episode = (window.start_s, alert.model.name)
            out.alerts.append(alert)
            fired.append(alert.model.name)
        elif rule or rates:
            out.suppressed += 1
        quiet_s = self.config.anomaly.resolve_after * self.config.window_s
        if (
            state.rule_episode is not None
            and not (rule or rates)
            and window.start_s - state.last_flag_s >= quiet_s
        ):
            started_s, name = state.rule_episode
            state.rule_episode = None
            out.alerts.append(self._alerts.resolved(window, name, started_s, verdict))
            fired.append(name)
