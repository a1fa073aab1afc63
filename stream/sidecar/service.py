"""``vigil sidecar``: batch retraining, champion/challenger, drift, next to the detectors.

The sidecar reads the labelled incident-risk vectors detectors publish (see
:mod:`stream.detector.training_feed`) into a bounded rolling :class:`~models.batch.TrainingWindow`
per model group (``risk:<group>``), and:

- **retrains** every ``VIGIL_SIDECAR_RETRAIN_S`` (1 h), on demand (``POST /retrain``,
  ``vigil sidecar --once``) and early on drift: a balanced logistic regression per group,
  tuned and evaluated on a time-ordered holdout (:mod:`stream.sidecar.fitting`);
- **decides** champion or challenger (:mod:`stream.sidecar.decisions`): the first model of
  a group is promoted, a later one is a *challenger* the detectors score in shadow until
  its evidence decides it (or, with ``VIGIL_SIDECAR_DECISION=holdout``, decided at once on
  its holdout). Every artifact is written with its metadata, figures and decision
  (:mod:`stream.sidecar.artifacts`), and every decision is published on the compacted models topic
  (key ``model/risk/<group>``, ``.../rejected``, ``.../challenger``);
- **watches drift**: the features of recent rows against a sample of the champion's training
  rows, kept with the champion so a restarted sidecar goes on (KS and Wasserstein, every
  ``VIGIL_SIDECAR_DRIFT_CHECK_S``).

There is no batch anomaly model. Sidecars before this version fitted an IsolationForest on a
1 % sample of scored metric events that no detector scored with; as one more calibrated
channel of the online anomaly model it did not help (``benchmarks/batch_channel.py``,
docs/sidecar.md). Rows of other kinds (an older detector's ``anomaly`` rows) are skipped,
and the artifacts and announcements an older sidecar left are left alone and never used.

Detectors pick announced champions up live (:mod:`stream.detector.champions`); with
``VIGIL_INCIDENT_SCORER=champion`` a group's risk champion decides its alerts.
:meth:`Sidecar.roll_back` re-announces an older version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from models.batch import Artifact, InsufficientDataError, TrainingWindow, WindowFrame
from stream.detector.champions import artifact_store
from stream.detector.http import HttpGuard, HttpServer
from stream.detector.shutdown import StopDeadline
from stream.kafka.kafka_options import kafka_options
from stream.kafka.publisher import Publisher
from stream.kafka.topic_specs import features_topic_spec, topic_spec
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from stream.sidecar.announcer import Announcer
from stream.sidecar.decisions import Decisions, GroupState
from stream.sidecar.fitting import fit_group
from stream.sidecar.http import create_sidecar_app
from stream.sidecar.metrics import KINDS, SidecarMetrics

__all__ = ["Sidecar"]

log = structlog.get_logger(__name__)

_RECENT_ROWS = 2000  # rows compared with the champion's training rows for feature drift


class Sidecar:
    """The sidecar process: window, retraining, decisions, drift, HTTP.

    Args:
        settings: The configuration.
        registry: The Prometheus registry (a fresh one if omitted).
        serve_http: Whether to serve the HTTP API.
        new_publisher: Makes the producer of announcements, again after each failure
            (default: one to ``settings``' Kafka).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        serve_http: bool = True,
        new_publisher: Callable[[], Publisher] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = SidecarMetrics(self.registry)
        self.window = TrainingWindow(
            span_s=settings.sidecar_window_s, max_rows=settings.sidecar_window_rows
        )
        self.store = artifact_store(settings.artifact_dir, settings.group_id)
        self._decisions = Decisions(settings, self.store, self.metrics)
        self._groups = self._decisions.groups
        self._stop = asyncio.Event()
        self._announcer = Announcer(
            settings.topic_models,
            self.store,
            new_publisher
            or (lambda: Publisher.from_settings(settings, f"{settings.client_id}-sidecar")),
            self.registry,
            self._stop,
        )
        self._consumer: AIOKafkaConsumer | None = None
        self.http_guard = HttpGuard.from_settings(settings, self.registry)
        self._http = (
            HttpServer(
                create_sidecar_app(self, self.http_guard), settings.http_host, settings.http_port
            )
            if serve_http
            else None
        )
        self._retrain_reason: str | None = None
        self._retrained_at = time.monotonic()
        self._drift_checked_at = time.monotonic()
        self._polled = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the topics it needs, connect, and serve HTTP."""
        settings = self.settings
        if settings.create_topics:
            await ensure_topics(
                settings.bootstrap_servers,
                [features_topic_spec(settings), topic_spec(settings, "topic_models")],
                kafka_options=kafka_options(settings),
            )
        self._restore()
        await self._announcer.start()
        self._consumer = AIOKafkaConsumer(
            settings.topic_features,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.sidecar_group_id,
            client_id=f"{settings.client_id}-sidecar",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **kafka_options(settings),
        )
        await self._consumer.start()
        if self._http is not None:
            await self._http.start()
        log.info(
            "sidecar_started",
            topic=settings.topic_features,
            http_work_endpoints=self.http_guard.work_endpoints,
        )

    def _restore(self) -> None:
        """Pick up where a previous sidecar left (:meth:`Decisions.restore`)."""
        self._decisions.restore()

    async def stop(self, deadline: StopDeadline | None = None) -> bool:
        """Disconnect, each step within its share of ``deadline`` (default:
        ``shutdown_timeout_s`` from now); safe to call twice. Returns whether all was done
        in time."""
        if deadline is None:
            deadline = StopDeadline(self.settings.shutdown_timeout_s)
        self._stop.set()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await deadline.wait("consumer_stop", consumer.stop(), share=0.5)
        with contextlib.suppress(Exception):
            await deadline.wait("producer_stop", self._announcer.stop(), share=0.6)
        if self._http is not None:
            await deadline.wait("http_stop", self._http.stop())
        return not deadline.timed_out

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (signal-handler safe)."""
        self._stop.set()

    def request_retrain(self, reason: str = "manual") -> None:
        """Retrain at the next step."""
        self._retrain_reason = reason

    @property
    def http_port(self) -> int | None:
        """The bound HTTP port, if serving."""
        return self._http.port if self._http is not None else None

    async def run(self) -> None:
        """Read, watch and retrain until :meth:`request_stop`."""
        while not self._stop.is_set():
            await self.step()

    # -- the loop ----------------------------------------------------------------------------

    async def step(self, timeout_s: float = 1.0) -> int:
        """Read one batch of rows; check drift and retrain when due. Returns rows read."""
        if self._consumer is None:
            raise RuntimeError("Sidecar.start() must be awaited first")
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        self._polled = True
        rows = 0
        for records in batches.values():
            for record in records:
                rows += self._ingest(record.value)
        if rows:
            for kind in KINDS:
                self.metrics.window_rows.labels(kind=kind).set(
                    sum(
                        self.window.rows(k)
                        for k in self.window.groups()
                        if k.startswith(f"{kind}:")
                    )
                )
        # No commits: the window lives in memory, so a restarted sidecar reads the topic's
        # retained day again (its group has no offsets: it starts from the earliest).
        await self.settle_shadows()
        now = time.monotonic()
        if now - self._drift_checked_at >= self.settings.sidecar_drift_check_s:
            self.check_drift()
        if self._retrain_reason is None and (
            now - self._retrained_at >= self.settings.sidecar_retrain_s
        ):
            self._retrain_reason = "schedule"
        if self._retrain_reason is not None:
            await self.retrain(self._retrain_reason)
        return rows

    def _ingest(self, value: bytes | None) -> int:
        try:
            message = orjson.loads(value or b"")
            rows = message["rows"]
            count = 0
            for row in rows:
                kind = row["k"]
                if kind not in KINDS:
                    continue  # an older detector's anomaly rows
                key = f"{kind}:{row['g']}"
                features = {n: (np.nan if v is None else float(v)) for n, v in row["f"].items()}
                label = row.get("y")
                self.window.add(
                    key,
                    float(row["t"]),
                    features,
                    None if label is None else bool(label),
                    row.get("i"),
                )
                if "sh" in row:
                    self._decisions.shadow_row(key, row)
                self.metrics.rows.labels(kind=kind).inc()
                count += 1
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.metrics.bad_messages.inc()
            log.warning("features_message_skipped", error=str(exc)[:200])
            return 0
        return count

    # -- drift -------------------------------------------------------------------------------

    def check_drift(self) -> dict[str, dict[str, Any]]:
        """Recent rows of each group against its champion's training rows; drift asks for a
        retrain. Returns the reports by group."""
        self._drift_checked_at = time.monotonic()
        reports: dict[str, dict[str, Any]] = {}
        drifted = dict.fromkeys(KINDS, 0)
        for key in self.window.groups():
            group = self._decisions.group(key)
            if group.drift is None:
                continue
            frame = self.window.frame(key, group.drift.names)
            recent = frame.X[-_RECENT_ROWS:]
            report = group.drift.check(recent)
            group.last_report = reports[key] = report.as_dict()
            if report.drifted:
                kind = key.split(":", 1)[0]
                drifted[kind] += len(report.drifted_features)
                self.metrics.drift.labels(kind=kind, signal="features").inc()
                log.info("feature_drift_detected", group=key, features=report.drifted_features)
                self.request_retrain("feature_drift")
        for kind, count in drifted.items():
            self.metrics.drifted.labels(kind=kind).set(count)
        return reports

    # -- retraining --------------------------------------------------------------------------

    async def retrain(self, reason: str) -> list[dict[str, Any]]:
        """Fit every group with enough rows, decide, store and announce. Returns decisions."""
        self._retrain_reason = None
        self._retrained_at = time.monotonic()
        decisions = []
        for key in self.window.groups():
            kind, group = key.split(":", 1)
            started = time.perf_counter()
            try:
                fitted = await asyncio.to_thread(fit_group, self.window, key, self.settings)
            except InsufficientDataError as exc:
                log.info("retrain_skipped", group=key, reason=str(exc))
                continue
            if fitted is None:
                continue
            challenger, frame = fitted
            self.metrics.retrain_seconds.labels(kind=kind).observe(time.perf_counter() - started)
            self.metrics.retrains.labels(kind=kind, reason=reason).inc()
            decisions.append(await self.consider(group, challenger, frame, reason))
        return decisions

    async def consider(
        self, group: str, model: Artifact, frame: WindowFrame, trigger: str = "manual"
    ) -> dict[str, Any]:
        """Decide what becomes of a freshly fitted model of ``group``
        (:mod:`stream.sidecar.decisions`), store it with that decision and announce it.
        ``frame`` holds the rows it was fitted from. Returns the decision."""
        decision = self._decisions.decide(model.kind, group, model, frame, trigger)
        await self._announce(model.kind, group, decision)
        return decision

    async def settle_shadows(self) -> list[dict[str, Any]]:
        """Decide every challenger whose shadow evidence is complete
        (:meth:`Decisions.settle`) and announce it; returns the decisions."""
        decisions = []
        for key, state in self._groups.items():
            decision = self._decisions.settle(key, state, self.window)
            if decision is None:
                continue
            kind, group = key.split(":", 1)
            await self._announce(kind, group, decision)
            await self._announce(
                kind,
                group,
                {
                    "status": "decided",
                    "version": decision["version"],
                    "outcome": decision["status"],
                },
                challenger=True,
            )
            decisions.append(decision)
        return decisions

    async def roll_back(self, kind: str, group: str, version: str) -> dict[str, Any]:
        """Make a stored ``version`` the group's champion again, and announce it: detectors
        that follow champions switch back without a restart. A challenger in shadow is then
        measured against this champion, from scratch."""
        decision = self._decisions.roll_back(kind, group, version)
        await self._announce(kind, group, decision)
        log.info("model_rolled_back", kind=kind, group=group, version=version)
        return decision

    async def _announce(
        self, kind: str, group: str, decision: dict[str, Any], *, challenger: bool = False
    ) -> None:
        """Publish a decision on the models topic and wait for its acknowledgement (retried
        through producer failures; never for an artifact that is not on disk)."""
        key = f"model/{kind}/{group}".encode()
        if challenger or decision["status"] == "challenger":
            key += b"/challenger"
        elif decision["status"] != "champion":
            key += b"/rejected"
        await self._announcer.announce(key, {"kind": kind, "group": group, **decision})

    # -- views -------------------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Consuming the features topic."""
        return self._consumer is not None and self._polled

    def describe_models(self) -> dict[str, Any]:
        """Champions, last decisions and drift reports, for ``GET /models``."""
        out: dict[str, Any] = {}
        for key in sorted(set(self.window.groups()) | set(self._groups)):
            kind, group = key.split(":", 1)
            state = self._groups.get(key, GroupState())
            out[key] = {
                "window_rows": self.window.rows(key),
                "champion": self.store.champion_version(kind, group),
                "in_shadow": None if state.shadow is None else state.shadow.as_dict(),
                "last_decision": state.last_decision,
                "feature_drift": state.last_report,
            }
        return {"groups": out, "artifact_dir": str(self.store.root)}
