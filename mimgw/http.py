"""The one place requests are made: timeouts, error mapping and redaction."""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from mimgw.errors import ProviderError
from mimgw.redact import Redactor, install_log_filter
from mimgw.taxonomy import ErrorKind
from mimgw.transport import default_client, is_connect_failure

__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpResponse",
    "HttpTransport",
    "Query",
    "build_query",
    "parse_retry_after",
]

log = logging.getLogger("mimgw.http")

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
USER_AGENT = "mimgw/0.1"
_URLS = 64
"""Endpoint URLs kept parsed per provider (a handful in practice)."""
_HEADER_SETS = 64
"""Distinct header combinations kept per provider (a few in practice)."""
RAW_LIMIT = 4000
"""How much of a body an error keeps in ``raw``."""

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Compact UTF-8 JSON bodies (Bengali text stays as written, not ``\\u`` escapes)."""

Query = Sequence[tuple[str, str | int | None]] | Mapping[str, str | int | None]


def build_query(params: Query) -> str:
    """Encode query parameters with spaces as ``%20`` (not ``+``); ``None`` values are left out."""
    items = params.items() if isinstance(params, Mapping) else params
    return "&".join(
        f"{quote(str(k), safe='')}={quote(str(v), safe=',')}" for k, v in items if v is not None
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(slots=True, eq=False)
class HttpResponse:
    """One gateway answer.

    ``text`` is redacted and is what ``raw`` fields and error messages carry; ``body`` is
    the text as received, for parsing only, so that a credential that happens to occur in
    a value (a short numeric password inside a message id) cannot change what is parsed.
    """

    provider: str
    status_code: int
    headers: httpx.Headers
    text: str
    url: str
    """The redacted URL."""
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    body: str = field(default="", repr=False, compare=False)
    redact: Callable[[str], str] = field(default=str, repr=False, compare=False)
    parsed: Any = field(default=None, init=False, repr=False, compare=False)
    """The body as JSON once :meth:`json` read it (one parse per answer); do not mutate."""

    def __post_init__(self) -> None:
        if not self.body:
            self.body = self.text

    def error(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        code: str | int | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        """An error of ``kind`` that keeps this body (redacted) as ``raw``."""
        return ProviderError.of(
            kind,
            self.provider,
            code,
            self.redact(detail),
            raw=self.text[:RAW_LIMIT],
            http_status=self.status_code,
            retry_after=retry_after,
        )

    def bad(self, detail: str = "unexpected response") -> ProviderError:
        snippet = self.text.strip().replace("\n", " ")[:200]
        text = (
            f"{detail} (HTTP {self.status_code}): {snippet!r}"
            if snippet
            else f"{detail} (HTTP {self.status_code}, empty body)"
        )
        return self.error(ErrorKind.BAD_RESPONSE, text)

    def json(self) -> Any:
        """The body as JSON; a ``BAD_RESPONSE`` error when it is not JSON."""
        if self.parsed is not None:
            return self.parsed
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            raise self.bad("body is not JSON") from None
        self.parsed = data
        return data

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise self.bad("expected a JSON object")
        return data

    def check_transport_status(self, *, submit: bool) -> None:
        """Map statuses that mean the same on every gateway.

        429 is ``RATE_LIMITED``. A 5xx whose body is not JSON or XML (empty, an HTML
        error page from a proxy) is ``OUTCOME_UNKNOWN`` for submits (it may have been
        processed) and ``PROVIDER_UNAVAILABLE`` for reads; a 503 with Retry-After says
        explicitly that nothing was processed. Structured 5xx bodies are left to the
        provider, whose code table knows them.
        """
        status = self.status_code
        if status == 429:
            raise self.error(
                ErrorKind.RATE_LIMITED,
                "too many requests",
                code=429,
                retry_after=parse_retry_after(self.headers.get("retry-after")),
            )
        if status >= 500 and not _looks_structured(self.body):
            # the proxy in front of the gateway answered; the gateway may or may not have acted
            kind = ErrorKind.OUTCOME_UNKNOWN if submit else ErrorKind.PROVIDER_UNAVAILABLE
            if status == 503 and submit and self.headers.get("retry-after"):
                kind = ErrorKind.PROVIDER_UNAVAILABLE  # an explicit "come back later"
            raise self.error(
                kind,
                f"HTTP {status} from the gateway",
                code=status,
                retry_after=parse_retry_after(self.headers.get("retry-after")),
            )


_HTML_STARTS = ("<!doctype", "<html", "<head", "<body", "<title", "<center", "<h1", "<p>")


def _looks_structured(text: str) -> bool:
    """JSON or XML from the gateway itself, as opposed to an empty or HTML error page."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        return True
    return stripped[:1] == "<" and not stripped[:9].lower().startswith(_HTML_STARTS)


class HttpTransport:
    """Sends requests for one provider through a shared or owned :class:`httpx.AsyncClient`."""

    def __init__(
        self,
        *,
        provider: str,
        redactor: Redactor,
        timeout: httpx.Timeout,
        client: httpx.AsyncClient | None = None,
        transport: str | None = None,
    ) -> None:
        install_log_filter()
        self.provider = provider
        self.redact = redactor
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None
        self._transport = transport
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}
        self._client_headers: list[tuple[bytes, bytes]] = []
        self._header_sets: dict[tuple[bool, tuple[tuple[str, str], ...]], httpx.Headers] = {}

    def _url(self, url: str, *, cache: bool) -> httpx.URL:
        """``url`` parsed; an endpoint without a query is parsed once (httpx's parser is
        a good part of a request's CPU), a URL carrying a message's query every time."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if cache and len(self._urls) < _URLS:
                self._urls[url] = parsed
        return parsed

    def _headers(
        self, client: httpx.AsyncClient, extra: Mapping[str, str] | None, *, json: bool
    ) -> httpx.Headers:
        """The client's default headers with ours on top, built once per combination.

        Requests are built here and given to ``client.send()``, so the client's headers,
        auth, event hooks and transport apply; its cookie jar, default ``params`` and
        ``base_url`` do not (every gateway URL is absolute, and no gateway uses cookies).
        A change to the client's headers is seen by the next request.
        """
        raw = client.headers.raw
        if raw != self._client_headers:
            self._client_headers = raw
            self._header_sets.clear()
        key = (json, tuple(extra.items()) if extra else ())
        headers = self._header_sets.get(key)
        if headers is None:
            merged = {k.lower(): (k, v) for k, v in client.headers.multi_items()}
            merged["user-agent"] = ("User-Agent", USER_AGENT)
            merged["accept"] = ("Accept", "application/json")
            if json:
                merged["content-type"] = ("Content-Type", "application/json")
            for k, v in key[1]:
                merged[k.lower()] = (k, v)
            headers = httpx.Headers(list(merged.values()))
            if len(self._header_sets) >= _HEADER_SETS:
                self._header_sets.clear()
            self._header_sets[key] = headers
        return headers

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            if self._client is not None and not self._owns_client:
                raise ProviderError.of(
                    ErrorKind.CONNECT_FAILED,
                    self.provider,
                    None,
                    "the shared httpx client is closed",
                )
            self._client = default_client(self.timeout, transport=self._transport)
            self._owns_client = True
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        query: Query | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        submit: bool,
    ) -> HttpResponse:
        """Send one request. ``submit`` says whether it may create a message at the gateway.

        Transport failures become :class:`ProviderError` with the right kind: nothing
        sent (``CONNECT_FAILED``) or maybe sent (``OUTCOME_UNKNOWN``; for reads,
        ``PROVIDER_UNAVAILABLE`` since a read is safe to repeat).
        """
        if query:
            encoded = build_query(query)
            if encoded:
                url = f"{url}{'&' if '?' in url else '?'}{encoded}"
        content: bytes | None = None
        if json_body is not None:
            content = _JSON.encode(json_body).encode()
        client = self._client
        if client is None or client.is_closed:
            client = self.client
        safe_url = self.redact(url)
        started = time.perf_counter()
        try:
            request = httpx.Request(
                method,
                self._url(url, cache=not query),
                headers=self._headers(client, headers, json=content is not None),
                content=content,
                extensions=self._extensions,
            )
            response = await client.send(request)
        except httpx.HTTPError as exc:
            raise self._map_exception(exc, safe_url, submit=submit) from _scrub(exc, self.redact)
        except httpx.InvalidURL as exc:  # not an HTTPError; refused before anything was sent
            raise self._map_exception(exc, safe_url, submit=submit) from None
        except Exception as exc:
            if is_connect_failure(exc) is None:  # not a transport error: a bug, let it show
                raise
            # an aiohttp error httpx-aiohttp does not translate (a garbled status line)
            raise self._map_exception(exc, safe_url, submit=submit) from None
        elapsed = time.perf_counter() - started
        text = decode_body(response.content, response.headers.get("content-type"))
        result = HttpResponse(
            provider=self.provider,
            status_code=response.status_code,
            headers=response.headers,
            text=self.redact(text),
            url=safe_url,
            elapsed=elapsed,
            body=text,
            redact=self.redact,
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s -> %d in %.1f ms",
                self.provider,
                method,
                safe_url,
                response.status_code,
                elapsed * 1000,
            )
        return result

    def _map_exception(self, exc: Exception, safe_url: str, *, submit: bool) -> ProviderError:
        reason = self.redact(str(exc)) or type(exc).__name__
        detail = f"{type(exc).__name__} on {safe_url}: {reason}"
        nothing_sent = is_connect_failure(exc)  # the aiohttp transport's own account
        if nothing_sent is not None:
            kind = ErrorKind.CONNECT_FAILED if nothing_sent else _maybe_sent(submit)
        elif isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            kind = ErrorKind.CONNECT_FAILED
        elif isinstance(
            exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.LocalProtocolError
        ):
            kind = ErrorKind.CONNECT_FAILED  # refused before anything left this process
        elif isinstance(exc, httpx.TooManyRedirects):
            kind = ErrorKind.BAD_RESPONSE
        else:
            # read/write timeouts, resets, protocol errors after the request went out
            kind = _maybe_sent(submit)
        log.debug("%s request failed: %s", self.provider, detail)
        return ProviderError.of(kind, self.provider, None, detail)


def decode_body(content: bytes, content_type: str | None) -> str:
    """The body as text in its declared charset (UTF-8 when none); undecodable bytes are
    replaced, never an error (the raw answer is kept whatever it holds)."""
    charset = "utf-8"
    if content_type:
        lowered = content_type.lower()
        at = lowered.find("charset=")
        if at >= 0:
            charset = lowered[at + 8 :].split(";", 1)[0].strip().strip("\"'") or "utf-8"
    try:
        return content.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return content.decode("utf-8", errors="replace")


def _maybe_sent(submit: bool) -> ErrorKind:
    """The request may have been processed: unknown for a submit, a safe retry for a read."""
    return ErrorKind.OUTCOME_UNKNOWN if submit else ErrorKind.PROVIDER_UNAVAILABLE


def _scrub(exc: httpx.HTTPError, redact: Redactor) -> httpx.HTTPError:
    """Remove secrets from an httpx exception before it is chained as a cause."""
    exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
    if exc.__cause__ is not None or exc.__context__ is not None:
        # a transport's own error (aiohttp's) may print the URL from its attributes, where
        # redaction cannot reach; its text is already in this exception's message
        exc.__cause__ = None
        exc.__context__ = None
        exc.__suppress_context__ = True
    with contextlib.suppress(RuntimeError, httpx.InvalidURL):  # no request attached
        exc.request = httpx.Request(exc.request.method, redact(str(exc.request.url)))
    return exc
