"""A real HTTP receiver for delivery tests: it answers each path from a script (503, a
dropped connection, 429 with Retry-After, 400, ...), then 200, and records what it took."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from dataclasses import dataclass, field

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    """One request the receiver answered 2xx."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Serve on 127.0.0.1 (a free port) in the running loop.

    ``script[path]`` lists the answers to its first requests: an HTTP status (``503``),
    ``"429:1"`` (with ``Retry-After: 1``) or ``"drop"`` (close without answering); later
    requests get 200.
    """

    script: dict[str, list[str | int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _server: asyncio.Server | None = None
    _plans: dict[str, deque[str | int]] = field(default_factory=dict)

    async def start(self) -> str:
        """Start; the base URL."""
        self._plans = {path: deque(answers) for path, answers in self.script.items()}
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def bodies(self, path: str) -> list[bytes]:
        return [r.body for r in self.received if r.path == path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.attempts[path] += 1
            plan = self._plans.get(path)
            answer: str | int = plan.popleft() if plan else 200
            if answer == "drop":
                return
            extra = ""
            if isinstance(answer, str):
                status_text, retry_after = answer.split(":")
                status = int(status_text)
                extra = f"Retry-After: {retry_after}\r\n"
            else:
                status = answer
            if 200 <= status < 300:
                self.received.append(Received(path, headers, body))
            head_out = f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\n"
            writer.write(f"{head_out}Connection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
