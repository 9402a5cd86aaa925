"""No credential in errors, reprs, ``raw`` or DEBUG logs, through real providers and sockets.

Each provider that puts a credential in a query string (DiniSoft, MiMSMS v3) or a Basic
header (MiMSMS v3 JSON) talks to a loopback server that echoes the request (target,
body and Authorization) in its body and response headers, so the gateway's answer, the
errors and httpx/httpcore's DEBUG lines all carry whatever spelling reached the wire.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator, Callable

import pytest
from loopback_server import Loopback, loopback_server, refused_port
from test_redact import SECRETS, wire_forms

from mimgw import MimgwError
from mimgw.providers import DiniSoft, MimSmsV3, MimSmsV3Json
from mimgw.providers.base import Provider
from mimgw.transport import aiohttp_available

SHORT = ["y", ",", "%"]
TRANSPORTS = ["httpx", "aiohttp"] if aiohttp_available() else ["httpx"]


def dinisoft(secret: str, base_url: str) -> Provider:
    return DiniSoft(api_key=secret, secret_key=secret[::-1], sender="ME", base_url=base_url)


def mimsms_v3(secret: str, base_url: str) -> Provider:
    return MimSmsV3(username="user", password=secret, sender="ME", base_url=base_url)


def mimsms_v3_json(secret: str, base_url: str) -> Provider:
    return MimSmsV3Json(username="user", password=secret, sender="ME", base_url=base_url)


FACTORIES: dict[str, Callable[[str, str], Provider]] = {
    "dinisoft": dinisoft,
    "mimsms_v3": mimsms_v3,
    "mimsms_v3_json": mimsms_v3_json,
}


@pytest.fixture
async def server() -> AsyncIterator[Loopback]:
    async with loopback_server() as state:
        yield state


def leaks(text: str, secret: str) -> list[str]:
    """Spellings of ``secret`` left in ``text``; short secrets count as whole values only."""
    forms = wire_forms(secret)
    forms["basic"] = base64.b64encode(f"user:{secret}".encode()).decode()
    found = []
    for name, form in forms.items():
        if len(secret) >= 4 or name == "basic":
            hit = form in text
        else:
            # as a query value or a JSON string value
            value = rf"(?:[?&]\w+=|\":\s?\"){re.escape(form)}(?:[&#\"\s]|$)"
            hit = re.search(value, text) is not None
        if hit:
            found.append(f"{name}: {form!r}")
    return found


async def exercise(provider: Provider) -> list[str]:
    """Send and read through ``provider``; everything shown to a person, as text."""
    shown = [repr(provider)]
    for call in (lambda: provider.send("01712345678", "hello"), lambda: provider.status("ID1")):
        try:
            result = await call()
        except MimgwError as exc:
            shown += [str(exc), repr(exc), str(getattr(exc, "raw", "")), str(exc.__cause__)]
            shown += [repr(arg) for arg in exc.args]
        else:
            shown += [repr(result), str(getattr(result, "raw", ""))]
    await provider.aclose()
    return shown


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", FACTORIES)
@pytest.mark.parametrize("secret", SECRETS + SHORT)
@pytest.mark.parametrize("fault", ["echo", "/close", "refused"])
async def test_no_secret_anywhere(
    transport: str,
    kind: str,
    secret: str,
    fault: str,
    server: Loopback,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIMGW_TRANSPORT", transport)
    caplog.set_level(logging.DEBUG)
    base = {
        "echo": server.url,
        "/close": f"{server.url}/close",
        "refused": f"http://127.0.0.1:{refused_port()}",
    }[fault]
    provider = FACTORIES[kind](secret, base)
    shown = await exercise(provider)
    if fault != "refused":
        assert server.requests, "the request reached the server"
        wire = " ".join(v for r in server.requests for v in r.values())
        assert leaks(wire, secret), "the secret did travel"  # the check below can fail
    for text in shown:
        assert not leaks(text, secret), text
    for record in caplog.records:
        assert not leaks(record.getMessage(), secret), (record.name, record.getMessage())
    if transport == "httpx" and fault == "echo":  # httpcore logged the echoed headers
        assert any(r.name.startswith("httpcore") for r in caplog.records)


@pytest.mark.parametrize("secret", SHORT)
async def test_a_short_secret_leaves_other_log_text_alone(
    secret: str, server: Loopback, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = mimsms_v3(secret, server.url)
    await exercise(provider)
    logging.getLogger("mimgw.gateway").warning("trying the next gateway, 100% sure")
    assert "trying the next gateway, 100% sure" in caplog.text
