"""The detector's HTTP API listens on the configured interface (``VIGIL_HTTP_HOST``) only."""

from __future__ import annotations

import httpx
import pytest

from stream.detector.detector import Detector
from stream.settings import Settings

pytestmark = pytest.mark.integration


async def test_detector_serves_on_the_configured_host_only(test_settings: Settings) -> None:
    detector = Detector(test_settings.model_copy(update={"http_host": "127.0.0.2"}))
    await detector.start()
    try:
        port = detector.http_port
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"http://127.0.0.2:{port}/healthz")).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await detector.stop()
