"""The sidecar's HTTP API: health, readiness, metrics, models, and retrain on demand."""

from __future__ import annotations

from typing import Protocol

from fastapi import Depends, FastAPI

from stream.detector.http import HttpGuard, ServiceView, create_service_app

__all__ = ["create_sidecar_app"]


class _Retrainable(ServiceView, Protocol):
    def request_retrain(self, reason: str = "manual") -> None: ...


def create_sidecar_app(sidecar: _Retrainable, guard: HttpGuard) -> FastAPI:
    """The sidecar's HTTP API: health, readiness, metrics, models, and retrain on demand
    (``guard``'s token required)."""
    app = create_service_app(sidecar, "Vigil sidecar", guard)

    @app.post(
        "/retrain",
        status_code=202,
        dependencies=[Depends(guard.token_dependency())],
        responses={
            401: {"description": "no or a wrong bearer token"},
            403: {"description": "no VIGIL_HTTP_TOKEN is configured"},
        },
    )
    async def retrain() -> dict[str, str]:
        """Retrain every group at the next step (bearer token required)."""
        sidecar.request_retrain("manual")
        return {"status": "scheduled"}

    return app
