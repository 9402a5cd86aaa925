"""Keeping credentials out of logs, exception text, reprs and ``raw`` fields."""

from __future__ import annotations

import base64
import logging
import threading
import weakref
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "Redactor", "install_log_filter"]

REDACTED = "***"


class Redactor:
    """Replaces every known secret, in every encoding it may travel in, with ``***``.

    Secrets of any length are replaced. Redaction is for what is shown (logs, errors,
    ``raw``); responses are parsed from the text as received, so a short secret that
    also occurs in an answer changes how it is displayed, never what it means.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._needles: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        forms = {secret, secret.strip(), quote(secret, safe=""), quote_plus(secret), quote(secret)}
        for form in forms:
            if form and form not in self._needles:
                self._needles.append(form)
        # longest first so that an encoded form is not half-replaced by a shorter one
        self._needles.sort(key=len, reverse=True)
        _registry.add(self)

    def add_basic_auth(self, username: str, password: str) -> str:
        """Register a Basic credential pair and return the header value."""
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self.add(password)
        self.add(token)
        return f"Basic {token}"

    def __call__(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def __bool__(self) -> bool:
        return bool(self._needles)

    def __repr__(self) -> str:
        return f"Redactor({len(self._needles)} secrets)"


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
