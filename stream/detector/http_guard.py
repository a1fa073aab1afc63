"""What keeps a Vigil HTTP API from hurting its process (docs/security.md, "The HTTP API").

- A body-size limit checked before a request's body is read: a declared ``Content-Length``
  over it is refused at once (413), and a body without one is read only up to it.
- A bearer token on every endpoint that does work or writes; with no token configured those
  endpoints are refused (403), never open.
- Error details that never echo the input: a few errors, each a type, a short location and
  a short message.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import orjson
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream.settings import Settings

__all__ = [
    "REFUSALS",
    "BodyLimit",
    "HttpGuard",
    "Refusal",
    "declared_length",
    "error_details",
    "token_refusal",
]

Refusal = Literal["too_large", "no_token", "unauthorized", "invalid", "busy"]
"""Why a request was refused: a body over the limit (413); a work endpoint while no token is
configured (403); a missing or wrong token (401); a body that does not validate (422); too
many heavy requests at once (429)."""
REFUSALS: tuple[Refusal, ...] = ("too_large", "no_token", "unauthorized", "invalid", "busy")

MAX_ERRORS = 10
"""Most validation errors a response lists."""
_MAX_TEXT = 120
"""Longest text of an error's message or location part (a location can be a mapping key,
which is input)."""


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """A request's ``Content-Length`` (None when absent or unreadable: the server's HTTP
    parser has refused a malformed one already).

    Examples:
        >>> declared_length([(b"host", b"x"), (b"content-length", b"31457280")])
        31457280
        >>> declared_length([(b"transfer-encoding", b"chunked")]) is None
        True
    """
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def token_refusal(token: SecretStr | None, presented: str | None) -> Refusal | None:
    """Why a request presenting ``presented`` as its bearer token is refused, if it is.

    Compared in constant time, so the answer's timing tells nothing of the token.

    Examples:
        >>> token_refusal(None, "anything")
        'no_token'
        >>> secret = SecretStr("a-long-enough-token")
        >>> token_refusal(secret, None), token_refusal(secret, "guess")
        ('unauthorized', 'unauthorized')
        >>> token_refusal(secret, "a-long-enough-token") is None
        True
    """
    if token is None:
        return "no_token"
    if presented is None:
        return "unauthorized"
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(presented.encode(), expected):
        return "unauthorized"
    return None


def _short(part: object) -> str | int:
    if isinstance(part, int):
        return part
    text = str(part)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def error_details(
    errors: Sequence[Mapping[str, Any]], *, prefix: Sequence[str | int] = ()
) -> list[dict[str, Any]]:
    """Validation errors as a response lists them: at most :data:`MAX_ERRORS`, each its
    ``type``, ``loc`` (``prefix`` first) and ``msg``, the texts cut short; never the input.

    Examples:
        >>> error = {"type": "too_long", "loc": ("events",), "msg": "List too long",
        ...          "input": ["whatever was sent"]}
        >>> error_details([error], prefix=("body",))
        [{'type': 'too_long', 'loc': ['body', 'events'], 'msg': 'List too long'}]
        >>> len(error_details([error] * 1000))
        10
    """
    return [
        {
            "type": str(error.get("type", "invalid")),
            "loc": [_short(p) for p in (*prefix, *error.get("loc", ()))],
            "msg": str(_short(error.get("msg", ""))),
        }
        for error in errors[:MAX_ERRORS]
    ]


class HttpGuard:
    """One process's HTTP guard: its body limit and token, and the refusals counter.

    Args:
        max_body_bytes: Larger request bodies are refused (413) before they are read.
        token: The bearer token work endpoints require (None: they are refused).
        registry: Where ``vigil_http_requests_refused_total{reason}`` is registered.
    """

    def __init__(
        self, *, max_body_bytes: int, token: SecretStr | None, registry: CollectorRegistry
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._token = token
        self.refused = Counter(
            "vigil_http_requests_refused",
            "HTTP requests refused, by reason (too_large, no_token, unauthorized, invalid, busy).",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSALS:
            self.refused.labels(reason=reason)
        self._bearer = HTTPBearer(
            auto_error=False,
            description="VIGIL_HTTP_TOKEN: required by the endpoints that do work or write.",
        )

    @classmethod
    def from_settings(cls, settings: Settings, registry: CollectorRegistry) -> HttpGuard:
        """The guard ``settings`` describe (``http_max_body_bytes``, ``http_token``)."""
        return cls(
            max_body_bytes=settings.http_max_body_bytes,
            token=settings.http_token,
            registry=registry,
        )

    @property
    def work_endpoints(self) -> str:
        """How work endpoints are guarded, for the start-up log line."""
        return "token required" if self._token is not None else "refused: no VIGIL_HTTP_TOKEN"

    def count(self, reason: Refusal) -> None:
        """Count one refused request."""
        self.refused.labels(reason=reason).inc()

    def token_dependency(self) -> Callable[..., Any]:
        """A FastAPI dependency requiring the token (documented in OpenAPI as bearer auth)."""
        # A default, not an Annotated hint: hints are text here (PEP 563), and FastAPI could
        # not resolve a local name in them.
        presented = Depends(self._bearer)

        async def require_token(
            credentials: HTTPAuthorizationCredentials | None = presented,
        ) -> None:
            refusal = token_refusal(
                self._token, credentials.credentials if credentials is not None else None
            )
            if refusal is None:
                return
            self.count(refusal)
            if refusal == "no_token":
                raise HTTPException(
                    403, "this endpoint is disabled: the process has no VIGIL_HTTP_TOKEN"
                )
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

        return require_token


class BodyLimit:
    """ASGI middleware: request bodies over ``max_bytes`` are refused (413) before the app
    sees them. A declared ``Content-Length`` over the limit is refused before anything is
    read; otherwise the body is read (up to the limit) and handed to the app whole.

    The refused body's remaining bytes are left to the server, which discards them and keeps
    the connection, so the client reads the 413 rather than a reset.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, on_refused: Callable[[Refusal], None]
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was in: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the client's disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        self._on_refused("too_large")
        content = orjson.dumps({"detail": f"request body over {self.max_bytes} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
