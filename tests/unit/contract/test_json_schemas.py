"""docs/schemas/ holds the JSON Schemas of every message, as the code generates them
(`vigil schema --out docs/schemas` rewrites them), and real messages validate against them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from models.anomaly import AnomalyConfig
from stream.cli import main
from stream.codec import DecodeError, dead_letter, encode
from stream.core.pipeline import MetricPipeline
from stream.core.problems.correlator import CorrelationConfig, Correlator
from stream.json_schemas import MESSAGES, render, schema_of
from stream.schemas import Evidence, MetricEvent

DOCS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def test_docs_hold_every_schema_as_the_code_generates_it() -> None:
    assert sorted(p.stem for p in DOCS.glob("*.json")) == sorted(MESSAGES)
    for name in MESSAGES:
        written = (DOCS / f"{name}.json").read_bytes()
        assert written == render(schema_of(name)), f"run: vigil schema --out docs/schemas ({name})"


def _validator(name: str) -> Draft202012Validator:
    schema = schema_of(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "metric-event",
            {
                "ts": "2026-11-23T08:00:00Z",
                "service": "payments",
                "region": "blr",
                "metrics": {"cpu_p95": 72, "latency_p95": 420.5},
                "deploy_recent": True,
            },
        ),
        ("metric-event", {"ts": 1763884800000, "service": "api", "metrics": {"cpu": 1}}),
        (
            "log-event",
            {"ts": "2026-11-23T08:00:00.123Z", "service": "api", "level": "ERROR", "message": "x"},
        ),
        (
            "incident-event",
            {
                "ts": "2026-11-23T08:00:00Z",
                "incident_id": "INC-1",
                "service": "a",
                "status": "opened",
            },
        ),
        (
            "feedback",
            {"ts": "2026-11-23T08:00:00Z", "alert_id": "a1", "verdict": "false_positive"},
        ),
    ],
)
def test_contract_examples_validate(name: str, message: dict[str, object]) -> None:
    _validator(name).validate(message)


def test_a_message_vigil_refuses_is_invalid_against_its_schema() -> None:
    validator = _validator("metric-event")
    assert not validator.is_valid({"ts": "2026-11-23T08:00:00Z", "service": "a", "metrics": {}})
    assert not validator.is_valid({"ts": "2026-11-23T08:00:00Z", "metrics": {"cpu": 1}})


def test_alerts_dead_letters_and_problems_vigil_writes_validate() -> None:
    pipeline = MetricPipeline(AnomalyConfig(warmup_events=200, window_size=50))
    rng = random.Random(3)
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    alerts = []
    for i in range(700):
        value = 3000.0 if i == 600 else rng.gauss(100, 5)
        event = MetricEvent(
            ts=t0 + timedelta(seconds=10 * i), service="a", metrics={"p95": value}, host="h1"
        )
        outcome = pipeline.process(event, Evidence(topic="m", partition=0, offset=i))
        if outcome.alert is not None:
            alerts.append(outcome.alert)
    assert alerts
    validator = _validator("alert")
    for alert in alerts:
        validator.validate(orjson.loads(encode(alert)))
    letter = dead_letter(
        topic="vigil.metrics",
        partition=0,
        offset=7,
        key=b"a",
        value=b"{",
        error=DecodeError("invalid_json", "unexpected end"),
        failed_at=t0,
    )
    _validator("dead-letter").validate(orjson.loads(encode(letter)))
    correlator = Correlator(CorrelationConfig())
    problems = [p for alert in alerts for p in correlator.add(alert)]
    assert problems
    for problem in problems:
        _validator("problem").validate(orjson.loads(encode(problem)))


def test_vigil_schema_prints_one_and_refuses_an_unknown_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "feedback"]) == 0
    assert orjson.loads(capsys.readouterr().out)["title"] == "Feedback"
    assert main(["schema", "nope"]) == 2
    assert "unknown message" in capsys.readouterr().err
