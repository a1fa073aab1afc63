"""The HTTP APIs: health, readiness, Prometheus metrics, models; the detector's scoring."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from stream.detector.http_guard import BodyLimit, HttpGuard, error_details
from stream.schemas import Alert, MetricEvent

__all__ = [
    "MAX_SCORE_EVENTS",
    "MAX_SERVICE_EVENTS",
    "SCORE_CHUNK",
    "SCORE_SERVICES",
    "DetectorView",
    "ExplainsReadiness",
    "HttpGuard",
    "HttpServer",
    "ScoreRequest",
    "ScoreResult",
    "ServiceView",
    "create_app",
    "create_service_app",
    "score_steps",
]


MAX_SCORE_EVENTS = 10_000
"""Most events one ``POST /score`` may hold (the body-size limit may allow fewer)."""
MAX_SERVICE_EVENTS = 2_000
"""Most events of one service one ``POST /score`` may hold: a service's events are scored in
one step (see :func:`score_steps`), ~10 ms for 2,000 here, 55-80 ms for 10,000."""


class ScoreRequest(BaseModel):
    """A batch of events to score without learning."""

    events: list[MetricEvent] = Field(min_length=1, max_length=MAX_SCORE_EVENTS)


class ScoreResult(BaseModel):
    """One event's score and the alert it would raise."""

    service: str
    score: float
    threshold: float | None = Field(description="null while the service has no threshold yet")
    warming_up: bool
    would_alert: bool
    alert: Alert | None


class ServiceView(Protocol):
    """What every Vigil process's HTTP API needs: metrics, readiness and its models."""

    registry: CollectorRegistry

    def is_ready(self) -> bool: ...

    def describe_models(self) -> dict[str, Any]: ...


@runtime_checkable
class ExplainsReadiness(Protocol):
    """A view that says why it is not ready (``kafka_unreachable``, ``starting``, ...)."""

    def not_ready_reason(self) -> str | None: ...


class DetectorView(ServiceView, Protocol):
    """What the detector's HTTP API needs on top: scoring without learning."""

    def score(
        self, events: list[MetricEvent], positions: Sequence[int] | None = None
    ) -> list[ScoreResult]:
        """Score ``events`` without learning; ``positions`` are their places in the request
        (what an alert's evidence offset names; default: their places in ``events``)."""
        ...


SCORE_CHUNK = 500
"""Events validated, or scored, per turn of the event loop: a request's work is done in
steps of a few milliseconds, between which the loop serves ``/healthz`` and consumes."""
SCORE_SERVICES = 20
"""Most services scored in one step (a service the detector holds no model of costs about
0.5 ms: a fresh model is built for it)."""
SCORE_SLOTS = 2
"""``POST /score`` requests at work at once; more are refused (429)."""

_EVENTS = TypeAdapter(list[MetricEvent])
_RESULTS = TypeAdapter(list[ScoreResult])


class _Envelope(BaseModel):
    """The request's shape, items unchecked (they are validated a chunk at a time)."""

    events: list[Any] = Field(min_length=1, max_length=MAX_SCORE_EVENTS)


def create_app(view: DetectorView, guard: HttpGuard) -> FastAPI:
    """The FastAPI app over a detector (OpenAPI docs at ``/docs``); ``guard`` limits bodies
    and requires its token on ``POST /score``."""
    app = create_service_app(view, "Vigil detector", guard)
    slots = asyncio.Semaphore(SCORE_SLOTS)

    # Async handlers: they run on the detector's event loop, never in a worker thread next to
    # the consumer that mutates the same models; heavy requests are cut into steps instead.
    @app.post(
        "/score",
        response_model=list[ScoreResult],
        dependencies=[Depends(guard.token_dependency())],
        openapi_extra={"requestBody": _request_body_schema(app, ScoreRequest)},
        responses={
            401: {"description": "no or a wrong bearer token"},
            403: {"description": "no VIGIL_HTTP_TOKEN is configured"},
            413: {"description": "body over VIGIL_HTTP_MAX_BODY_BYTES"},
            422: {
                "description": "invalid events, or more than 2,000 of one service: the first "
                "10 errors, never the input"
            },
            429: {"description": "too many score requests at once"},
        },
    )
    async def score(request: Request) -> Response:
        """Score a batch of events without learning from them (bearer token required).

        Events are validated a few hundred at a time, then scored a few services at a time,
        the detector consuming in between: the models may learn between two steps of a
        request. An alert's evidence is ``http``, partition 0, the event's place in the
        request.
        """
        if slots.locked():
            guard.count("busy")
            raise HTTPException(429, "too many score requests at once", {"Retry-After": "1"})
        async with slots:
            events = await _parse_events(await request.body())
            if isinstance(events, JSONResponse):
                guard.count("invalid")
                return events
            results: dict[int, ScoreResult] = {}
            for step in score_steps(events):
                results.update(zip(step, view.score([events[i] for i in step], step), strict=True))
                await asyncio.sleep(0)
            ordered = [results[i] for i in range(len(events))]
            return Response(_RESULTS.dump_json(ordered), media_type="application/json")

    return app


def score_steps(
    events: Sequence[MetricEvent],
    *,
    max_events: int = SCORE_CHUNK,
    max_services: int = SCORE_SERVICES,
) -> list[list[int]]:
    """The request's events (their indices) as steps of whole services, each service's
    events in request order.

    A service's events are one sequence (a step from the previous value, a counter's rate),
    so they stay together: steps give exactly the scores of one call. A step holds up to
    ``max_events`` events of up to ``max_services`` services; a service with more events (at
    most :data:`MAX_SERVICE_EVENTS`) is a step of its own.

    Examples:
        >>> from datetime import UTC, datetime
        >>> ts = datetime(2026, 11, 23, tzinfo=UTC)
        >>> events = [MetricEvent(ts=ts, service=s, metrics={"x": 1}) for s in "abacbd"]
        >>> score_steps(events, max_events=3)
        [[0, 2], [1, 4, 3], [5]]
        >>> score_steps(events, max_services=2)
        [[0, 2, 1, 4], [3, 5]]
    """
    by_service: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        by_service.setdefault(event.service, []).append(i)
    steps: list[list[int]] = []
    step: list[int] = []
    services = 0
    for indices in by_service.values():
        if step and (len(step) + len(indices) > max_events or services == max_services):
            steps.append(step)
            step, services = [], 0
        step.extend(indices)
        services += 1
    if step:
        steps.append(step)
    return steps


async def _parse_events(body: bytes) -> list[MetricEvent] | JSONResponse:
    """The request's events, validated a chunk at a time; or the 422 that says why not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _invalid([{"type": "json_invalid", "loc": (), "msg": str(exc)}])
    try:
        envelope = _Envelope.model_validate(data)
    except ValidationError as exc:
        return _invalid(exc.errors(include_url=False, include_input=False, include_context=False))
    events: list[MetricEvent] = []
    errors: list[Mapping[str, Any]] = []
    for start in range(0, len(envelope.events), SCORE_CHUNK):
        try:
            events.extend(_EVENTS.validate_python(envelope.events[start : start + SCORE_CHUNK]))
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False, include_context=False):
                index, *rest = error["loc"]
                errors.append({**error, "loc": ("events", start + int(index), *rest)})
        await asyncio.sleep(0)
    if errors:
        return _invalid(errors)
    most = max(collections.Counter(e.service for e in events).values())
    if most > MAX_SERVICE_EVENTS:
        message = f"at most {MAX_SERVICE_EVENTS} events of one service, not {most}"
        return _invalid([{"type": "too_many_of_one_service", "loc": ("events",), "msg": message}])
    return events


def _invalid(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    return JSONResponse(
        {"detail": error_details(errors, prefix=("body",)), "errors": len(errors)},
        status_code=422,
    )


def _request_body_schema(app: FastAPI, model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a handler that reads its body itself: ``model``'s schema,
    its nested models added to the app's components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = schema.pop("$defs", {})
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        document = default_openapi()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in nested.items():
            components.setdefault(name, definition)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return {"content": {"application/json": {"schema": schema}}, "required": True}


def create_service_app(view: ServiceView, title: str, guard: HttpGuard) -> FastAPI:
    """``/healthz``, ``/readyz``, ``/metrics`` and ``/models`` over a Vigil process, behind
    ``guard``'s body limit; request validation errors never echo the input."""
    app = FastAPI(title=title, version="0.1.0")
    app.add_middleware(BodyLimit, max_bytes=guard.max_body_bytes, on_refused=guard.count)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        guard.count("invalid")
        errors = exc.errors()
        return JSONResponse(
            {"detail": error_details(errors), "errors": len(errors)}, status_code=422
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        """The process is consuming with its models loaded (503 with the reason if not)."""
        if view.is_ready():
            return {"status": "ready"}
        response.status_code = 503
        reason = view.not_ready_reason() if isinstance(view, ExplainsReadiness) else None
        return {"status": "starting", "reason": reason or "starting"}

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(view.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/models")
    async def models() -> dict[str, Any]:
        """Model names, versions, configuration and per-service thresholds."""
        return view.describe_models()

    return app


class _InLoopServer(uvicorn.Server):
    """uvicorn on the caller's event loop, leaving signal handling to the caller."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """Serves an app on the running event loop; ``start``/``stop`` are explicit and idempotent."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host = host
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _InLoopServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving and wait until the socket is bound."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._server.serve(), name="vigil-http")
        while not self._server.started:
            if self._task.done():
                # uvicorn logs the cause and exits (e.g. the port is in use).
                with contextlib.suppress(SystemExit):
                    self._task.result()
                config = self._server.config
                raise OSError(f"HTTP server could not listen on {config.host}:{config.port}")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop serving."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
