"""The status and error taxonomy every backend normalises into."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ErrorKind", "KindPolicy", "State"]


class State(StrEnum):
    """Where a message is. Ranked so that a late or repeated report never moves it backwards."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        """True once nothing can change the outcome any more."""
        return self in _FINAL

    @property
    def rank(self) -> int:
        """Progress order: UNKNOWN < ACCEPTED < PENDING < SENT < any final state."""
        return _RANK[self]

    def advance(self, new: State) -> State:
        """The state after ``new`` is reported on a message currently in ``self``.

        A final state never changes; otherwise the state only moves forward and
        UNKNOWN never overwrites anything known.
        """
        if self.final:
            return self
        return new if new.rank > self.rank else self


_FINAL = frozenset({State.DELIVERED, State.UNDELIVERABLE, State.EXPIRED, State.REJECTED})
_RANK = {
    State.UNKNOWN: 0,
    State.ACCEPTED: 1,
    State.PENDING: 2,
    State.SENT: 3,
    State.DELIVERED: 4,
    State.UNDELIVERABLE: 4,
    State.EXPIRED: 4,
    State.REJECTED: 4,
}


@dataclass(frozen=True, slots=True)
class KindPolicy:
    """What an error kind means for retrying and failing over."""

    retry: bool
    failover: bool
    sent: bool | None
    """False: certainly nothing was sent; None: it may have been."""


class ErrorKind(StrEnum):
    """Why a call failed, with what that means for retry and failover."""

    CONNECT_FAILED = "connect_failed"
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    OUTCOME_UNKNOWN = "outcome_unknown"
    AUTH = "auth"
    ACCESS_DENIED = "access_denied"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    SENDER_REJECTED = "sender_rejected"
    RECIPIENT_REJECTED = "recipient_rejected"
    CONTENT_REJECTED = "content_rejected"
    REQUEST_REJECTED = "request_rejected"
    BAD_RESPONSE = "bad_response"
    UNSUPPORTED = "unsupported"

    @property
    def policy(self) -> KindPolicy:
        return _POLICY[self]

    @property
    def retryable(self) -> bool:
        """Worth retrying on the same gateway."""
        return _POLICY[self].retry

    @property
    def failover(self) -> bool:
        """Worth trying on the next gateway."""
        return _POLICY[self].failover


_POLICY: dict[ErrorKind, KindPolicy] = {
    ErrorKind.CONNECT_FAILED: KindPolicy(retry=True, failover=True, sent=False),
    ErrorKind.RATE_LIMITED: KindPolicy(retry=True, failover=True, sent=False),
    ErrorKind.PROVIDER_UNAVAILABLE: KindPolicy(retry=True, failover=True, sent=False),
    ErrorKind.OUTCOME_UNKNOWN: KindPolicy(retry=False, failover=False, sent=None),
    ErrorKind.AUTH: KindPolicy(retry=False, failover=True, sent=False),
    ErrorKind.ACCESS_DENIED: KindPolicy(retry=False, failover=True, sent=False),
    ErrorKind.INSUFFICIENT_BALANCE: KindPolicy(retry=False, failover=True, sent=False),
    ErrorKind.SENDER_REJECTED: KindPolicy(retry=False, failover=True, sent=False),
    ErrorKind.RECIPIENT_REJECTED: KindPolicy(retry=False, failover=False, sent=False),
    ErrorKind.CONTENT_REJECTED: KindPolicy(retry=False, failover=False, sent=False),
    ErrorKind.REQUEST_REJECTED: KindPolicy(retry=False, failover=False, sent=False),
    ErrorKind.BAD_RESPONSE: KindPolicy(retry=False, failover=False, sent=None),
    ErrorKind.UNSUPPORTED: KindPolicy(retry=False, failover=True, sent=False),
}
