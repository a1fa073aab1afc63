"""The HTTP APIs: health, readiness, Prometheus metrics, models; the detector's scoring."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any, Protocol, runtime_checkable

import uvicorn
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from stream.schemas import Alert, MetricEvent

__all__ = [
    "DetectorView",
    "ExplainsReadiness",
    "HttpServer",
    "ScoreRequest",
    "ScoreResult",
    "ServiceView",
    "create_app",
    "create_service_app",
]


class ScoreRequest(BaseModel):
    """A batch of events to score without learning."""

    events: list[MetricEvent] = Field(min_length=1, max_length=10_000)


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

    def score(self, events: list[MetricEvent]) -> list[ScoreResult]: ...


def create_app(view: DetectorView) -> FastAPI:
    """The FastAPI app over a detector (OpenAPI docs at ``/docs``)."""
    app = create_service_app(view, "Vigil detector")

    # Handlers are async so they run on the detector's event loop, never in a worker thread
    # next to the consumer that mutates the same models.
    @app.post("/score")
    async def score(request: ScoreRequest) -> list[ScoreResult]:
        """Score a batch of events without learning from them."""
        return view.score(request.events)

    return app


def create_service_app(view: ServiceView, title: str) -> FastAPI:
    """``/healthz``, ``/readyz``, ``/metrics`` and ``/models`` over a Vigil process."""
    app = FastAPI(title=title, version="0.1.0")

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
