"""A very small ASGI request/response layer for the gateway emulators (no framework needed)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["Handler", "SimRequest", "SimResponse"]


@dataclass(slots=True)
class SimRequest:
    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    client_host: str | None = None
    query_items: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.query_items and self.raw_query:
            self.query_items = parse_qsl(self.raw_query, keep_blank_values=True)

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, last value wins; names as sent."""
        return dict(self.query_items)

    def q(self, name: str, *, case_insensitive: bool = False) -> str | None:
        if case_insensitive:
            lowered = name.lower()
            for key, value in reversed(self.query_items):
                if key.lower() == lowered:
                    return value
            return None
        return self.query.get(name)

    def json(self) -> Any:
        """Parsed JSON body, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


@dataclass(slots=True)
class SimResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> SimResponse:
        return cls(status=status, body=json.dumps(data, ensure_ascii=False).encode("utf-8"))

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> SimResponse:
        return cls(
            status=status, body=text.encode("utf-8"), content_type=f"{content_type}; charset=utf-8"
        )

    @classmethod
    def xml(cls, text: str, status: int = 200) -> SimResponse:
        return cls.text(text, status, "application/xml")


Handler = Callable[[SimRequest], Awaitable[SimResponse]]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def read_request(scope: Scope, receive: Receive) -> SimRequest:
    chunks: list[bytes] = []
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            break
        chunks.append(event.get("body", b""))
        if not event.get("more_body", False):
            break
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    client = scope.get("client")
    return SimRequest(
        method=scope["method"].upper(),
        path=scope["path"],
        raw_query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"".join(chunks),
        client_host=client[0] if client else None,
    )


async def write_response(send: Send, response: SimResponse) -> None:
    headers = [(b"content-type", response.content_type.encode("latin-1"))]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode("ascii")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
