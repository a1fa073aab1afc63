"""The alerts of a log pipeline's closed windows, one kind per detector.

* the window model's (``hst-logs``): its verdict's score, threshold, top features and
  episode;
* the new-template rule's (``new-templates``): the count of new error templates against the
  rule's level;
* the template-rate test's (``template-rates``): the unusual templates' counts against their
  expected counts (and an unusually low line count), each contributing its share of their
  surprise;
* the resolved alert of an episode the rule or the rate test opened.

Every alert lists the window's unusual templates (:mod:`stream.core.logs.explain`), its id
hashes the detector's inputs, and its ``host`` label is the host of the line its evidence
points at (the window's last line; an empty window's, the service's last line before it).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from models.anomaly import BatchVerdict
from stream.core.logs.config import LogConfig
from stream.core.logs.explain import top_templates
from stream.core.logs.features import WindowStats
from stream.core.logs.rate_verdict import RateVerdict
from stream.core.logs.windows import ClosedWindow
from stream.core.pipeline import (
    Clock,
    alert_id_for,
    episode_fields,
    model_version_string,
    top_features,
)
from stream.schemas import Alert, AlertModelInfo, Evidence, Explanation, TopFeature

__all__ = ["MODEL_NAME", "RATES_NAME", "RULE_NAME", "LogAlerts"]

MODEL_NAME = "hst-logs"
"""The window model's alerts."""
RULE_NAME = "new-templates"
"""The new-template rule's alerts."""
RATES_NAME = "template-rates"
"""The template-rate test's alerts."""


class LogAlerts:
    """Builds the alerts of a log pipeline's windows.

    Args:
        config: The pipeline's configuration (rule level, templates listed, engine).
        config_id: The pipeline's configuration id (in model versions).
        clock: The time stamped on alerts as ``detected_at``.
    """

    def __init__(self, config: LogConfig, config_id: str, clock: Clock) -> None:
        self.config = config
        self.config_id = config_id
        self._clock = clock

    def resolved(
        self, window: ClosedWindow[WindowStats], name: str, started_s: float, rates: RateVerdict
    ) -> Alert:
        """The resolved alert of an episode the rule or the rate test opened."""
        version = f"rule-{self.config_id}" if name == RULE_NAME else f"nb-{self.config_id}"
        return self._alert(
            window,
            AlertModelInfo(name=name, version=version),
            {"resolved": started_s},
            (0.0, 0.0),
            False,
            [],
            rates,
            episode=episode_fields("anomaly", "logs", window.key, started_s, True),
        )

    def model(
        self,
        window: ClosedWindow[WindowStats],
        features: dict[str, float],
        result: BatchVerdict,
        row: int,
        rates: RateVerdict,
    ) -> Alert:
        verdict = result.verdict(row)
        contributions = top_features(verdict)
        engine = self.config.anomaly.engine
        version = model_version_string(engine, self.config_id, verdict.model_version)
        return self._alert(
            window,
            AlertModelInfo(name=MODEL_NAME, version=version),
            features,
            (round(verdict.score, 6), round(verdict.threshold, 6)),
            verdict.severity == "critical",
            contributions,
            rates,
            episode=episode_fields(
                "anomaly", "logs", window.key, verdict.started_s, verdict.resolved
            ),
        )

    def rule(self, window: ClosedWindow[WindowStats], rates: RateVerdict) -> Alert:
        new = window.value.new_error_templates
        needed = self.config.min_new_error_templates
        return self._alert(
            window,
            AlertModelInfo(name=RULE_NAME, version=f"rule-{self.config_id}"),
            {"new_error_templates": float(len(new)), "min_new_error_templates": float(needed)},
            (float(len(new)), float(needed)),
            len(new) >= 2 * needed,
            [
                TopFeature(
                    name="new_error_templates", value=len(new), baseline=0.0, contribution=1.0
                )
            ],
            rates,
            first=new,
        )

    def rate(self, window: ClosedWindow[WindowStats], rates: RateVerdict) -> Alert:
        """A template-rate alert: its features are the unusual templates' counts (value) and
        expected counts (baseline), and the window's line count (``lines``) when unusually
        low, each contributing its share of their surprise."""
        found = [(f"rate:{u.template_id}", u.count, u.expected, u.p_value) for u in rates.templates]
        if rates.quiet is not None:
            q = rates.quiet
            found.append(("lines", q.count, q.expected, q.p_value))
            found.sort(key=lambda f: f[3])
        unusual = found[: self.config.top_templates]
        surprises = [-math.log10(p) for *_, p in unusual]
        total = sum(surprises)
        contributions = [
            TopFeature(
                name=name,
                value=float(count),
                baseline=round(expected, 6),
                contribution=round(s / total, 6),
            )
            for (name, count, expected, _), s in zip(unusual, surprises, strict=True)
        ]
        inputs = {name: float(count) for name, count, *_ in found}
        inputs["templates_tested"] = float(rates.tested)
        return self._alert(
            window,
            AlertModelInfo(name=RATES_NAME, version=f"nb-{self.config_id}"),
            inputs,
            (round(rates.surprise, 6), round(rates.threshold, 6)),
            rates.surprise >= 2 * rates.threshold,
            contributions,
            rates,
        )

    def _alert(
        self,
        window: ClosedWindow[WindowStats],
        model: AlertModelInfo,
        inputs: dict[str, float],
        score_threshold: tuple[float, float],
        critical: bool,
        contributions: list[TopFeature],
        rates: RateVerdict,
        first: list[str] | None = None,
        episode: dict[str, Any] | None = None,
    ) -> Alert:
        """A log alert on ``window``; its id hashes the detector's ``inputs``. Without
        ``episode`` it opens a one-window episode of its own."""
        start = datetime.fromtimestamp(window.start_s, UTC)
        if episode is None:
            episode = episode_fields("anomaly", "logs", window.key, window.start_s, False)
        kind = "anomaly" if episode["status"] == "firing" else "anomaly-resolved"
        templates = top_templates(
            window.value,
            rates,
            k=self.config.top_templates,
            sample_chars=self.config.sample_chars,
            first=first or (),
        )
        return Alert(
            alert_id=alert_id_for(kind, "logs", window.key, start, inputs),
            kind="anomaly",
            source="logs",
            service=window.key,
            event_ts=start,
            detected_at=self._clock(),
            score=score_threshold[0],
            threshold=score_threshold[1],
            severity="critical" if critical else "warning",
            model=model,
            explanation=Explanation(top_features=contributions, top_templates=templates),
            evidence=self._evidence(window),
            labels={"host": window.value.host} if window.value.host else {},
            **episode,
        )

    @staticmethod
    def _evidence(window: ClosedWindow[WindowStats]) -> Evidence:
        evidence = window.value.evidence
        assert isinstance(evidence, Evidence), "every service's first window holds a line"
        return evidence
