"""The pure core of log detection: LogEvents -> templates -> windows -> scores -> Alerts.

No I/O: the caller brings decoded events, where they are stored, and a clock. The live
detector and ``vigil replay`` drive the same :class:`LogPipeline`, so given the same events in
the same order they raise the same alerts, whatever the batch boundaries (every step is driven
by event time, and windows close per event, not per batch).

Three detectors look at each closed window of a service:

* ``hst-logs``: the service's :class:`~models.anomaly.ServiceAnomalyModel` over the window's
  features (volume, levels, error markers, message lengths, templates);
* ``new-templates``: a rule, at least ``min_new_error_templates`` templates the service had
  never seen, first seen at ERROR or above, in one window after the model's warm-up (a new
  stack trace is the classic sign of a new failure mode, and scores poorly as one feature);
* ``template-rates``: a known template far more frequent than its own learned rate (a test
  per template, corrected for the number tested: :mod:`stream.core.logs.rates`), or a window with
  far fewer lines than the service's learned rate (silence), after the model's warm-up.

The rule and the rate test share one episode per service, apart from the window model's
(:mod:`stream.core.logs.rule_episodes`).

Every alert lists the window's unusual templates (:mod:`stream.core.logs.explain`): new ones first,
then those the rate test found unusual; the most frequent only when none is.

Evidence of a window alert is the storage position of the window's last line; an empty window
(a silent service) points at the service's last line before it. The alert's ``host`` label is
that line's host (where the line carried one): the host an operator finds at the evidence,
looked up once per window and batch, never per line. (The window's most frequent host would
need a count per line; the last line's agrees with the evidence.)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from models.anomaly import BatchVerdict, ServiceAnomalyModel, episodes_per_service_day
from stream.core.logs.alerts import MODEL_NAME, RATES_NAME, RULE_NAME, LogAlerts
from stream.core.logs.config import LogConfig, log_state_id
from stream.core.logs.features import WindowStats, window_features
from stream.core.logs.outcome import LogBatchOutcome, ScoredWindow
from stream.core.logs.rates import TemplateRates
from stream.core.logs.rule_episodes import RuleEpisodes
from stream.core.logs.templates import ServiceTemplates
from stream.core.logs.windows import ClosedWindow, EventTimeWindows
from stream.core.pipeline import Clock, EvidenceOf, config_id_of, model_version_string, utc_now
from stream.schemas import Evidence, LogEvent

__all__ = ["LogPipeline"]


class _Service:
    __slots__ = (
        "last_evidence",
        "last_flag_s",
        "last_host",
        "miner",
        "model",
        "rates",
        "rule_episode",
    )

    def __init__(self, service: str, config: LogConfig) -> None:
        self.miner = ServiceTemplates(
            service,
            max_templates=config.max_templates,
            similarity=config.similarity,
            depth=config.depth,
            max_chars=config.max_template_chars,
        )
        self.model = ServiceAnomalyModel(service, config.anomaly)
        self.rates = TemplateRates(
            alpha=config.rate_alpha,
            halflife_windows=config.rate_halflife_s / config.window_s,
            capacity=2 * config.max_templates,
        )
        self.last_flag_s = 0.0
        """When the new-template rule or the rate test last held."""
        self.rule_episode: tuple[float, str] | None = None
        """(start, detector) of the episode the rule or the rate test opened, while open."""
        self.last_evidence: Evidence | None = None
        self.last_host: str | None = None
        """The host of the line ``last_evidence`` points at (an empty window's host)."""


class LogPipeline:
    """Per-service templates, event-time windows and window models over log events.

    Args:
        config: Windows, templates, the new-template rule and the window models.
        clock: The time stamped on alerts as ``detected_at``.
    """

    model_name = MODEL_NAME
    rule_name = RULE_NAME
    rates_name = RATES_NAME

    def __init__(self, config: LogConfig | None = None, clock: Clock = utc_now) -> None:
        self.config = config if config is not None else LogConfig()
        self._services: dict[str, _Service] = {}
        self._windows: EventTimeWindows[WindowStats] = EventTimeWindows(
            self.config.window_s,
            self.config.lateness_s,
            WindowStats,
            idle_expiry_s=self.config.idle_expiry_s,
        )
        self._batch = 0
        self.config_id = config_id_of(self.config)
        self.state_id = log_state_id(self.config)
        """What snapshots are checked against: only settings that shape learned state."""
        self._alerts = LogAlerts(self.config, self.config_id, clock)
        self._rules = RuleEpisodes(self.config, self._alerts)
        self.lines_total = 0
        self.late_total = 0
        self.windows_total = 0
        self.empty_windows_total = 0
        self.truncated_total = 0

    def __len__(self) -> int:
        return len(self._services)

    @property
    def templates_evicted_total(self) -> int:
        """Templates evicted at the per-service cap, over all services (a counter)."""
        return sum(s.miner.evictions for s in self._services.values())

    @property
    def watermark(self) -> datetime | None:
        """Event time below which windows are closed; None before any event."""
        w = self._windows.watermark_s
        return None if w == float("-inf") else datetime.fromtimestamp(w, UTC)

    @property
    def closed_below(self) -> int:
        """Windows with a lower index are closed: their lines are scored, or late."""
        return self._windows.closed_below

    @property
    def latest_event_s(self) -> float:
        """The largest event time seen or advanced to, epoch seconds (``-inf`` before any)."""
        return self._windows.latest_s

    def open_windows(self) -> int:
        """How many windows are open, over all services."""
        return self._windows.open_windows()

    def window_index(self, ts: datetime) -> int:
        """The index of the window event time ``ts`` falls in (compare with ``closed_below``)."""
        return self._windows.index_of(ts.timestamp())

    def process_batch(
        self, events: Sequence[LogEvent], evidence_of: EvidenceOf, source: Hashable = None
    ) -> LogBatchOutcome:
        """Template, window, score and learn a batch of log events from ``source``, in order.

        Returns the alerts of every window the batch closed, and counts for metrics. Sources
        are where events are read from (a Kafka partition): the watermark follows the slowest
        one (see :mod:`stream.core.logs.windows`); one source is the default.
        """
        self._batch += 1
        batch = self._batch
        out = LogBatchOutcome()
        evicted_before = self.templates_evicted_total
        late_before = self._windows.late
        services = self._services
        route = self._windows.route
        touched: list[WindowStats] = []
        limit = self.config.max_message_chars
        for i, event in enumerate(events):
            stats = route(event.service, event.ts.timestamp(), source)
            if stats is None:
                continue
            service = services.get(event.service)
            if service is None:
                service = services[event.service] = _Service(event.service, self.config)
            if stats.batch != batch:
                stats.batch = batch
                touched.append(stats)
            message = event.message
            if len(message) > limit:
                message = message[:limit]
                out.truncated += 1
            template, is_new = service.miner.add(message)
            out.new_templates += is_new
            stats.add(event.level, message, template, is_new, i)
        for stats in touched:  # batch indices mean nothing after this call: resolve them now
            stats.evidence = evidence_of(stats.last_index)
            stats.host = events[stats.last_index].host
        out.late = self._windows.late - late_before
        out.lines = len(events) - out.late
        self.lines_total += out.lines
        self.late_total += out.late
        self.truncated_total += out.truncated
        out.templates_evicted = self.templates_evicted_total - evicted_before
        self._score(self._windows.pop_closed(), out)
        return out

    def hold(self, source: Hashable) -> None:
        """``source`` has events still to deliver: windows wait for them."""
        self._windows.hold(source)

    def set_idle(self, source: Hashable) -> LogBatchOutcome:
        """``source`` has nothing to deliver for now: windows stop waiting for it (may close)."""
        self._windows.set_idle(source)
        return self._score_closed()

    def drop_source(self, source: Hashable) -> LogBatchOutcome:
        """Forget ``source`` (its partition went to another consumer); windows may close."""
        self._windows.drop(source)
        return self._score_closed()

    def advance(self, to: datetime) -> LogBatchOutcome:
        """Move the watermark to ``to`` as an event at that time would, closing windows.

        The live consumer calls it with the wall clock when no events arrive, so a service that
        stopped logging (or a whole topic gone quiet) still closes its windows.
        """
        self._windows.advance(to.timestamp())
        return self._score_closed()

    def _score_closed(self) -> LogBatchOutcome:
        """Score the windows that closed since the last batch."""
        out = LogBatchOutcome()
        self._score(self._windows.pop_closed(), out)
        return out

    # -- scoring ----------------------------------------------------------------------------------

    def _score(self, closed: list[ClosedWindow[WindowStats]], out: LogBatchOutcome) -> None:
        if not closed:
            return
        by_service: dict[str, list[int]] = {}
        for j, window in enumerate(closed):
            by_service.setdefault(window.key, []).append(j)
        rows = [window_features(w.value) for w in closed]
        verdicts: dict[int, tuple[BatchVerdict, int]] = {}
        for name, indices in by_service.items():
            service = self._services[name]
            result = service.model.observe_batch(
                [rows[j] for j in indices], [closed[j].start_s for j in indices]
            )
            for row, j in enumerate(indices):
                verdicts[j] = (result, row)
        for j, window in enumerate(closed):
            result, row = verdicts[j]
            self._decide(window, rows[j], result, row, out)
        out.empty_windows = sum(w.empty for w in closed)
        self.windows_total += len(closed)
        self.empty_windows_total += out.empty_windows

    def _decide(
        self,
        window: ClosedWindow[WindowStats],
        features: dict[str, float],
        result: BatchVerdict,
        row: int,
        out: LogBatchOutcome,
    ) -> None:
        service = self._services[window.key]
        stats = window.value
        if window.empty:
            stats.evidence = service.last_evidence
            stats.host = service.last_host
        else:
            service.last_evidence = stats.evidence
            service.last_host = stats.host
        counts = {t: e[0] for t, e in stats.templates.items()}
        verdict = service.rates.score(counts)
        warming = bool(result.warming_up[row])
        fired: list[str] = []
        if result.alerts[row] or result.resolved[row]:
            out.alerts.append(self._alerts.model(window, features, result, row, verdict))
            fired.append(self.model_name)
        elif result.suppressed[row]:
            out.suppressed += 1
        new_errors = len(stats.new_error_templates)
        rule = not warming and new_errors >= self.config.min_new_error_templates
        rates = not warming and verdict.flagged
        in_episode = bool(result.in_episode[row])
        self._rules.step(window, service, in_episode, verdict, rule, rates, fired, out)
        out.windows.append(
            ScoredWindow(
                service=window.key,
                start=datetime.fromtimestamp(window.start_s, UTC),
                lines=stats.lines,
                score=float(result.scores[row]),
                threshold=float(result.thresholds[row]),
                warming_up=warming,
                flagged=bool(result.exceeded[row]),
                new_error_templates=new_errors,
                rule_flagged=rule,
                rate_surprise=verdict.surprise,
                rate_flagged=rates,
                alerts=tuple(fired),
            )
        )
        # Unusual templates are learned as their critical count: a burst barely moves the
        # baseline, a lasting change of rate is learned over some windows.
        service.rates.learn(counts, verdict)

    # -- state of a partition's services (snapshots, rebalances) ---------------------------

    def export(self, services: Iterable[str]) -> dict[str, Any]:
        """These services' state, for a snapshot: templates, window model, template rates,
        rule and rate episodes, and their open windows. Live objects: pickle them, do not keep."""
        services = [s for s in services if s in self._services]
        return {
            "services": {s: self._services[s] for s in services},
            "windows": self._windows.export_keys(services),
            "closed_below": self._windows.closed_below,
        }

    def install(self, state: Mapping[str, Any]) -> None:
        """Take over services' state from :meth:`export` (replacing their own); this
        pipeline's decisions (budgets, rule level, directions, ...) apply to it at once."""
        for key_state in state["windows"].values():
            for stats in key_state.open.values():
                # Marked with the exporting pipeline's batch number, which may be one of ours:
                # its evidence would not be resolved again when our batch adds lines to it.
                stats.batch = -1
        for service in state["services"].values():  # this pipeline's decisions, at once
            service.model.reconfigure(self.config.anomaly)
            service.rates.alpha = self.config.rate_alpha
        self._services.update(state["services"])
        self._windows.install_keys(state["windows"], state["closed_below"])

    def forget(self, services: Iterable[str]) -> None:
        """Drop services' state (their partition went to another detector)."""
        services = list(services)
        for service in services:
            self._services.pop(service, None)
        self._windows.forget_keys(services)

    # -- inspection -------------------------------------------------------------------------------

    def episodes_per_service_day(self) -> float:
        """Window-model episodes opened per service-day of event time (NaN before any span)."""
        return episodes_per_service_day(s.model for s in self._services.values())

    def nbytes(self) -> int:
        """Bytes of array state held by all window models."""
        return sum(s.model.nbytes() for s in self._services.values())

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows for this pipeline."""
        engine = self.config.anomaly.engine
        return {
            "name": self.model_name,
            "rule": self.rule_name,
            "rates": self.rates_name,
            "config_id": self.config_id,
            "config": asdict(self.config),
            "watermark": self.watermark.isoformat() if self.watermark is not None else None,
            "open_windows": self._windows.open_windows(),
            "services": {
                name: {
                    "version": model_version_string(engine, self.config_id, s.model.version),
                    "features": list(s.model.feature_names),
                    "windows_seen": s.model.events_seen,
                    "threshold": s.model.threshold,
                    "templates": len(s.miner),
                    "templates_rated": len(s.rates),
                    "templates_evicted": s.miner.evictions,
                    "lines": s.miner.lines,
                }
                for name, s in self._services.items()
            },
        }
