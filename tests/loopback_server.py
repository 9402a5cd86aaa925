"""A tiny HTTP/1.1 server on 127.0.0.1 for transport tests: real sockets, chosen faults.

The path (its first segment, so a base URL may carry it) picks the behaviour:

- ``/hang``: read the request, never answer (a read timeout after the send);
- ``/close``: read the request, close without a word (a reset after processing);
- ``/garbage``: answer with a line that is not HTTP;
- anything else: 200 with a JSON echo of the request, and ``X-Echo`` (the request
  target) and ``X-Auth`` (the Authorization header) echoed as response headers, so that
  whatever a client logs about responses sees the request's secrets too.

``hits`` counts the requests per path, so a test can tell a message was sent once.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field


@dataclass
class Loopback:
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


@asynccontextmanager
async def loopback_server() -> AsyncIterator[Loopback]:
    state = Loopback(port=0)
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                line, headers, body = request
                method, target, _ = line.split(" ", 2)
                path = target.split("?", 1)[0]
                state.hits[path] += 1
                state.requests.append(
                    {"method": method, "target": target, "body": body.decode("utf-8", "replace")}
                    | {f"h:{k}": v for k, v in headers.items()}
                )
                if path.startswith("/hang"):
                    await release.wait()
                    break
                if path.startswith("/close"):
                    break
                if path.startswith("/garbage"):
                    writer.write(b"THIS IS NOT HTTP\r\n\r\n")
                    await writer.drain()
                    break
                echo = json.dumps({"target": target, "body": body.decode("utf-8", "replace")})
                payload = echo.encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + b"X-Echo: "
                    + target.encode("latin-1")
                    + b"\r\nX-Auth: "
                    + headers.get("authorization", "-").encode("latin-1")
                    + f"\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        release.set()
        server.close()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)


def refused_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
