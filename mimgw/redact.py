"""Keeping credentials out of logs, exception text, reprs and ``raw`` fields.

A secret can travel in many spellings: as typed, percent-encoded (the way
:func:`mimgw.http.build_query` encodes query values, with ``,`` left as is, and the way
httpx encodes ``params=`` and form bodies, with ``+`` for a space), JSON-escaped
(``\\uXXXX`` for non-ASCII, ``\\/``, ``\\"``), as a Python or bytes ``repr`` (httpcore logs
headers as bytes) and, for Basic authentication, inside the base64 token. Encoders differ
in which characters they leave alone (yarl, under the aiohttp transport, decodes ``%2F``
back to ``/``), so each character of a secret may appear in any of its spellings, and
percent and ``\\u`` hex digits match in either case.

Secrets of :data:`SHORT_SECRET` characters or more are replaced wherever they occur.
Shorter ones would garble unrelated text (a one-letter password inside every word), so
they are replaced only where they stand as a delimited value: after ``=`` or ``:`` (a
query value, a header or JSON value) or between quotes, and followed by the end of the
value (``&``, ``#``, ``;``, ``,``, a quote, a bracket, white space or the end of the text).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["REDACTED", "SHORT_SECRET", "Redactor", "install_log_filter", "secret_pattern"]

REDACTED = "***"
SHORT_SECRET = 4
"""Secrets shorter than this are redacted only where they stand as a delimited value."""

# a short secret counts only as a whole value: after "=", ":" (optionally one space) or a quote
_BEFORE = r"(?:(?<=[=:\"'])|(?<=[=:] ))"
_AFTER = r"(?=[&#;,\"'\s)\]}>]|$)"


def _hex(value: int, width: int) -> str:
    """Hex digits of ``value`` matching upper or lower case."""
    return "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in f"{value:0{width}X}")


@lru_cache(maxsize=256)
def _char(ch: str) -> str:
    """Every spelling of one character: as is, percent-encoded, JSON- or repr-escaped."""
    if ch.isascii() and ch.isalnum():
        return re.escape(ch)
    data = ch.encode("utf-8", "surrogatepass")
    options = [re.escape(ch), "".join(f"%{_hex(b, 2)}" for b in data)]
    if ch == " ":
        options.append(r"\+")  # form encoding and httpx's params
    if ch == "/":
        options.append(r"\\/")  # JSON encoders that escape the slash
    escaped = json.dumps(ch)[1:-1]  # \uXXXX (surrogate pairs beyond the BMP), \" \\ \n
    if escaped.startswith("\\u"):
        options.append("".join(rf"\\u{_hex(int(u, 16), 4)}" for u in escaped.split("\\u")[1:]))
    elif escaped != ch:
        options.append(re.escape(escaped))
    if not ch.isascii():  # a bytes repr, as httpcore logs headers
        options.append("".join(rf"\\x{_hex(b, 2)}" for b in data))
    shown = repr(ch)[1:-1]
    if shown not in (ch, escaped):
        options.append(re.escape(shown))
    return "(?:" + "|".join(dict.fromkeys(options)) + ")"


def secret_pattern(secret: str) -> str:
    """A regex for ``secret`` in any mix of the spellings :func:`_char` knows.

    Encoders differ in which characters they leave as they are (httpx, yarl and urllib
    each have their own safe set, and yarl re-decodes some), so each character may
    appear in any of its forms.
    """
    return "".join(_char(ch) for ch in secret)


class Redactor:
    """Replaces every known secret, in every encoding it may travel in, with ``***``.

    Redaction is for what is shown (logs, errors, ``raw``); responses are parsed from the
    text as received, so a secret that also occurs in an answer changes how it is
    displayed, never what it means.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._anywhere: dict[str, str] = {}
        self._delimited: dict[str, str] = {}
        self._regex: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None, *, anywhere: bool | None = None) -> None:
        """Register ``secret``; empty ones are ignored.

        ``anywhere`` forces replacing it inside other text too; by default that holds for
        secrets of :data:`SHORT_SECRET` characters or more.
        """
        if not secret:
            return
        if anywhere is None:
            anywhere = len(secret.strip() or secret) >= SHORT_SECRET
        changed = False
        for form in dict.fromkeys((secret, secret.strip())):
            if not form or form in self._anywhere or (not anywhere and form in self._delimited):
                continue
            self._delimited.pop(form, None)
            (self._anywhere if anywhere else self._delimited)[form] = secret_pattern(form)
            changed = True
        if changed:
            self._regex = self._compile()
        _registry.add(self)

    def add_basic_auth(self, username: str, password: str) -> str:
        """Register a Basic credential pair and return the header value."""
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self.add(password)
        self.add(token, anywhere=True)
        return f"Basic {token}"

    def _compile(self) -> re.Pattern[str] | None:
        # longest first, so that a secret is not half-replaced by a shorter one inside it
        alternatives = [(len(form), pattern) for form, pattern in self._anywhere.items()]
        alternatives += [
            (len(form), f"{_BEFORE}{pattern}{_AFTER}") for form, pattern in self._delimited.items()
        ]
        if not alternatives:
            return None
        alternatives.sort(key=lambda item: item[0], reverse=True)
        return re.compile("|".join(pattern for _, pattern in alternatives))

    def __call__(self, text: str) -> str:
        if self._regex is None or not text:
            return text
        return self._regex.sub(REDACTED, text)

    def __bool__(self) -> bool:
        return self._regex is not None

    def __repr__(self) -> str:
        return f"Redactor({len({*self._anywhere, *self._delimited})} secrets)"


class _Registry:
    """Every live redactor, so that third-party log records can be cleaned too."""

    def __init__(self) -> None:
        self._items: weakref.WeakSet[Redactor] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, redactor: Redactor) -> None:
        with self._lock:
            self._items.add(redactor)

    def redact(self, text: str) -> str:
        with self._lock:
            items = list(self._items)
        for item in items:
            text = item(text)
        return text


_registry = _Registry()


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        cleaned = _registry.redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_filter = _RedactingFilter()
# Filters on a logger do not see records of its children, so each one is named.
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "httpx_aiohttp",
    "aiohttp.client",
    "mimgw",
    "mimgw.http",
)


def install_log_filter() -> None:
    """Clean the records of httpx and httpcore, which print request URLs (with query secrets),
    and of every ``mimgw`` logger that exists by now (each module makes its own at import)."""
    ours = [n for n in logging.Logger.manager.loggerDict if n.startswith("mimgw.")]
    for name in (*_LOGGERS, *ours):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
