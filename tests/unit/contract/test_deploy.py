"""The deployment files, checked without Docker or a cluster: parsed, validated against their
schemas, and cross-checked against the code they deploy.

Validators, all offline:

- deploy/Dockerfile: read by BuildKit's parser (the ``dockerfile`` package);
- docker-compose.yaml: the compose specification's JSON schema as vendored by
  ``check-jsonschema`` (``check_jsonschema/builtin_schemas/vendor/compose-spec.json``);
- Kubernetes manifests: the schemas ``kubernetes-validate`` bundles for each Kubernetes
  version, in strict mode (unknown fields fail); the Prometheus Operator's ServiceMonitor and
  PrometheusRule, which no package bundles, against the minimal schemas in ``schemas/`` beside
  this file (their sources are named inside);
- PromQL (Grafana panels, alert rules): parsed by ``promql-parser``; every metric a query
  selects must be one the code exports (found by instantiating ``DetectorMetrics`` and
  ``SidecarMetrics`` on fresh registries), with the labels it filters or groups by.

Every check can fail: the tests at the end feed each checker a broken input (a misspelt
metric, label, field or setting) and expect it to say so.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dockerfile
import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client import CollectorRegistry, generate_latest

from stream.cli import _build_parser
from stream.core.notifications import ALERTNAME
from stream.correlate.metrics import CorrelateMetrics
from stream.detector.http import HttpGuard, create_app
from stream.notify.metrics import NotifyMetrics
from stream.notify.sinks import SINK_NAMES, build_sinks
from stream.settings import Settings, load_settings
from stream.sidecar.metrics import SidecarMetrics
from stream.telemetry import DetectorMetrics
from stream.telemetry.bulk_histogram import BulkHistogram
from tests.debian import require_debian_binary

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "vigil.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
RULES = DEPLOY / "prometheus" / "rules.yml"
TOPICS_SCRIPT = DEPLOY / "kafka" / "create-topics.sh"

FIELDS = frozenset(Settings.model_fields)
DEFAULTS = {name: info.default for name, info in Settings.model_fields.items()}
TOPIC_FIELDS = sorted(
    name
    for name in FIELDS
    if name.startswith("topic_") and name not in ("topic_partitions", "topic_replication_factor")
)
VIGIL_COMMANDS = {"detect", "sidecar", "simulate", "correlate", "notify"}
STATEFUL_COMMANDS = {"detect", "sidecar", "correlate"}
"""Commands that keep snapshots or artifacts on the shared volume (notify keeps nothing)."""
# Kubernetes versions validated against: an old one still supported by the big providers, and
# the newest kubernetes-validate bundles.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule_v1.json",
}
# Labels Prometheus attaches to every scraped series (static configs; the Operator's targets).
# The Operator's `service` label (the Kubernetes Service) is left out on purpose: in Vigil's
# queries `service` would mean a monitored service, which no metric carries (bounded labels).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})
# Series Prometheus makes itself, per target: not the code's.
PROMETHEUS_SERIES = {"up": frozenset[str]()}
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


# --------------------------------------------------------------------------- loading


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _yaml(path: Path) -> Any:
    (doc,) = _yaml_docs(path)
    return doc


@cache
def _compose() -> dict[str, Any]:
    data = _yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _vigil_services(*commands: str) -> dict[str, dict[str, Any]]:
    """Compose services running the Vigil image with one of ``commands`` (default: any)."""
    wanted = set(commands) or VIGIL_COMMANDS
    return {
        name: service
        for name, service in _services().items()
        if service.get("image", "").startswith("vigil:")
        and _command(service)[:1]
        and _command(service)[0] in wanted
    }


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@cache
def _k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _yaml_docs(path)
    ]


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _k8s_docs() if doc["kind"] == kind]


def _k8s_one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [doc for doc in _k8s(kind) if doc["metadata"]["name"] == name]
    return doc


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _http_routes() -> set[str]:
    """The paths the detector's (and, through the same app factory, the sidecar's) HTTP API
    serves."""

    class _View:
        registry = CollectorRegistry()

        def is_ready(self) -> bool:
            return True

        def describe_models(self) -> dict[str, Any]:
            return {}

        def score(self, events: list[Any]) -> list[Any]:
            return []

    guard = HttpGuard(max_body_bytes=1024, token=None, registry=_View.registry)
    return {route.path for route in create_app(_View(), guard).routes if hasattr(route, "path")}


def _parses_as_vigil(argv: list[str]) -> None:
    """``argv`` is a valid ``vigil`` command line (argparse exits 2 otherwise)."""
    _build_parser().parse_args(argv)


def _unknown_settings(names: Any) -> list[str]:
    """The ``VIGIL_*`` names among ``names`` that are no setting (``VIGIL_CONFIG`` names the
    TOML file)."""
    return sorted(
        n
        for n in names
        if n.startswith("VIGIL_") and n != "VIGIL_CONFIG" and n[6:].lower() not in FIELDS
    )


def _settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in FIELDS:
        monkeypatch.delenv(f"VIGIL_{name.upper()}", raising=False)
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def _seconds(text: str) -> float:
    """A compose/Go duration such as ``45s``, ``1m30s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


# --------------------------------------------------------------------------- exported metrics


@cache
def _registries() -> tuple[CollectorRegistry, ...]:
    """A detector's, a sidecar's, a correlator's and a notifier's metrics, each on a fresh
    registry (the detector's with its opt-in per-service series, VIGIL_METRICS_SERVICES)."""
    detector, sidecar = CollectorRegistry(), CollectorRegistry()
    correlate, notifier = CollectorRegistry(), CollectorRegistry()
    inputs = ("topic_metrics", "topic_logs", "topic_feedback", "topic_incidents")
    DetectorMetrics(detector, [DEFAULTS[topic] for topic in inputs], service_pattern=".*")
    SidecarMetrics(sidecar)
    CorrelateMetrics(correlate)
    NotifyMetrics(notifier, SINK_NAMES, [DEFAULTS["topic_problems"], DEFAULTS["topic_alerts"]])
    return detector, sidecar, correlate, notifier


@cache
def _exported() -> dict[str, frozenset[str]]:
    """Every series name the code exports (``_total``, ``_bucket``... included) → its labels."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    out: dict[str, frozenset[str]] = {}
    for registry in _registries():
        # prometheus_client keeps a collector's label names in `_labelnames` (no public
        # accessor; families without samples yet carry none): a rename there fails loudly.
        # Vigil's own BulkHistogram has them public.
        for collector in registry._collector_to_names:
            if isinstance(collector, BulkHistogram):
                labels = frozenset(collector.labelnames)
            else:
                labels = frozenset(collector._labelnames)
            for family in collector.describe():
                for suffix in suffixes[family.type]:
                    extra = {"le"} if suffix == "_bucket" else set()
                    out[family.name + suffix] = labels | extra
    return out


@cache
def _label_values() -> dict[tuple[str, str], frozenset[str]]:
    """(series, label) → the values the code pre-initialises (only where it does)."""
    values: dict[tuple[str, str], set[str]] = {}
    for registry in _registries():
        for family in registry.collect():
            for sample in family.samples:
                for label, value in sample.labels.items():
                    if label != "le":
                        values.setdefault((sample.name, label), set()).add(value)
    return {key: frozenset(v) for key, v in values.items()}


def promql_problems(expr: str) -> list[str]:
    """What is wrong with one PromQL expression: syntax, metrics the code does not export,
    labels those metrics do not have, label values they never take."""
    try:
        ast = promql_parser.parse(expr)
    except Exception as exc:  # promql-parser raises plain ValueError-likes on syntax errors
        return [f"{expr!r} does not parse: {exc}"]
    exported = {**_exported(), **PROMETHEUS_SERIES}
    label_values = _label_values()
    problems: list[str] = []

    def selectors(node: Any) -> list[Any]:
        found: list[Any] = []

        def collect(inner: Any) -> None:
            if isinstance(inner, promql_parser.VectorSelector):
                found.append(inner)

        promql_parser.walk(node, collect)
        return found

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            if name not in exported:
                problems.append(f"{expr!r}: the code exports no metric {name!r}")
                return
            for matcher in node.matchers.matchers:
                if matcher.name not in exported[name] | TARGET_LABELS:
                    problems.append(f"{expr!r}: {name} has no label {matcher.name!r}")
                known = label_values.get((name, matcher.name))
                if (
                    matcher.op == promql_parser.MatchOp.Equal
                    and known
                    and matcher.value not in known
                ):
                    problems.append(
                        f"{expr!r}: {name} never has {matcher.name}={matcher.value!r} "
                        f"(it has {sorted(known)})"
                    )
        elif (
            isinstance(node, promql_parser.AggregateExpr)
            and node.modifier is not None
            and node.modifier.type == promql_parser.AggModifierType.By
        ):
            inner = selectors(node.expr)
            allowed = set(TARGET_LABELS)
            for selector in inner:
                allowed |= exported.get(selector.name, frozenset())
            for label in node.modifier.labels:
                if label not in allowed:
                    names = sorted({s.name for s in inner})
                    problems.append(f"{expr!r}: by ({label}) but {names} have no such label")

    promql_parser.walk(ast, visit)
    return problems


def _grafana_expr(expr: str, variables: dict[str, str]) -> tuple[str, list[str]]:
    """A panel's query with Grafana's variables replaced (unknown ones reported)."""
    unknown: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in variables:
            return variables[name]
        unknown.append(f"{expr!r}: unknown Grafana variable ${name}")
        return "1m"

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", substitute, expr), unknown


# --------------------------------------------------------------------------- every file parses


DEPLOY_FILES = sorted(
    [COMPOSE, *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.json")]
)


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_deploy_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        assert isinstance(json.loads(path.read_text()), dict)
    else:
        assert _yaml_docs(path), f"{path} holds no document"


def test_the_exported_metrics_are_found() -> None:
    # The cross-checks below are only as good as this list: make sure it is the real one.
    exported = _exported()
    for name in (
        "vigil_events_consumed_total",
        "vigil_consumer_lag_messages",
        "vigil_scoring_latency_seconds_bucket",
        "vigil_model_info",
        "vigil_sidecar_drift_total",
    ):
        assert name in exported
    assert "vigil_events_consumed" not in exported  # counters are exposed with _total only
    assert exported["vigil_consumer_lag_messages"] == {"topic", "partition"}
    # Score distributions come from a custom collector (stream/telemetry/bulk_histogram.py).
    assert exported["vigil_anomaly_score_bucket"] == {"source", "le"}
    assert exported["vigil_anomaly_score_count"] == {"source"}
    assert exported["vigil_incident_probability_bucket"] == {"le"}
    # Per service, only when configured (stream/telemetry/service_series.py).
    assert exported["vigil_service_alerts_total"] == {"service", "kind", "source"}
    assert exported["vigil_service_events_total"] == {"service", "source"}


# --------------------------------------------------------------------------- Dockerfile


DOCKERFILE_INSTRUCTIONS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)


@cache
def _dockerfile() -> tuple[dockerfile.Command, ...]:
    """The Dockerfile as BuildKit's own parser reads it (through the ``dockerfile`` package)."""
    commands = dockerfile.parse_file(str(DOCKERFILE))
    unknown = [c.original for c in commands if c.cmd not in DOCKERFILE_INSTRUCTIONS]
    assert not unknown, f"not Dockerfile instructions: {unknown}"
    return tuple(commands)


def _final_stage() -> dict[str, dockerfile.Command]:
    """The runtime stage's instructions, the last of each kind."""
    commands = _dockerfile()
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    return {c.cmd: c for c in commands[last_from:]}


def test_dockerfile_is_multi_stage_slim_pinned_and_non_root() -> None:
    commands = _dockerfile()
    froms = [c.value for c in commands if c.cmd == "FROM"]
    assert len(froms) >= 2
    assert [word.upper() for word in froms[0][1:]] == ["AS", "BUILDER"]
    assert all(f[0] == "${PYTHON_IMAGE}" for f in froms)
    args = dict(c.value[0].split("=", 1) for c in commands if c.cmd == "ARG")
    assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim(-\w+)?", args["PYTHON_IMAGE"])
    final = _final_stage()
    assert final["USER"].value[0].split(":")[0] not in ("0", "root")
    assert final["ENTRYPOINT"].json
    assert final["ENTRYPOINT"].value == ("vigil",)
    assert final["CMD"].value == ("detect",)
    runs = " ".join(c.value[0] for c in commands if c.cmd == "RUN")
    assert "-r deploy/requirements.lock" in runs
    assert "pip check" in runs


def test_dockerfile_healthcheck_and_port_match_the_http_app() -> None:
    final = _final_stage()
    kind, *argv = final["HEALTHCHECK"].value
    assert kind == "CMD"
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    compile(code, "HEALTHCHECK", "exec")
    paths = re.findall(r"'(/[a-z]+)'", code)
    assert paths == ["/healthz"]
    assert set(paths) <= _http_routes()
    found = re.search(r"os\.environ\.get\('(\w+)', '(\d+)'\)", code)
    assert found is not None
    assert found.group(1) == "VIGIL_HTTP_PORT"
    assert int(found.group(2)) == DEFAULTS["http_port"]
    assert final["EXPOSE"].value == (str(DEFAULTS["http_port"]),)


def test_dockerfile_env_names_are_settings() -> None:
    names = [n for c in _dockerfile() if c.cmd == "ENV" for n in c.value[::2]]
    vigil = [n for n in names if n.startswith("VIGIL_")]
    assert vigil
    assert not _unknown_settings(vigil)


def _dockerignore_admits(path: str) -> bool:
    """Docker's rule: the last matching pattern decides; ``!`` re-admits."""
    admitted = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        if re.fullmatch(f"{regex}(/.*)?", path):
            admitted = negate
    return admitted


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    copies = [c for c in _dockerfile() if c.cmd == "COPY" and not c.flags]
    sources = [source for c in copies for source in c.value[:-1]]
    assert "pyproject.toml" in sources
    assert "stream/" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _dockerignore_admits(source.rstrip("/")), f".dockerignore leaves out {source}"
    assert not _dockerignore_admits(".venv")
    assert not _dockerignore_admits("stream/__pycache__/cli.cpython-311.pyc")


def test_the_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    pins: dict[str, str] = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not pinned: {line}"
            assert re.fullmatch(r"[\w.+-]+", version), f"not pinned: {line}"
            pins[canonicalize_name(name)] = version
    for spec in _pyproject()["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is missing from deploy/requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} vs {req}"
        )
    dev_only = {
        canonicalize_name(Requirement(r).name)
        for r in _pyproject()["project"]["optional-dependencies"]["dev"]
    }
    assert not dev_only & set(pins), "development tools in the image's lock"
    build = {
        canonicalize_name(n): v
        for n, _, v in (
            line.partition("==")
            for line in (DEPLOY / "build-constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")
        )
    }
    for spec in _pyproject()["build-system"]["requires"]:
        req = Requirement(spec)
        assert req.specifier.contains(build[canonicalize_name(req.name)])


# --------------------------------------------------------------------------- docker compose


def _compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    assert isinstance(schema, dict)
    return schema


def compose_problems(data: dict[str, Any]) -> list[str]:
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(
        schema, format_checker=jsonschema.FormatChecker()
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_compose_follows_the_compose_specification() -> None:
    assert compose_problems(_compose()) == []


def test_compose_env_names_are_settings_and_build_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, service in _services().items():
        assert _unknown_settings(_env(service)) == [], name
    for name, service in _vigil_services().items():
        settings = _settings_from_env(_env(service), monkeypatch)
        assert settings.bootstrap_servers == "kafka:9092", name
        _parses_as_vigil(_command(service))


def test_compose_topics_are_the_codes_defaults_and_all_created() -> None:
    script = TOPICS_SCRIPT.read_text()
    init_env = _env(_services()["kafka-init"])
    assert "/opt/kafka/bin/kafka-topics.sh" in script
    for field in TOPIC_FIELDS:
        env = f"VIGIL_{field.upper()}"
        for name, service in {"kafka-init": _services()["kafka-init"], **_vigil_services()}.items():
            assert _env(service).get(env) == DEFAULTS[field], (name, env)
        assert f'create "${{{env}:?}}"' in script, f"create-topics.sh does not create {env}"
    models = next(line for line in script.splitlines() if "VIGIL_TOPIC_MODELS" in line)
    assert "cleanup.policy=compact" in models
    assert " 1 " in models
    used = set(re.findall(r"\$\{(VIGIL_\w+)", script))
    assert _unknown_settings(used) == []
    assert used <= set(init_env)
    mounts = _services()["kafka-init"]["volumes"]
    assert any(m.startswith("./deploy/kafka/create-topics.sh:") for m in mounts)


def test_compose_kafka_is_the_projects_kafka_version() -> None:
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert found is not None
    version = found.group(1)
    assert version.startswith("4.")
    for name in ("kafka", "kafka-init"):
        assert _services()[name]["image"] == f"apache/kafka:{version}"


def test_compose_runs_two_detectors_in_one_group_with_a_sidecar_and_simulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detectors = _vigil_services("detect")
    assert len(detectors) >= 2
    groups = {_env(s)["VIGIL_GROUP_ID"] for s in detectors.values()}
    assert len(groups) == 1
    (sidecar,) = _vigil_services("sidecar").values()
    # The sidecar files artifacts under the detectors' group
    # (stream/detector/champions.artifact_store).
    assert _env(sidecar)["VIGIL_GROUP_ID"] in groups
    (simulator,) = _vigil_services("simulate").values()
    assert simulator["healthcheck"] == {"disable": True}
    version = _pyproject()["project"]["version"]
    for service in _vigil_services().values():
        assert service["image"] == f"vigil:{version}"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE
    for name, service in {**detectors, "sidecar": sidecar}.items():
        settings = _settings_from_env(_env(service), monkeypatch)
        grace = _seconds(service["stop_grace_period"])
        assert grace > settings.shutdown_timeout_s, name
        # Every detector gets partitions (an idle one would never be ready).
        assert len(detectors) <= settings.topic_partitions


def test_compose_shares_snapshots_and_artifacts_on_one_volume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = set(_compose()["volumes"])
    used = set()
    services = {
        **_vigil_services("detect"),
        **_vigil_services("sidecar"),
        **_vigil_services("correlate"),
    }
    for name, service in services.items():
        settings = _settings_from_env(_env(service), monkeypatch)
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        for directory in (settings.snapshot_dir, settings.artifact_dir):
            holders = [v for target, v in mounts.items() if directory.startswith(target + "/")]
            assert holders, f"{name}: {directory} is not on a volume"
            used.update(holders)
    assert len(used) == 1
    assert used <= declared


def test_compose_host_ports_are_unique_and_bind_mounts_exist() -> None:
    host_ports = [str(p).split(":")[0] for s in _services().values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))
    for service in _services().values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_prometheus_scrapes_every_detector_and_the_sidecar_on_their_http_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _yaml(PROMETHEUS)
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    expected = {
        "vigil-detector": "detect",
        "vigil-sidecar": "sidecar",
        "vigil-correlate": "correlate",
        "vigil-notify": "notify",
    }
    assert set(jobs) == set(expected)
    for job, command in expected.items():
        services = _vigil_services(command)
        assert {t.split(":")[0] for t in jobs[job]} == set(services), job
        for target in jobs[job]:
            host, port = target.split(":")
            settings = _settings_from_env(_env(services[host]), monkeypatch)
            assert int(port) == settings.http_port
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") in _http_routes()
    prometheus = _services()["prometheus"]
    mount = next(m for m in prometheus["volumes"] if m.startswith("./deploy/prometheus:"))
    target_dir = mount.split(":")[1]
    assert f"--config.file={target_dir}/prometheus.yml" in prometheus["command"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS.parent / rule_file).is_file()


def test_prometheus_sends_its_alerts_to_the_compose_alertmanager() -> None:
    config = _yaml(PROMETHEUS)
    (manager,) = config["alerting"]["alertmanagers"]
    (target,) = manager["static_configs"][0]["targets"]
    host, port = target.split(":")
    alertmanager = _services()[host]
    assert f"{port}:{port}" in alertmanager["ports"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in alertmanager["volumes"]}
    flag = next(c for c in alertmanager["command"] if c.startswith("--config.file="))
    config_path = flag.removeprefix("--config.file=")
    local = mounts["./deploy/alertmanager"]
    am = _yaml(DEPLOY / "alertmanager" / config_path.removeprefix(local + "/"))
    receivers = {r["name"] for r in am["receivers"]}
    assert am["route"]["receiver"] in receivers
    assert host in _services()["prometheus"]["depends_on"]


def test_compose_notify_tells_the_compose_alertmanager(monkeypatch: pytest.MonkeyPatch) -> None:
    (name, notify), *others = _vigil_services("notify").items()
    assert others == []
    settings = _settings_from_env(_env(notify), monkeypatch)
    assert [sink.name for sink in build_sinks(settings)] == ["alertmanager"]
    assert settings.alertmanager_url is not None
    url = urlsplit(settings.alertmanager_url)
    alertmanager = _services()[str(url.hostname)]
    assert alertmanager["image"].startswith("prom/alertmanager:")
    # Alertmanager listens on 9093 unless told otherwise, and publishes it as such.
    assert not any(c.startswith("--web.listen-address") for c in alertmanager["command"])
    assert url.port == 9093
    assert "9093:9093" in alertmanager["ports"]
    assert url.hostname in notify["depends_on"], name
    assert "kafka-init" in notify["depends_on"], name
    assert notify["volumes"] == [], "the notifier keeps nothing on disk"


def _amtool() -> str:
    return require_debian_binary("amtool", "prometheus-alertmanager")


def test_alertmanager_config_passes_amtool_check_config() -> None:
    checked = subprocess.run(
        [_amtool(), "check-config", str(ALERTMANAGER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            (f"alertname={ALERTNAME}", "problem_id=p-1", "service=db", "severity=critical"),
            "problems",
        ),
        (("alertname=VigilConsumerLagHigh", "job=vigil-detector"), "rules"),
    ],
)
def test_alertmanager_routes_vigils_problems_apart_grouped_by_problem(
    labels: tuple[str, ...], receiver: str
) -> None:
    """Each problem is its own group on its own receiver; the rules' alerts go to the default."""
    config = _yaml(ALERTMANAGER)
    (problems,) = [r for r in config["route"]["routes"] if r["receiver"] == "vigil-problems"]
    assert "problem_id" in problems["group_by"]
    assert "..." not in problems["group_by"]
    expected = "vigil-problems" if receiver == "problems" else config["route"]["receiver"]
    routed = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.split() == [expected]


def test_grafana_provisioning_matches_the_compose_mounts_and_the_dashboard() -> None:
    grafana = _services()["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = _yaml(provisioning / "dashboards" / "vigil.yaml")["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = _env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    (datasource,) = _yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    prometheus_port = _services()["prometheus"]["ports"][0].split(":")[1]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    dashboard = json.loads(DASHBOARD.read_text())
    users = [*_panels(dashboard), *dashboard["templating"]["list"]]
    users += [target for panel in _panels(dashboard) for target in panel.get("targets", [])]
    # No fixed uid: every query reads the dashboard's data-source variable, so it imports
    # into any Grafana (the provisioned Prometheus here is its default).
    uids = {user["datasource"]["uid"] for user in users if "datasource" in user}
    assert uids == {"${datasource}"}
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", datasource["type"])
    assert datasource["isDefault"]


# --------------------------------------------------------------------------- Grafana dashboard


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    variables = dict(GRAFANA_BUILTINS)
    problems: list[str] = []
    for variable in dashboard.get("templating", {}).get("list", []):
        variables[variable["name"]] = ".*"
        query = variable.get("query", {})
        text = query.get("query", "") if isinstance(query, dict) else query
        inner = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
        if inner:
            problems += promql_problems(inner.group(1))
            metric = inner.group(1).split("{")[0].strip()
            labels = _exported().get(metric, frozenset())
            if inner.group(2) not in labels | TARGET_LABELS:
                problems.append(
                    f"variable {variable['name']}: {metric} has no label {inner.group(2)}"
                )
    ids = [p["id"] for p in _panels(dashboard)]
    if len(ids) != len(set(ids)):
        problems.append("panel ids repeat")
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            expr, unknown = _grafana_expr(target["expr"], variables)
            problems += unknown + promql_problems(expr)
    return problems


def test_dashboard_queries_use_only_exported_metrics() -> None:
    assert dashboard_problems(json.loads(DASHBOARD.read_text())) == []


def _uids(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``uid`` in a JSON tree, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "uid":
                yield path, value
            yield from _uids(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _uids(value, f"{path}[{i}]")


def test_dashboard_imports_anywhere() -> None:
    """Grafana's export format: the data source is an input (``__inputs``, asked for on
    import); every panel and query reads the data-source variable, no fixed uid anywhere;
    nothing names the input (``${DS_PROMETHEUS}``), which file provisioning, ignoring
    ``__inputs``, could not resolve."""
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    (source,) = dashboard["__inputs"]
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    assert "${" + source["name"] + "}" not in text
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert ("datasource", "prometheus") in required
    panel_types = {p["type"] for p in _panels(dashboard)} - {"row"}
    assert panel_types <= {i for t, i in required if t == "panel"}
    assert dict(_uids(dashboard)) == {
        "": dashboard["uid"],
        **{path: "${datasource}" for path, uid in _uids(dashboard) if path},
    }
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["current"] == {}  # the default Prometheus, or the one chosen on import
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_dashboard_has_the_problem_panels_and_a_row_per_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(_panels(dashboard))
    queries = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in panels}
    for metric in (
        "vigil_problems_open",
        "vigil_problems_total",
        "vigil_problems_silenced_total",
        "vigil_notifications_delivered_total",
        "vigil_notification_failures_total",
    ):
        assert any(metric in q for q in queries.values()), metric
    assert "sum by (sink)" in queries["Notifications delivered / s by sink"]
    assert "by (sink, reason)" in queries["Notification failures / s by sink and reason"]
    # No Vigil metric carries a service label (bounded labels) but the opt-in per-service
    # series: the view per source is a row repeated for each value of the source variable.
    exported = _exported()
    labelled = {name for name, labels in exported.items() if "service" in labels}
    assert labelled == {
        f"vigil_service_{name}_{suffix}"
        for name in ("alerts", "events")
        for suffix in ("total", "created")
    }
    assert "vigil_service_" not in _exposition_by_default()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "source"]
    assert variable["query"]["query"] == "label_values(vigil_events_scored_total, source)"
    assert variable["multi"]
    assert variable["includeAll"]
    top = dashboard["panels"]
    (at,) = [i for i, p in enumerate(top) if p.get("repeat") == "source"]
    assert top[at]["type"] == "row"
    rows = [i for i, p in enumerate(top) if p["type"] == "row"]
    end = min([i for i in rows if i > at], default=len(top))
    repeated = top[at + 1 : end]
    assert len(repeated) >= 5
    for panel in repeated:
        for target in panel["targets"]:
            assert 'source=~"$source"' in target["expr"], panel["title"]


def _exposition_by_default() -> str:
    """What a detector with default settings exports (no per-service series)."""
    registry = CollectorRegistry()
    DetectorMetrics(
        registry, [DEFAULTS["topic_metrics"]], service_pattern=DEFAULTS["metrics_services"]
    )
    return generate_latest(registry).decode()


def test_dashboard_has_a_per_service_row_on_the_opt_in_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "service"]
    # The events series: every service given series has one, alerted or not.
    assert variable["query"]["query"] == "label_values(vigil_service_events_total, service)"
    assert variable["multi"]
    assert variable["includeAll"]
    assert variable["allValue"] == ".*"
    top = dashboard["panels"]
    (at,) = [i for i, p in enumerate(top) if p["type"] == "row" and "Per service" in p["title"]]
    rows = [i for i, p in enumerate(top) if p["type"] == "row"]
    end = min([i for i in rows if i > at], default=len(top))
    panels = top[at + 1 : end]
    queries = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert "vigil_service_alerts_total" in queries
    assert "vigil_service_events_total" in queries
    for panel in panels:
        assert "VIGIL_METRICS_SERVICES" in panel["description"], panel["title"]
        for target in panel["targets"]:
            assert 'service=~"$service"' in target["expr"], panel["title"]
    # No other panel reads the service variable: they have no service label to filter.
    others = [p for p in _panels(dashboard) if p not in panels]
    assert not any("$service" in t["expr"] for p in others for t in p.get("targets", []))


def test_dashboard_shows_what_operators_need() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = " ".join(t["expr"] for p in _panels(dashboard) for t in p.get("targets", []))
    for metric in (
        "vigil_events_consumed_total",  # events/s
        "vigil_consumer_lag_messages",  # lag
        "vigil_alerts_total",  # alerts by kind
        "vigil_anomaly_score_bucket",  # score distributions
        "vigil_incident_probability_bucket",
        "vigil_incident_threshold",  # scores: the thresholds they are held to
        "vigil_event_to_alert_latency_seconds_bucket",  # latency
        "vigil_snapshot_age_seconds",  # snapshot age
        "vigil_model_info",  # model versions
        "vigil_champion_info",
        "vigil_sidecar_drift_total",  # drift
    ):
        assert metric in queries, metric
    assert dashboard["uid"]
    assert dashboard["title"] == "Vigil"


# --------------------------------------------------------------------------- Kubernetes


def k8s_problems(doc: dict[str, Any]) -> list[str]:
    """Schema errors of one manifest (built-in kinds: every version in K8S_VERSIONS)."""
    crd = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if crd is not None:
        schema = json.loads((SCHEMAS / crd).read_text())
        validator = jsonschema.Draft202012Validator(schema)
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    problems = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"k8s {version} {list(exc.absolute_path)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(exc.message)
    return problems


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in _k8s_docs()],
    ids=[f"{path.name}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in _k8s_docs()],
)
def test_k8s_manifest_is_valid(doc: dict[str, Any]) -> None:
    assert k8s_problems(doc) == []
    namespace = _k8s("Namespace")[0]["metadata"]["name"]
    if doc["kind"] != "Namespace":
        assert doc["metadata"]["namespace"] == namespace


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p, _ in _k8s_docs()}
    assert kustomization["namespace"] == _k8s("Namespace")[0]["metadata"]["name"]


def _pod_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The VIGIL_* environment of a Deployment's container, as Kubernetes would assemble it."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_k8s_one("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            ref = source["secretRef"]
            if ref.get("optional") and not any(
                doc["metadata"]["name"] == ref["name"] for doc in _k8s("Secret")
            ):
                continue  # created out of band (vigil-http's token), or not at all
            env.update(_k8s_one("Secret", ref["name"])["stringData"])
    for item in container.get("env", []):
        # A valueFrom (the pod's name, here) is known only in the cluster: a stand-in.
        env[item["name"]] = item.get("value", "known-in-the-cluster")
    return env


def test_k8s_env_names_are_settings_and_build_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for config_map in _k8s("ConfigMap"):
        assert _unknown_settings(config_map["data"]) == []
    (secret,) = _k8s("Secret")
    assert set(secret["stringData"]) == {"VIGIL_SASL_USERNAME", "VIGIL_SASL_PASSWORD"}
    for deployment in _k8s("Deployment"):
        env = _pod_env(deployment)
        assert _unknown_settings(env) == []
        settings = _settings_from_env(env, monkeypatch)  # SASL needs protocol + mechanism too
        assert settings.security_protocol.startswith("SASL_")
        for field in TOPIC_FIELDS:
            assert getattr(settings, field) == DEFAULTS[field]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        _parses_as_vigil(container["args"])


def test_k8s_deployments_ports_probes_and_termination(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = _http_routes()
    uid = int(_final_stage()["USER"].value[0].split(":")[0])
    version = _pyproject()["project"]["version"]
    for deployment in _k8s("Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        settings = _settings_from_env(_pod_env(deployment), monkeypatch)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": settings.http_port}, name
        assert container["image"].endswith(f"/vigil:{version}")
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["securityContext"]["runAsNonRoot"]
        probes = {
            kind: container[kind]["httpGet"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert probes["livenessProbe"]["path"] == "/healthz"
        assert probes["readinessProbe"]["path"] == "/readyz"
        for probe in probes.values():
            assert probe["path"] in routes
            assert probe["port"] in ports
        pre_stop = (
            container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        )
        pause = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
        assert pod["terminationGracePeriodSeconds"] > settings.shutdown_timeout_s + pause, name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        pvcs = {p["metadata"]["name"]: p for p in _k8s("PersistentVolumeClaim")}
        if container["args"][0] not in STATEFUL_COMMANDS:
            assert not claims, f"{name} keeps nothing on the shared volume"
            continue
        for directory in (settings.snapshot_dir, settings.artifact_dir):
            (volume,) = [v for path, v in mounts.items() if directory.startswith(path + "/")]
            assert "ReadWriteMany" in pvcs[claims[volume]]["spec"]["accessModes"]


def test_k8s_notify_reads_its_sinks_secrets_from_an_optional_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notify = _k8s_one("Deployment", "vigil-notify")
    (container,) = notify["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["notify"]
    refs = [s["secretRef"] for s in container["envFrom"] if "secretRef" in s]
    assert {"name": "vigil-notify", "optional": True} in refs
    # Created out of band (README.md): never in the manifests, so no secret is committed.
    assert "vigil-notify" not in {s["metadata"]["name"] for s in _k8s("Secret")}
    assert "vigil-notify" in (K8S / "README.md").read_text()
    # Without that Secret it still has a sink, so it starts (no sink: it exits 2).
    settings = _settings_from_env(_pod_env(notify), monkeypatch)
    assert [sink.name for sink in build_sinks(settings)] == ["alertmanager"]


def test_k8s_detector_replicas_fit_the_partitions_and_the_sidecar_is_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detector = _k8s_one("Deployment", "vigil-detector")
    settings = _settings_from_env(_pod_env(detector), monkeypatch)
    assert 2 <= detector["spec"]["replicas"] <= settings.topic_partitions
    sidecar = _k8s_one("Deployment", "vigil-sidecar")
    assert sidecar["spec"]["replicas"] == 1
    assert sidecar["spec"]["strategy"]["type"] == "Recreate"
    assert _settings_from_env(_pod_env(sidecar), monkeypatch).group_id == settings.group_id


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_k8s_selectors_and_ports_connect() -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"] for d in _k8s("Deployment")}
    for name, template in pods.items():
        deployment = _k8s_one("Deployment", name)
        assert _selects(
            deployment["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]
        )
    for service in _k8s("Service"):
        selected = [
            t
            for t in pods.values()
            if _selects(service["spec"]["selector"], t["metadata"]["labels"])
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        (container,) = selected[0]["spec"]["containers"]
        names = {p["name"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names
    (pdb,) = _k8s("PodDisruptionBudget")
    assert _selects(
        pdb["spec"]["selector"]["matchLabels"], pods["vigil-detector"]["metadata"]["labels"]
    )
    (monitor,) = _k8s("ServiceMonitor")
    scraped = [
        s
        for s in _k8s("Service")
        if _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    # Prometheus names the job after the Service: the same jobs as the compose Prometheus.
    jobs = {job["job_name"] for job in _yaml(PROMETHEUS)["scrape_configs"]}
    assert {s["metadata"]["name"] for s in scraped} == jobs
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] in _http_routes()
        for service in scraped:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
            assert service["spec"].get("publishNotReadyAddresses") is True


def rule_problems(groups: list[dict[str, Any]]) -> list[str]:
    jobs = {job["job_name"] for job in _yaml(PROMETHEUS)["scrape_configs"]}
    problems = []
    for group in groups:
        for rule in group["rules"]:
            problems += promql_problems(rule["expr"])
            for matcher in re.findall(r'job(=~|=)"([^"]*)"', rule["expr"]):
                op, value = matcher
                if not any(re.fullmatch(value, j) if op == "=~" else value == j for j in jobs):
                    problems.append(f"{rule['alert']}: job {value!r} is scraped nowhere")
            if "severity" not in rule.get("labels", {}):
                problems.append(f"{rule['alert']}: no severity")
    return problems


def test_alert_rules_query_exported_metrics_and_match_on_both_platforms() -> None:
    rules = _yaml(RULES)
    (rule,) = _k8s("PrometheusRule")
    assert rule["spec"] == rules, "deploy/k8s/prometheus-rule.yaml differs from rules.yml"
    assert rule_problems(rules["groups"]) == []
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    expressions = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    # What the issue asks alerts on: lag, DLQ rate, snapshot age, no alerts for too long.
    for metric in (
        "vigil_consumer_lag_messages",
        "vigil_events_dead_lettered_total",
        "vigil_snapshot_age_seconds",
        "vigil_alerts_total",
    ):
        assert metric in expressions
    assert {"VigilNoAlerts", "VigilAlertVolumeOverBudget"} <= alerts
    # Issue 21: notifications that keep failing, problems that never resolve.
    for metric in ("vigil_notification_failures_total", "vigil_problems_total"):
        assert metric in expressions
    assert {"VigilNotificationsFailing", "VigilProblemsPilingUp"} <= alerts


# --------------------------------------------------------------------------- the checks can fail


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("rate(vigil_events_consumd_total[5m])", "exports no metric 'vigil_events_consumd_total'"),
        ("vigil_events_consumed", "exports no metric 'vigil_events_consumed'"),
        ("sum by (service) (rate(vigil_alerts_total[5m]))", "by (service)"),
        ('vigil_alerts_total{kind="anomly"}', "never has kind='anomly'"),
        ('vigil_alerts_total{knd="anomaly"}', "has no label 'knd'"),
        ("sum(rate(vigil_alerts_total[5m])", "does not parse"),
    ],
)
def test_promql_check_catches_mistakes(expr: str, complaint: str) -> None:
    problems = promql_problems(expr)
    assert any(complaint in p for p in problems), problems


def test_dashboard_check_catches_a_misspelt_metric_and_an_unknown_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    target = dashboard["panels"][1]["targets"][0]
    target["expr"] = target["expr"].replace(
        "vigil_events_consumed_total", "vigil_event_consumed_total"
    )
    dashboard["panels"][2]["targets"][0]["expr"] = 'vigil_alerts_total{instance=~"$instanse"}'
    (source,) = [v for v in dashboard["templating"]["list"] if v["name"] == "source"]
    source["query"]["query"] = "label_values(vigil_events_scored_total, service)"
    problems = dashboard_problems(dashboard)
    assert any("vigil_event_consumed_total" in p for p in problems)
    assert any("$instanse" in p for p in problems)
    assert "variable source: vigil_events_scored_total has no label service" in problems


def test_rule_check_catches_a_job_nobody_scrapes() -> None:
    groups = [
        {
            "name": "g",
            "rules": [
                {
                    "alert": "A",
                    "expr": 'up{job="vigil-detectors"} == 0',
                    "labels": {"severity": "x"},
                }
            ],
        }
    ]
    assert rule_problems(groups) == ["A: job 'vigil-detectors' is scraped nowhere"]


def test_compose_check_catches_a_misspelt_key() -> None:
    broken = json.loads(json.dumps(_compose()))
    broken["services"]["detector-1"]["enviroment"] = broken["services"]["detector-1"].pop(
        "environment"
    )
    assert any("enviroment" in p for p in compose_problems(broken))


def test_k8s_check_catches_a_misspelt_field() -> None:
    broken = json.loads(json.dumps(_k8s_one("Deployment", "vigil-detector")))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert any("readinesProbe" in p for p in k8s_problems(broken))
    monitor = json.loads(json.dumps(_k8s("ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    assert any("intervall" in p for p in k8s_problems(monitor))


def test_settings_check_catches_a_misspelt_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _unknown_settings({"VIGIL_BOOTSTRAP_SERVER": "x", "VIGIL_GROUP_ID": "g"}) == [
        "VIGIL_BOOTSTRAP_SERVER"
    ]
    # And a bad value stops Settings, as a bad deployment would at start-up.
    from stream.settings import ConfigError

    with pytest.raises(ConfigError):
        _settings_from_env({"VIGIL_HTTP_PORT": "eighty"}, monkeypatch)
