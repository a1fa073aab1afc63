"""stream.detector.http's API over a fake detector view, and once over a real (unstarted)
Detector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from stream.detector.detector import Detector
from stream.detector.http import HttpGuard, ScoreResult, create_app
from stream.schemas import MetricEvent
from stream.settings import load_settings

EVENT = {"ts": "2026-11-23T08:00:00Z", "service": "payments", "metrics": {"cpu_p95": 72}}
TOKEN = "unit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeView:
    """A DetectorView that records what it was asked."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        Counter("vigil_test_things", "Things counted by the test.", registry=self.registry).inc(3)
        self.ready = False
        self.scored: list[list[MetricEvent]] = []

    def is_ready(self) -> bool:
        return self.ready

    def describe_models(self) -> dict[str, Any]:
        return {"metrics": {"name": "fake", "services": {"payments": {"threshold": 0.9}}}}

    def score(
        self, events: list[MetricEvent], positions: Sequence[int] | None = None
    ) -> list[ScoreResult]:
        self.scored.append(events)
        return [
            ScoreResult(
                service=e.service,
                score=0.25,
                threshold=0.9,
                warming_up=False,
                would_alert=False,
                alert=None,
            )
            for e in events
        ]


@pytest.fixture
def view() -> FakeView:
    return FakeView()


def guard_of(
    view: FakeView, token: str | None = TOKEN, max_body_bytes: int = 1_048_576
) -> HttpGuard:
    """A guard on the view's registry with ``token`` (None: none configured)."""
    secret = SecretStr(token) if token is not None else None
    return HttpGuard(max_body_bytes=max_body_bytes, token=secret, registry=view.registry)


@pytest.fixture
async def client(view: FakeView) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over ``view`` that presents the token."""
    transport = httpx.ASGITransport(app=create_app(view, guard_of(view)))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as client:
        yield client


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_the_detector(client: httpx.AsyncClient, view: FakeView) -> None:
    assert (await client.get("/readyz")).status_code == 503
    view.ready = True
    assert (await client.get("/readyz")).status_code == 200


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "vigil_test_things_total 3.0" in response.text


async def test_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/models")
    assert response.status_code == 200
    assert response.json()["metrics"]["services"]["payments"]["threshold"] == 0.9


async def test_score_passes_events_to_the_view(client: httpx.AsyncClient, view: FakeView) -> None:
    other = {**EVENT, "service": "api", "ts": 1795420800000}
    response = await client.post("/score", json={"events": [EVENT, other]})
    assert response.status_code == 200
    assert [r["service"] for r in response.json()] == ["payments", "api"]
    assert response.json()[0]["score"] == 0.25
    (batch,) = view.scored
    assert [e.service for e in batch] == ["payments", "api"]
    assert batch[1].ts == batch[0].ts


@pytest.mark.parametrize(
    "body",
    [
        {"events": [{**EVENT, "metrics": {"cpu_p95": "hot"}}]},
        {"events": [{**EVENT, "ts": "2026-11-23T08:00:00"}]},
        {"events": []},
        {"nothing": 1},
    ],
    ids=["wrong-type", "naive-ts", "no-events", "no-events-key"],
)
async def test_score_rejects_invalid_requests(
    client: httpx.AsyncClient, view: FakeView, body: dict[str, Any]
) -> None:
    response = await client.post("/score", json=body)
    assert response.status_code == 422
    assert view.scored == []
    assert "hot" not in response.text
    assert "input" not in response.text


async def test_score_rejects_a_timestamp_that_overflows_in_utc(client: httpx.AsyncClient) -> None:
    body = {"events": [{**EVENT, "ts": "9999-12-31T23:59:59-01:00"}]}
    assert (await client.post("/score", json=body)).status_code == 422


async def test_docs_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert {"/healthz", "/readyz", "/metrics", "/models", "/score"} <= set(schema["paths"])


# ------------------------------------------------------------------------------ real detector


@pytest.fixture
async def detector() -> AsyncIterator[Detector]:
    detector = Detector(load_settings({"http_port": 0, "http_token": TOKEN}), serve_http=False)
    yield detector
    await detector.stop()


def detector_client(detector: Detector) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(detector, detector.http_guard))
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH)


async def test_score_on_a_real_detector_does_not_learn(detector: Detector) -> None:
    async with detector_client(detector) as client:
        for _ in range(3):
            response = await client.post("/score", json={"events": [EVENT]})
            assert response.status_code == 200
            (result,) = response.json()
            assert result["warming_up"] is True
            assert result["would_alert"] is False
            assert result["score"] == pytest.approx(0.0, abs=1e-9)
        models = (await client.get("/models")).json()
    assert models["metrics"]["services"] == {}
    assert detector.describe_models()["metrics"]["services"] == {}
    assert len(detector.pipeline) == 0


async def test_score_response_matches_its_declared_schema(detector: Detector) -> None:
    async with detector_client(detector) as client:
        response = await client.post("/score", json={"events": [EVENT]})
    assert response.status_code == 200
    for result in response.json():
        ScoreResult.model_validate(result)


# ------------------------------------------------------------------------------ the sidecar


async def test_the_sidecar_serves_health_models_and_retrain_on_demand(tmp_path: Any) -> None:
    from stream.sidecar.http import create_sidecar_app
    from stream.sidecar.service import Sidecar

    settings = load_settings({"artifact_dir": str(tmp_path), "http_token": TOKEN})
    sidecar = Sidecar(settings, serve_http=False)
    transport = httpx.ASGITransport(app=create_sidecar_app(sidecar, sidecar.http_guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503  # not consuming yet
        assert (await client.get("/models")).json()["groups"] == {}
        assert "vigil_sidecar_retrains_total" in (await client.get("/metrics")).text
        assert (await client.post("/retrain")).status_code == 401  # no token presented
        assert sidecar._retrain_reason is None
        assert (await client.post("/retrain", headers=AUTH)).status_code == 202
    assert sidecar._retrain_reason == "manual"


async def test_the_sidecar_refuses_retrain_without_a_configured_token(tmp_path: Any) -> None:
    from stream.sidecar.http import create_sidecar_app
    from stream.sidecar.service import Sidecar

    sidecar = Sidecar(load_settings({"artifact_dir": str(tmp_path)}), serve_http=False)
    transport = httpx.ASGITransport(app=create_sidecar_app(sidecar, sidecar.http_guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as client:
        response = await client.post("/retrain")
    assert response.status_code == 403
    assert "VIGIL_HTTP_TOKEN" in response.json()["detail"]
    assert sidecar._retrain_reason is None
