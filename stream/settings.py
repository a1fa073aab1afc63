"""Vigil's configuration: one frozen settings object.

Precedence, highest first: command-line flags, ``VIGIL_*`` environment variables, an optional
TOML file (``--config`` or ``VIGIL_CONFIG``), then the defaults below. Every field becomes a
``--flag`` of the commands that use it, documented by its description.
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
import ssl
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from models.anomaly import AnomalyConfig, Direction, DirectionRule, ServiceRule
from models.incident import RiskConfig
from stream.core.logs.config import LOG_DIRECTIONS, LogConfig, default_window_anomaly_config
from stream.core.problems.silences import SilenceBook
from stream.core.problems.topology import Topology
from stream.core.problems.windows import MaintenanceWindow, parse_duration_s
from stream.kafka.tls import ssl_context
from stream.schemas import LINK_FIELDS, check_link_template

__all__ = ["ConfigError", "Settings", "load_settings", "settings_env"]

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("toml", default=None)


class ConfigError(Exception):
    """Configuration that cannot be used; the message is one readable line."""


class DirectionSetting(BaseModel):
    """One direction rule: metrics matching the glob alert on rises, drops or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1)
    direction: Direction


class ServiceBudgetSetting(BaseModel):
    """One budget rule: services matching the glob spend this many false alerts a day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(min_length=1)
    budget_per_day: float = Field(gt=0, le=1000)


def _duration(value: object) -> object:
    """A duration given as text (``2h``) is seconds; numbers pass on."""
    if isinstance(value, str):
        return parse_duration_s(value)
    return value


class MaintenanceWindowSetting(BaseModel):
    """One recurring maintenance window (see docs/silences.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    cron: str = Field(min_length=1)
    duration_s: Annotated[float, BeforeValidator(_duration)]
    service: str = Field("*", min_length=1)
    metric: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _valid_window(self) -> MaintenanceWindowSetting:
        self.window()  # a bad cron or duration says which window and why
        return self

    def window(self) -> MaintenanceWindow:
        """The window, as the silence book holds it."""
        return MaintenanceWindow(
            self.name, self.cron, self.duration_s, service=self.service, metric=self.metric
        )


class Settings(BaseSettings):
    """Everything a Vigil process can be told."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", frozen=True, extra="forbid", validate_default=True
    )

    # Kafka connection
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    group_id: str = Field("vigil-detector", min_length=1, description="Consumer group id.")
    group_instance_id: str | None = Field(
        None,
        min_length=1,
        description="Static group membership (KIP-345): a name unique and stable per "
        "detector, e.g. a StatefulSet pod's. Restarted under the same name within "
        "session_timeout_ms, a detector gets its partitions back with no rebalance; stopped "
        "for good, it holds them until the session times out. Unset: dynamic membership.",
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=6_000,
        le=1_800_000,
        description="How long the group waits for a silent detector before giving its "
        "partitions to others (the broker's group.min/max.session.timeout.ms bound it). With "
        "static membership, make it longer than a restart.",
    )
    client_id: str = Field("vigil", min_length=1, description="Kafka client id prefix.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts reading."
    )
    # Kafka security (see docs/security.md)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How Kafka clients connect: TLS (SSL), SASL, both or neither."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (required with SASL_PLAINTEXT and SASL_SSL)."
    )
    sasl_username: str | None = Field(None, min_length=1, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (prefer the environment or the TOML file to a flag)."
    )
    ssl_cafile: str | None = Field(
        None,
        description="PEM file of the CAs that sign the brokers' certificates (default: "
        "the system's).",
    )
    ssl_certfile: str | None = Field(
        None, description="PEM file of the client certificate, for brokers that require one."
    )
    ssl_keyfile: str | None = Field(
        None, description="PEM file of the client certificate's private key."
    )
    ssl_keyfile_password: SecretStr | None = Field(
        None, description="Password of the client private key, if it is encrypted."
    )
    ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to."
    )
    # Topics
    topic_metrics: str = Field("vigil.metrics", min_length=1, description="Metric events topic.")
    topic_logs: str = Field("vigil.logs", min_length=1, description="Log events topic.")
    topic_incidents: str = Field("vigil.incidents", min_length=1, description="Incidents topic.")
    topic_feedback: str = Field("vigil.feedback", min_length=1, description="Feedback topic.")
    topic_alerts: str = Field("vigil.alerts", min_length=1, description="Alerts topic.")
    topic_dlq: str = Field("vigil.dlq", min_length=1, description="Dead-letter topic.")
    topic_models: str = Field("vigil.models", min_length=1, description="Model versions topic.")
    topic_features: str = Field(
        "vigil.features",
        min_length=1,
        description="Internal topic: feature vectors detectors scored, for the sidecar.",
    )
    topic_problems: str = Field(
        "vigil.problems", min_length=1, description="Problems topic (vigil correlate writes it)."
    )
    topic_silences: str = Field(
        "vigil.silences", min_length=1, description="Silences topic (vigil silence writes it)."
    )
    topic_scoped_alerts: str = Field(
        "vigil.alerts.scoped",
        min_length=1,
        description="Internal topic: alerts keyed by their scope, for vigil correlate.",
    )
    create_topics: bool = Field(True, description="Create missing topics at start-up.")
    topic_partitions: int = Field(6, ge=1, le=10_000, description="Partitions of new topics.")
    topic_replication_factor: int = Field(
        1, ge=1, le=10, description="Replication factor of new topics (3 in production)."
    )
    # Batching
    max_partition_fetch_bytes: int = Field(
        4 * 1_048_576,
        ge=65_536,
        description="Most bytes fetched ahead per input partition: with the batch in hand, "
        "what bounds a detector's input memory (see docs/backpressure.md).",
    )
    connect_timeout_s: float = Field(
        60.0,
        ge=0,
        description="At start, how long to retry a Kafka cluster that cannot be reached "
        "(retriable errors, backoff 0.5 s doubling to 8 s) before exiting 1.",
    )
    shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM/SIGINT: at most this long to finish the batch in hand, "
        "snapshot, commit and leave the group before exiting anyway (exit status 1).",
    )
    exit_with_parent: int | None = Field(
        None,
        ge=1,
        description="Exit at once when the process with this pid, which started this one, "
        "is gone (vigil demo sets it for its children; on Linux they also get a "
        "parent-death signal).",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="at_least_once: offsets are committed after the alerts are acknowledged "
        "(a crash may repeat alerts; their alert_id is deterministic); exactly_once: alerts, "
        "dead letters and offsets go in one Kafka transaction per input partition and batch "
        "(read alerts with isolation_level=read_committed).",
    )
    max_batch: int = Field(2000, ge=1, le=100_000, description="Most records per fetch batch.")
    batch_wait_s: float = Field(
        0.02, gt=0, le=10, description="Longest wait for a fetch batch to fill, seconds."
    )
    max_message_bytes: int = Field(
        1_048_576, ge=1024, description="Larger input messages are dead-lettered as too_large."
    )
    max_alert_age_s: float = Field(
        3600.0,
        ge=0,
        description="The live detector learns from events older than this (event time against "
        "the wall clock) but sends no alert for them (anomaly, log and risk alerts; counted in "
        "vigil_alerts_too_old_total): a first deploy on days of history stays quiet. 0: no "
        "limit. vigil replay and evaluate alert on events of any age.",
    )
    alert_runbook_url: str | None = Field(
        None,
        description="A runbook URL template every alert carries in links.runbook, e.g. "
        "https://wiki.example/runbooks/{service}; placeholders: "
        + ", ".join(f"{{{name}}}" for name in LINK_FIELDS)
        + " (values URL-quoted).",
    )
    alert_dashboard_url: str | None = Field(
        None,
        description="A dashboard URL template every alert carries in links.dashboard, e.g. "
        "https://grafana.example/d/vigil?var-service={service}; placeholders as for "
        "alert_runbook_url.",
    )
    # Anomaly model
    anomaly_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Fixed threshold on the calibrated anomaly score 1 - p (overrides the "
        "budget), e.g. 0.9999.",
    )
    anomaly_budget_per_day: float = Field(
        0.25,
        gt=0,
        le=1000,
        description="False anomaly episodes (alerts) a service may open per day: the "
        "calibrated threshold at the service's own sample cadence.",
    )
    anomaly_resolve_after: int = Field(
        5,
        ge=1,
        le=10_000,
        description="Normal samples in a row (of the service's own cadence) that resolve an "
        "anomaly episode; until then it raises no further alert.",
    )
    anomaly_min_effect: float = Field(
        3.0,
        gt=0,
        description="An anomaly alert needs a metric at least this many robust standard "
        "deviations from its expected value.",
    )
    anomaly_directions: tuple[DirectionSetting, ...] = Field(
        (),
        description="Rules metric-glob -> up|down|both, tried before the defaults (errors, "
        "latency, saturation: up; success rates: down; others: both). TOML: "
        '[[anomaly_directions]] metric = "cpu_*" direction = "both"; env or flag: JSON.',
    )
    anomaly_services: tuple[ServiceBudgetSetting, ...] = Field(
        (),
        description="Rules service-glob -> budget_per_day (first match wins). TOML: "
        '[[anomaly_services]] service = "payments*" budget_per_day = 1; env or flag: JSON.',
    )
    warmup_events: int = Field(500, ge=0, description="Events per service before it may alert.")
    engine: Literal["numpy", "river"] = Field(
        "numpy", description="HST engine: numpy micro-batches, or river per event (same scores)."
    )
    hst_trees: int = Field(10, ge=1, le=500, description="Half-Space Trees: number of trees.")
    hst_height: int = Field(8, ge=1, le=20, description="Half-Space Trees: tree height.")
    hst_window: int = Field(250, ge=10, description="Half-Space Trees: mass window size.")
    seed: int = Field(42, description="Seed for the models' random splits.")
    detector: Literal["robust_z", "hst", "ensemble"] = Field(
        "ensemble",
        description="Row score: mean robust |z| of seasonal residuals, Half-Space Trees, or both.",
    )
    season_s: float = Field(
        86_400.0,
        ge=0,
        description="Seasonal cycle in event-time seconds (86400 daily, 604800 weekly; 0: off).",
    )
    season_buckets: int = Field(
        288, ge=1, le=10_080, description="Buckets per seasonal cycle (288 a day: 5 minutes)."
    )
    # Log events
    log_window_s: float = Field(
        30.0, gt=0, description="Log windows: tumbling window length in event-time seconds."
    )
    log_lateness_s: float = Field(
        10.0, ge=0, description="Log windows: how late a line may arrive and still count."
    )
    log_idle_s: float = Field(
        2.0,
        ge=0,
        description="Log windows: a caught-up partition silent this long stops holding them open.",
    )
    log_max_templates: int = Field(
        1000, ge=1, description="Log templates kept per service (least recently used evicted)."
    )
    # Incident risk
    incident_risk: bool = Field(
        True, description="Predict incidents from metric steps and learn from vigil.incidents."
    )
    incident_horizon_s: float = Field(
        900.0, gt=0, description="Incident risk: predict an incident within this many seconds."
    )
    incident_label_grace_s: float = Field(
        900.0,
        ge=0,
        description="Incident risk: how late past the horizon an incident label may arrive.",
    )
    incident_step_s: float = Field(
        60.0, gt=0, description="Incident risk: one vector per service per this much event time."
    )
    incident_strategy: Literal["episode_budget", "recall_at_least", "max_f1", "alert_budget"] = (
        Field(
            "episode_budget",
            description="Incident risk: how the alert threshold is tuned (episode_budget: "
            "risk alerts per service-day).",
        )
    )
    incident_episode_budget: float = Field(
        2.5,
        gt=0,
        description="Incident risk: episode_budget's risk alerts (episodes opened) per "
        "service-day.",
    )
    incident_open_steps: int = Field(
        3,
        ge=1,
        description="Incident risk: a risk episode opens after this many consecutive steps at "
        "or over the threshold.",
    )
    incident_resolve_steps: int = Field(
        5,
        ge=1,
        description="Incident risk: an open risk episode resolves after this many consecutive "
        "steps under its resolve level.",
    )
    incident_target_recall: float = Field(
        0.8, gt=0, le=1, description="Incident risk: recall_at_least's target recall."
    )
    incident_alert_budget: float = Field(
        0.01, gt=0, lt=1, description="Incident risk: alert_budget's share of vectors alerting."
    )
    incident_threshold: float | None = Field(
        None, ge=0, le=1, description="Fixed incident-risk threshold (overrides the strategy)."
    )
    incident_group_pattern: str | None = Field(
        None,
        description="Regex over service names; its first group names the service's model group "
        "(default: one model for all services).",
    )
    incident_scorer: Literal["online", "champion"] = Field(
        "online",
        description="Incident risk: alerts follow the online model, or the sidecar's promoted "
        "champion of the group once one is announced (the online model keeps learning).",
    )
    incident_state: Literal["detector", "partition"] = Field(
        "detector",
        description="Incident risk: one state per service group pooled over the detector's "
        "services, or one per group and metrics partition (risk alerts then exact whatever "
        "the fleet and the fetches; each model sees only its partition's incidents).",
    )
    # Snapshots of online state
    snapshots: bool = Field(
        True, description="Snapshot each partition's model state and restore it on assignment."
    )
    snapshot_dir: str = Field(
        ".vigil/snapshots",
        min_length=1,
        description="Snapshot directory (one subdirectory per consumer group and partition).",
    )
    snapshot_interval_s: float = Field(
        60.0, gt=0, description="Seconds between snapshots of a partition's state."
    )
    snapshot_keep: int = Field(3, ge=1, le=1000, description="Snapshots kept per partition.")
    # vigil correlate
    correlate_group_id: str = Field(
        "vigil-correlate", min_length=1, description="vigil correlate's consumer group."
    )
    correlate_window_s: float = Field(
        600.0,
        gt=0,
        description="An alert joins a problem whose latest alert came at most this many "
        "seconds before it (event time).",
    )
    correlate_hold_s: float = Field(
        600.0,
        ge=0,
        description="Seconds a problem whose members all resolved stays open for alerts that "
        "rejoin it.",
    )
    correlate_quiet_s: float = Field(
        3600.0,
        gt=0,
        description="A problem no alert joined or resolved in for this many seconds resolves.",
    )
    correlate_scope_label: str | None = Field(
        None,
        description="The alert label whose value scopes problems and partitions the "
        "correlators (region, cluster); none: one scope.",
    )
    correlate_group_labels: str = Field(
        "host",
        description="Comma-separated labels whose equal values join alerts of different "
        "services ('' for none).",
    )
    correlate_topology: str | None = Field(
        None,
        description="services.toml: [services.NAME] depends_on = [...], the dependency "
        "graph that joins alerts and ranks root-cause suspects.",
    )
    correlate_tick_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds between the ticks that move each scope's event time while no "
        "alert comes (problems resolve on it).",
    )
    correlate_lateness_s: float = Field(
        30.0,
        ge=0,
        description="Seconds of event time a tick stays behind the newest alert seen, for "
        "alerts of other partitions still on their way.",
    )
    # The sidecar
    artifact_dir: str = Field(
        ".vigil/artifacts", min_length=1, description="Where the sidecar keeps model artifacts."
    )
    sidecar_group_id: str = Field(
        "vigil-sidecar", min_length=1, description="The sidecar's consumer group."
    )
    sidecar_retrain_s: float = Field(
        3600.0, gt=0, description="Sidecar: seconds between scheduled retrains."
    )
    sidecar_window_s: float = Field(
        86_400.0, gt=0, description="Sidecar: training window, event-time seconds."
    )
    sidecar_window_rows: int = Field(
        1_000_000, ge=1000, description="Sidecar: most rows kept per model group."
    )
    sidecar_margin: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Sidecar: PR-AUC a challenger must gain over the champion to be promoted.",
    )
    sidecar_drift_check_s: float = Field(
        300.0, gt=0, description="Sidecar: seconds between feature-drift checks."
    )
    sidecar_decision: Literal["shadow", "holdout"] = Field(
        "shadow",
        description="Sidecar: a risk challenger is decided on the detectors' shadow scores of "
        "live labelled vectors, or at once on the sidecar's own holdout.",
    )
    sidecar_shadow_min_rows: int = Field(
        1000, ge=1, description="Sidecar: labelled shadow vectors needed to decide."
    )
    sidecar_shadow_min_incidents: int = Field(
        10,
        ge=1,
        description="Sidecar: distinct incidents the positive ones among them must precede.",
    )
    # Silences (see docs/silences.md)
    maintenance_windows: tuple[MaintenanceWindowSetting, ...] = Field(
        (),
        description="Recurring maintenance windows: problems they cover are recorded, never "
        'notified. TOML: [[maintenance_windows]] name = "db-nightly" cron = "0 2 * * *" '
        '(UTC) duration_s = "2h" service = "db*" (metric = "disk_*" optional); env or '
        "flag: JSON.",
    )
    deploy_expected_s: float = Field(
        0.0,
        ge=0,
        description="A problem whose root service was deployed shortly before its first alert "
        "is expected (silenced as deploy:<service>) for this many seconds after that alert "
        "(0: off).",
    )
    # vigil notify (see docs/notifications.md)
    notify_group_id: str = Field(
        "vigil-notify", min_length=1, description="vigil notify: its consumer group."
    )
    notify_alerts: bool = Field(
        False,
        description="vigil notify: also deliver single alerts from the alerts topic, each "
        "episode as a one-service problem (besides the problems of vigil correlate).",
    )
    alertmanager_url: str | None = Field(
        None,
        description="vigil notify: Alertmanager's base URL (alerts are posted to "
        "/api/v2/alerts), e.g. http://alertmanager:9093; unset: no Alertmanager sink.",
    )
    notify_repost_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="vigil notify: seconds between re-posts of every open problem to "
        "Alertmanager (which resolves an alert not re-posted before its endsAt: four re-post "
        "periods ahead).",
    )
    notify_webhook_url: str | None = Field(
        None,
        description="vigil notify: generic webhook URL (the Problem JSON, signed with "
        "notify_webhook_secret); unset: no webhook sink.",
    )
    notify_webhook_secret: SecretStr | None = Field(
        None,
        description="vigil notify: HMAC-SHA256 key of the webhook's X-Vigil-Signature (at "
        "least 16 characters; required with notify_webhook_url).",
    )
    notify_pagerduty_routing_key: SecretStr | None = Field(
        None,
        description="vigil notify: PagerDuty Events API v2 routing (integration) key; "
        "unset: no PagerDuty sink.",
    )
    notify_pagerduty_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue",
        description="vigil notify: PagerDuty Events API v2 endpoint.",
    )
    notify_slack_webhook_url: SecretStr | None = Field(
        None,
        description="vigil notify: Slack incoming-webhook URL (a secret: it is the "
        "credential); unset: no Slack sink.",
    )
    notify_timeout_s: float = Field(
        10.0, gt=0, le=300, description="vigil notify: timeout of one delivery attempt."
    )
    notify_backoff_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="vigil notify: wait after a failed attempt, doubling per attempt up to "
        "notify_backoff_max_s (a Retry-After asks for longer).",
    )
    notify_backoff_max_s: float = Field(
        60.0, gt=0, le=3600, description="vigil notify: longest wait between attempts."
    )
    notify_retry_max_s: float = Field(
        900.0,
        gt=0,
        description="vigil notify: how long a notification is retried before it is given up "
        "and dead-lettered (notify_<sink>_retries_exhausted).",
    )
    notify_max_pending: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="vigil notify: most records waiting for their deliveries; past it, "
        "consumption pauses until sinks catch up.",
    )
    # HTTP and logging
    http_host: str = Field("0.0.0.0", description="Interface the HTTP server binds to.")
    http_port: int = Field(8000, ge=0, le=65535, description="HTTP port (0: any free port).")
    http_token: SecretStr | None = Field(
        None,
        description="Bearer token the HTTP endpoints that do work or write require (POST "
        "/score, POST /retrain); unset: they are refused (403). At least 16 characters; "
        "prefer the environment or the TOML file to a flag.",
    )
    http_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=1_073_741_824,
        description="Larger HTTP request bodies are refused (413) before they are read.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="Log format: JSON, console, or console on a TTY (auto)."
    )
    # Per-service Prometheus series (opt-in, bounded)
    metrics_services: str | None = Field(
        None,
        description="Regex over service names: the services whose whole name matches get "
        "per-service series (vigil_service_alerts_total, vigil_service_events_total); unset: "
        "none (no metric carries a service label).",
    )
    metrics_services_max: int = Field(
        200,
        ge=1,
        le=10_000,
        description="At most this many services get per-service series per detector; "
        'matching services past it are counted under service="_other" (a warning is logged '
        "once).",
    )

    @field_validator("anomaly_directions", "anomaly_services", "maintenance_windows", mode="before")
    @classmethod
    def _json_rules(cls, value: object) -> object:
        """Rules given as text (a flag or an environment variable) are JSON."""
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        return value

    @field_validator("maintenance_windows")
    @classmethod
    def _unique_windows(
        cls, value: tuple[MaintenanceWindowSetting, ...]
    ) -> tuple[MaintenanceWindowSetting, ...]:
        names = [w.name for w in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"maintenance window names must be unique: {', '.join(repeated)}")
        return value

    def silence_book(self, topology: Topology | None = None) -> SilenceBook:
        """An empty silence book with the configured windows and deploy rule (its silences
        come from the silences topic: :class:`stream.kafka.silences.SilenceFollower`)."""
        return SilenceBook(
            [w.window() for w in self.maintenance_windows],
            deploy_expected_s=self.deploy_expected_s,
            topology=topology,
        )

    @field_validator("alert_runbook_url", "alert_dashboard_url")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is not None:
            check_link_template(value)
        return value

    def link_templates(self) -> dict[str, str]:
        """The alert link templates configured, by link name."""
        links = {"runbook": self.alert_runbook_url, "dashboard": self.alert_dashboard_url}
        return {name: template for name, template in links.items() if template}

    @field_validator("http_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("alertmanager_url", "notify_webhook_url", "notify_pagerduty_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("notify_slack_webhook_url")
    @classmethod
    def _secret_http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("notify_webhook_secret")
    @classmethod
    def _webhook_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _webhook_signed(self) -> Settings:
        if self.notify_webhook_url is not None and self.notify_webhook_secret is None:
            raise ValueError("VIGIL_NOTIFY_WEBHOOK_URL needs VIGIL_NOTIFY_WEBHOOK_SECRET")
        return self

    @field_validator("metrics_services", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``VIGIL_METRICS_SERVICES=`` (empty, as a template may leave it) means none."""
        return None if value == "" else value

    @field_validator("incident_group_pattern", "metrics_services")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile", "correlate_topology")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError("no such file")
        return value

    @model_validator(mode="after")
    def _security_combines(self) -> Settings:
        protocol = self.security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        if sasl:
            missing = [
                f"VIGIL_{name.upper()}"
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"security_protocol {protocol} needs {', '.join(missing)}")
        else:
            _refuse_unused(self, protocol, ("sasl_mechanism", "sasl_username", "sasl_password"))
        if tls:
            if self.ssl_keyfile is not None and self.ssl_certfile is None:
                raise ValueError("VIGIL_SSL_KEYFILE needs VIGIL_SSL_CERTFILE")
            if self.ssl_keyfile_password is not None and self.ssl_certfile is None:
                raise ValueError("VIGIL_SSL_KEYFILE_PASSWORD needs VIGIL_SSL_CERTFILE")
            self.tls_context()  # unreadable PEM files or a wrong key password fail here
        else:
            _refuse_unused(
                self,
                protocol,
                ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_keyfile_password"),
            )
        return self

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context of Kafka connections (see :func:`stream.kafka.tls.ssl_context`)."""
        password = self.ssl_keyfile_password
        return ssl_context(
            cafile=self.ssl_cafile,
            certfile=self.ssl_certfile,
            keyfile=self.ssl_keyfile,
            password=None if password is None else password.get_secret_value(),
            check_hostname=self.ssl_check_hostname,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _toml_path.get()
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if toml is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml),)
        return sources

    def anomaly_config(self) -> AnomalyConfig:
        """The anomaly model's configuration."""
        return AnomalyConfig(
            n_trees=self.hst_trees,
            height=self.hst_height,
            window_size=self.hst_window,
            seed=self.seed,
            engine=self.engine,
            warmup_events=self.warmup_events,
            budget_per_day=self.anomaly_budget_per_day,
            threshold_override=self.anomaly_threshold,
            resolve_after=self.anomaly_resolve_after,
            min_effect=self.anomaly_min_effect,
            directions=tuple(DirectionRule(r.metric, r.direction) for r in self.anomaly_directions),
            services=tuple(ServiceRule(r.service, r.budget_per_day) for r in self.anomaly_services),
            detector=self.detector,
            season_s=self.season_s,
            season_buckets=self.season_buckets,
        )

    def risk_config(self) -> RiskConfig:
        """The incident-risk model's configuration."""
        return RiskConfig(
            horizon_s=self.incident_horizon_s,
            label_grace_s=self.incident_label_grace_s,
            strategy=self.incident_strategy,
            episode_budget=self.incident_episode_budget,
            target_recall=self.incident_target_recall,
            alert_budget=self.incident_alert_budget,
            open_steps=self.incident_open_steps,
            resolve_steps=self.incident_resolve_steps,
            threshold_override=self.incident_threshold,
            seed=self.seed,
        )

    def log_config(self) -> LogConfig:
        """The log pipeline's configuration: its window models keep their own sizes, and
        spend the same budget, by the same service rules, as the metric models."""
        anomaly = self.anomaly_config()
        return LogConfig(
            window_s=self.log_window_s,
            lateness_s=self.log_lateness_s,
            max_templates=self.log_max_templates,
            anomaly=dataclasses.replace(
                default_window_anomaly_config(),
                budget_per_day=anomaly.budget_per_day,
                threshold_override=anomaly.threshold_override,
                min_effect=anomaly.min_effect,
                directions=(*anomaly.directions, *LOG_DIRECTIONS),
                services=anomaly.services,
            ),
        )


def load_settings(
    overrides: dict[str, Any] | None = None, config_file: Path | None = None
) -> Settings:
    """Build settings from flags (``overrides``), the environment and an optional TOML file.

    Raises:
        ConfigError: with one readable line naming the bad setting.
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    token = _toml_path.set(config_file)
    try:
        return Settings(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except (ValueError, OSError) as exc:  # unreadable TOML or an env value that is not JSON
        is_toml = isinstance(exc, tomllib.TOMLDecodeError | OSError)
        where = f"config file {config_file}: " if is_toml and config_file is not None else ""
        raise ConfigError(where + str(exc).splitlines()[0]) from None
    finally:
        _toml_path.reset(token)


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``settings`` as the ``VIGIL_*`` environment of a child ``vigil`` process that should
    run with exactly them (unset ones left out; secrets in clear, for the child only), on top
    of ``base`` (say ``os.environ``) without its own ``VIGIL_*`` variables.

    Examples:
        >>> env = settings_env(Settings(group_id="g", create_topics=False), {"VIGIL_X": "1"})
        >>> env["VIGIL_GROUP_ID"], env["VIGIL_CREATE_TOPICS"], "VIGIL_SASL_PASSWORD" in env
        ('g', 'false', False)
        >>> "VIGIL_X" in env
        False
    """
    env = {k: v for k, v in (base or {}).items() if not k.startswith("VIGIL_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, tuple):
            value = orjson.dumps([v.model_dump() for v in value]).decode()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"VIGIL_{name.upper()}"] = str(value)
    return env


def _refuse_unused(settings: Settings, protocol: str, names: tuple[str, ...]) -> None:
    """Settings the protocol would silently ignore are a mistake: say so."""
    unused = [f"VIGIL_{name.upper()}" for name in names if getattr(settings, name) is not None]
    if unused:
        raise ValueError(f"{', '.join(unused)} unused with security_protocol {protocol}")


_SECRETS = frozenset(
    name
    for name, info in Settings.model_fields.items()
    if SecretStr in (info.annotation, *typing.get_args(info.annotation))
)
_SHOWABLE = frozenset(Settings.model_fields) - _SECRETS
"""Settings whose bad values an error may quote (not secrets, nor misspelt names)."""


def _one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(p) for p in error["loc"])
        got = error.get("input")
        shown = (
            f" (got {got!r})"
            if got is not None and not isinstance(got, dict) and name in _SHOWABLE
            else ""
        )
        # A check of several settings together (no loc) names them in its message.
        where = f"{name} / VIGIL_{name.upper()}: " if name else ""
        parts.append(f"{where}{error['msg']}{shown}")
    return "invalid configuration: " + "; ".join(parts)
