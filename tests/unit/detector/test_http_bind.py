"""The HTTP server listens on the interface it is given, and only there."""

from __future__ import annotations

import httpx
import pytest

from stream.detector.http import HttpServer, create_service_app
from tests.unit.detector.test_http import FakeView, guard_of


async def test_serves_on_the_chosen_interface_only() -> None:
    view = FakeView()
    server = HttpServer(create_service_app(view, "test", guard_of(view)), "127.0.0.2", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"http://127.0.0.2:{server.port}/healthz")
            assert response.json() == {"status": "ok"}
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        await server.stop()
