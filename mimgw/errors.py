"""The exception tree. Every public call raises only :class:`MimgwError` subclasses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from mimgw.taxonomy import ErrorKind

__all__ = [
    "AccessDeniedError",
    "AllProvidersFailedError",
    "AuthenticationError",
    "BadResponseError",
    "ConfigurationError",
    "ConnectFailedError",
    "ContentRejectedError",
    "InsufficientBalanceError",
    "InvalidMessageError",
    "MessageNotFoundError",
    "MimgwError",
    "OutcomeUnknownError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RecipientRejectedError",
    "RequestRejectedError",
    "SenderRejectedError",
    "UnsupportedOperationError",
    "WebhookAuthError",
]


class MimgwError(Exception):
    """Root of every error mimgw raises."""


class ConfigurationError(MimgwError, ValueError):
    """The library or a provider was configured wrongly (names the offending field)."""


class InvalidMessageError(MimgwError, ValueError):
    """The message cannot be sent as given; found before any request was made."""


class WebhookAuthError(MimgwError):
    """A pushed report or inbound message failed authentication."""


class ProviderError(MimgwError):
    """A gateway call failed. ``kind`` says what it means for retry and failover.

    Construct through :meth:`ProviderError.of` to get the subclass for the kind.
    """

    kind: ErrorKind = ErrorKind.BAD_RESPONSE
    _by_kind: ClassVar[dict[ErrorKind, type[ProviderError]]] = {}

    def __init__(
        self,
        provider: str,
        kind: ErrorKind | None = None,
        code: str | None = None,
        detail: str = "",
        *,
        retryable: bool | None = None,
        failover: bool | None = None,
        retry_after: float | None = None,
        raw: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.provider = provider
        self.kind = kind if kind is not None else type(self).kind
        self.code = code
        self.detail = detail
        self.retryable = self.kind.retryable if retryable is None else retryable
        self.failover = self.kind.failover if failover is None else failover
        self.retry_after = retry_after
        self.raw = raw
        self.http_status = http_status
        self._maybe_sent = False
        super().__init__(self._text())

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            ProviderError._by_kind.setdefault(cls.kind, cls)

    @classmethod
    def of(
        cls,
        kind: ErrorKind,
        provider: str,
        code: str | int | None = None,
        detail: str = "",
        **kwargs: object,
    ) -> ProviderError:
        """Build the subclass that matches ``kind``."""
        sub = cls._by_kind.get(kind, ProviderError)
        return sub(provider, kind, None if code is None else str(code), detail, **kwargs)  # type: ignore[arg-type]

    @property
    def may_have_been_sent(self) -> bool:
        """True when the message may have been sent despite the error: this gateway may
        have accepted it, or (set by the Gateway) an earlier attempt for it may have."""
        return self._maybe_sent or self.kind.policy.sent is not False

    def mark_may_have_been_sent(self) -> None:
        """Record that an earlier attempt for the same message may have sent it."""
        self._maybe_sent = True

    def _text(self) -> str:
        parts = [f"{self.provider}: {self.kind.value}"]
        if self.code is not None:
            parts.append(f"(code {self.code})")
        text = " ".join(parts)
        return f"{text}: {self.detail}" if self.detail else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, kind={self.kind.value!r}, "
            f"code={self.code!r}, detail={self.detail!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild,
            (
                type(self),
                self.provider,
                self.kind,
                self.code,
                self.detail,
                self.retryable,
                self.failover,
                self.retry_after,
                self.raw,
                self.http_status,
            ),
            {"_maybe_sent": self._maybe_sent},
        )


def _rebuild(
    cls: type[ProviderError],
    provider: str,
    kind: ErrorKind,
    code: str | None,
    detail: str,
    retryable: bool,
    failover: bool,
    retry_after: float | None,
    raw: str | None,
    http_status: int | None,
) -> ProviderError:
    return cls(
        provider,
        kind,
        code,
        detail,
        retryable=retryable,
        failover=failover,
        retry_after=retry_after,
        raw=raw,
        http_status=http_status,
    )


class ConnectFailedError(ProviderError):
    """Nothing reached the gateway (DNS, TCP, TLS, pool timeout)."""

    kind = ErrorKind.CONNECT_FAILED


class RateLimitedError(ProviderError):
    """The gateway asked us to slow down; ``retry_after`` says for how long when it said so."""

    kind = ErrorKind.RATE_LIMITED


class ProviderUnavailableError(ProviderError):
    """The gateway said explicitly that it did not process the request."""

    kind = ErrorKind.PROVIDER_UNAVAILABLE


class OutcomeUnknownError(ProviderError):
    """The request may have been processed: do not resend blindly."""

    kind = ErrorKind.OUTCOME_UNKNOWN


class AuthenticationError(ProviderError):
    """Credentials were refused."""

    kind = ErrorKind.AUTH


class AccessDeniedError(ProviderError):
    """The account or source address is not allowed (IP blacklist, allow-list)."""

    kind = ErrorKind.ACCESS_DENIED


class InsufficientBalanceError(ProviderError):
    """The account is out of credit."""

    kind = ErrorKind.INSUFFICIENT_BALANCE


class SenderRejectedError(ProviderError):
    """The sender id (masking name) was refused."""

    kind = ErrorKind.SENDER_REJECTED


class RecipientRejectedError(ProviderError):
    """The destination number was refused."""

    kind = ErrorKind.RECIPIENT_REJECTED


class ContentRejectedError(ProviderError):
    """The message text was refused (content, length)."""

    kind = ErrorKind.CONTENT_REJECTED


class RequestRejectedError(ProviderError):
    """The request itself was refused (parameters, campaign, unknown id)."""

    kind = ErrorKind.REQUEST_REJECTED


class BadResponseError(ProviderError):
    """The gateway answered with a body that matches no documented shape; ``raw`` keeps it."""

    kind = ErrorKind.BAD_RESPONSE


class UnsupportedOperationError(ProviderError):
    """The gateway does not offer this operation."""

    kind = ErrorKind.UNSUPPORTED


class AllProvidersFailedError(MimgwError):
    """Every gateway that was tried failed; ``attempts`` holds each error in order."""

    def __init__(self, attempts: Sequence[ProviderError], message: str | None = None) -> None:
        self.attempts: list[ProviderError] = list(attempts)
        if message is None:
            tried = "; ".join(str(a) for a in self.attempts) or "no provider was available"
            message = f"all providers failed: {tried}"
        super().__init__(message)

    @property
    def last(self) -> ProviderError | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def may_have_been_sent(self) -> bool:
        """True when any attempt may have sent the message."""
        return any(a.may_have_been_sent for a in self.attempts)


class MessageNotFoundError(MimgwError, LookupError):
    """No gateway and no ledger entry knows this message id."""

    def __init__(self, message_id: str, detail: str = "") -> None:
        self.message_id = message_id
        text = f"no gateway knows message {message_id!r}"
        super().__init__(f"{text}: {detail}" if detail else text)
