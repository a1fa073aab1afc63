"""stream.detector.http_guard: the body-size limit (before the body is read), the bearer token on
work endpoints, bounded errors that never echo the input, and /score's steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from stream.detector.detector import Detector
from stream.detector.http import SCORE_CHUNK, create_app
from stream.detector.http_guard import BodyLimit, Refusal
from stream.dev.simulate import MetricSimulator
from stream.schemas import Evidence, MetricEvent
from stream.settings import load_settings
from tests.unit.detector.test_http import AUTH, EVENT, TOKEN, FakeView, guard_of

LIMIT = 4096
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _client(
    view: FakeView, *, token: str | None = TOKEN, auth: bool = True, limit: int = LIMIT
) -> httpx.AsyncClient:
    app = create_app(view, guard_of(view, token, max_body_bytes=limit))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH if auth else {}
    )


def _refused(view: FakeView, reason: Refusal) -> float | None:
    return view.registry.get_sample_value("vigil_http_requests_refused_total", {"reason": reason})


# ------------------------------------------------------------------------------ the token


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
    ids=["none", "wrong", "not-bearer", "longer", "empty"],
)
async def test_score_needs_the_token(authorization: str | None) -> None:
    view = FakeView()
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with _client(view, auth=False) as client:
        response = await client.post("/score", json={"events": [EVENT]}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert view.scored == []
    assert _refused(view, "unauthorized") == 1


async def test_score_with_the_token_is_served() -> None:
    view = FakeView()
    async with _client(view) as client:
        assert (await client.post("/score", json={"events": [EVENT]})).status_code == 200
    assert len(view.scored) == 1


async def test_without_a_configured_token_work_endpoints_are_refused_and_the_rest_open() -> None:
    view = FakeView()
    async with _client(view, token=None) as client:  # presenting a token changes nothing
        response = await client.post("/score", json={"events": [EVENT]})
        assert response.status_code == 403
        assert "VIGIL_HTTP_TOKEN" in response.json()["detail"]
        for path in ("/healthz", "/metrics", "/models", "/docs", "/openapi.json"):
            assert (await client.get(path, headers={"Authorization": ""})).status_code == 200
        assert (await client.get("/readyz")).status_code == 503  # open, and not ready
    assert view.scored == []
    assert _refused(view, "no_token") == 1


def test_a_short_token_is_bad_configuration() -> None:
    from stream.settings import ConfigError

    with pytest.raises(ConfigError, match=r"http_token.*at least 16") as caught:
        load_settings({"http_token": "short-secret"})
    assert "short-secret" not in str(caught.value)  # a secret is never quoted


def test_the_token_is_masked_like_other_secrets() -> None:
    settings = load_settings({"http_token": TOKEN})
    assert TOKEN not in repr(settings)
    assert TOKEN not in settings.model_dump_json()


# ------------------------------------------------------------------------------ the body limit


async def _call(
    middleware: BodyLimit, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[list[Message], int]:
    """Drive the middleware as a server would; returns what it sent and the chunks read."""
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read == len(chunks):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/score", "headers": headers}
    await middleware(scope, receive, send)
    return sent, read


class _Echo:
    """An app that answers with the body it was given."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})


def _limit(refusals: list[Refusal]) -> BodyLimit:
    return BodyLimit(_Echo(), max_bytes=LIMIT, on_refused=refusals.append)


async def test_a_declared_length_over_the_limit_is_refused_before_anything_is_read() -> None:
    refusals: list[Refusal] = []
    declared = [(b"content-length", str(30 * 2**20).encode())]
    sent, read = await _call(_limit(refusals), declared, [b"x" * 65_536] * 3)
    assert read == 0
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"]) == {"detail": f"request body over {LIMIT} bytes"}
    assert refusals == ["too_large"]


async def test_a_streamed_body_is_read_only_up_to_the_limit() -> None:
    refusals: list[Refusal] = []
    sent, read = await _call(_limit(refusals), [], [b"x" * 1000] * 100)  # no Content-Length
    assert read == 5  # 5,000 bytes: the first chunk past 4,096
    assert sent[0]["status"] == 413
    assert refusals == ["too_large"]


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    refusals: list[Refusal] = []
    body = [b"a" * 2000, b"b" * 2000, b"c" * 96]  # exactly the limit
    sent, _ = await _call(_limit(refusals), [(b"content-length", b"4096")], body)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"".join(body)
    assert refusals == []


async def test_score_over_the_limit_is_refused_through_the_app() -> None:
    view = FakeView()
    events = [EVENT] * 100  # ~8 KB
    async with _client(view) as client:
        response = await client.post("/score", json={"events": events})
    assert response.status_code == 413
    assert len(response.content) < 100
    assert view.scored == []
    assert _refused(view, "too_large") == 1


# ------------------------------------------------------------------------------ errors


async def test_validation_errors_are_bounded_and_never_echo_the_input() -> None:
    view = FakeView()
    long_name = "m" * 1000
    bad = [{**EVENT, "metrics": {long_name: "hot"}} for _ in range(25)]
    async with _client(view, limit=2**20) as client:
        response = await client.post("/score", json={"events": bad})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] > 10
    assert len(body["detail"]) == 10
    assert long_name not in response.text
    assert "hot" not in response.text
    assert body["detail"][0]["loc"][:3] == ["body", "events", 0]
    assert len(response.content) < 3000
    assert _refused(view, "invalid") == 1


async def test_an_error_points_at_the_event_in_the_whole_request() -> None:
    view = FakeView()
    events = [EVENT] * (SCORE_CHUNK + 3) + [{**EVENT, "ts": "yesterday"}]
    async with _client(view, limit=2**20) as client:
        response = await client.post("/score", json={"events": events})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "events", SCORE_CHUNK + 3, "ts"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({"events": [EVENT] * 10_001}),
        orjson.dumps({"events": [EVENT] * 2_001}),
    ],
    ids=["not-json", "not-an-object", "too-many-events", "too-many-of-one-service"],
)
async def test_malformed_requests_are_422_with_short_answers(body: bytes) -> None:
    view = FakeView()
    async with _client(view, limit=2**21) as client:
        response = await client.post("/score", content=body)
    assert response.status_code == 422
    assert len(response.content) < 400, response.text
    assert view.scored == []


# ------------------------------------------------------------------------------ /score's steps


async def test_score_requests_past_the_slots_are_refused_not_queued() -> None:
    view = FakeView()
    body = orjson.dumps({"events": [EVENT] * (3 * SCORE_CHUNK)})
    async with _client(view, limit=2**21) as client:
        responses = await asyncio.gather(*(client.post("/score", content=body) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 200, 429]
    assert _refused(view, "busy") == 1


@pytest.fixture
async def detector() -> AsyncIterator[Detector]:
    settings = load_settings({"http_port": 0, "http_token": TOKEN, "warmup_events": 50})
    detector = Detector(settings, clock=lambda: NOW, serve_http=False)
    yield detector
    await detector.stop()


async def test_scoring_in_steps_gives_what_one_call_gives(detector: Detector) -> None:
    """Steps of whole services: the same scores, alerts and evidence as one call."""
    simulated = [e.payload for e in MetricSimulator(services=3, seed=5).events(2 * 1200)]
    events = [MetricEvent.model_validate(p) for p in simulated]
    detector.pipeline.process_batch(
        events[:1200], lambda i: Evidence(topic="t", partition=0, offset=i)
    )
    expected = [r.model_dump(mode="json") for r in detector.score(events[1200:])]
    app = create_app(detector, detector.http_guard)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as client:
        body = orjson.dumps({"events": simulated[1200:]})
        response = await client.post("/score", content=body)
    assert response.status_code == 200
    assert response.json() == expected
    assert len(expected) > 2 * SCORE_CHUNK
    assert not any(r["warming_up"] for r in expected)
    assert sum(r["would_alert"] for r in expected) > 0
