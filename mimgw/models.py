"""The data users hand in and get back. All frozen pydantic v2 models."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from mimgw.errors import InvalidMessageError, MimgwError
from mimgw.phone import normalize_number
from mimgw.taxonomy import State
from mimgw.text import Encoding

__all__ = [
    "Balance",
    "BulkResult",
    "Category",
    "DeliveryReport",
    "InboundMessage",
    "Message",
    "Receipt",
    "new_reference",
]

Category = Literal["transactional", "promotional"]


def new_reference() -> str:
    """A fresh correlation id: 32 lowercase hex characters, time-ordered.

    The first 12 are the milliseconds since the Unix epoch, the other 20 are random (80
    bits). Ids made later sort later, so a database index of them grows at one end
    instead of being written all over (a ledger's commits write fewer pages).
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def new_references(count: int) -> list[str]:
    """``count`` of :func:`new_reference` (one read of the random source)."""
    now = f"{time.time_ns() // 1_000_000:012x}"
    random = os.urandom(10 * count).hex()
    return [now + random[i : i + 20] for i in range(0, 20 * count, 20)]


M = TypeVar("M", bound=BaseModel)


_FIELDS_SETS: dict[type[BaseModel], set[str]] = {}


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """A frozen ``cls`` built from values the library computed itself, without validation.

    Every field must be given, in declaration order, each already of its declared type
    (the hot paths that use this build them from validated models; tests compare each
    with its validated twin). What ``model_construct`` does, without its per-field
    default handling, and with one ``__pydantic_fields_set__`` shared by every object
    of a class: a frozen model never changes that set in place (pydantic adds to it
    only on assignment, which a frozen model refuses; a copy gets a copy), and a set of
    a dozen names costs 728 bytes. A receipt per send makes the difference measurable.
    """
    try:
        fields = _FIELDS_SETS[cls]
    except KeyError:
        if not cls.model_config.get("frozen"):
            raise TypeError(f"{cls.__name__} is not frozen") from None
        fields = _FIELDS_SETS[cls] = set(cls.__pydantic_fields__)
    obj = _new(cls)
    _set_dict(obj, values)
    _set_fields(obj, fields)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


_new = object.__new__
# BaseModel's own slots, set through their descriptors (no attribute lookup per object)
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _as_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Message(_Frozen):
    """One SMS to send.

    ``to`` is normalised on construction (``01712345678`` becomes ``8801712345678``);
    ``reference`` is generated once when not given, so every retry and failover of
    this message carries the same correlation id. Invalid input raises
    :class:`~mimgw.InvalidMessageError`.
    """

    to: str
    text: str
    sender: str | None = None
    reference: str = Field(default_factory=new_reference)
    category: Category = "transactional"
    send_at: AwareDatetime | None = None
    idempotency_key: str | None = None
    """The caller's promise that two messages with this key are the same message: a
    :class:`~mimgw.Gateway` with a ledger sends it at most once (see docs/ledger.md)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidMessageError(_describe(exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Message:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise InvalidMessageError(_describe(exc)) from None

    @field_validator("to", mode="before")
    @classmethod
    def _normalise_to(cls, value: object) -> str:
        if not isinstance(value, str | int):
            raise ValueError("must be a phone number string")
        return normalize_number(str(value))

    @field_validator("text")
    @classmethod
    def _text_not_empty(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("sender")
    @classmethod
    def _sender_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank (leave it out to use the gateway's sender)")
        return value

    @field_validator("reference", mode="before")
    @classmethod
    def _reference(cls, value: object) -> object:
        if value is None:
            return new_reference()
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("idempotency_key")
    @classmethod
    def _key_not_blank(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 200):
            raise ValueError("must be 1 to 200 characters, not blank")
        return value

    @field_validator("send_at")
    @classmethod
    def _send_at_utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "message"
        msg = err["msg"].removeprefix("Value error, ")
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, InvalidMessageError):
            if not err["loc"]:  # the message's own __init__ described it already
                parts.append(str(cause).removeprefix("invalid message: "))
                continue
            msg = str(cause)
        parts.append(f"{where}: {msg}")
    return "invalid message: " + "; ".join(parts)


class Receipt(_Frozen):
    """A gateway's answer to a submit: it took the message.

    ``message_id`` is the gateway's id for it, and ``""`` in the one documented case
    where a gateway accepts a message without naming it (a DiniSoft success row):
    such a message cannot be looked up with ``status()``.
    """

    provider: str
    message_id: str
    to: str
    state: State = State.ACCEPTED
    reference: str | None = None
    segments: int = 1
    encoding: Encoding = "gsm7"
    raw: str | None = Field(default=None, repr=False)


class DeliveryReport(_Frozen):
    """What became of a sent message, in the common taxonomy.

    ``retries_allowed`` comes from the gateway's own DLR table: how many times
    resending is worthwhile (0 for a permanent failure or a success).
    """

    provider: str
    message_id: str
    to: str | None = None
    state: State
    reason: str | None = None
    permanent: bool | None = None
    retries_allowed: int = 0
    provider_status: str | None = None
    done_at: AwareDatetime | None = None
    reference: str | None = None
    raw: str | None = Field(default=None, repr=False)

    @field_validator("done_at")
    @classmethod
    def _done_at_utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    @property
    def final(self) -> bool:
        return self.state.final

    @property
    def failed(self) -> bool:
        return self.state in (State.UNDELIVERABLE, State.EXPIRED, State.REJECTED)


class Balance(_Frozen):
    """Account credit as the gateway reports it."""

    provider: str
    amount: Decimal
    currency: str | None = None
    raw: str | None = Field(default=None, repr=False)


class InboundMessage(_Frozen):
    """A message a handset sent to us (mobile originated)."""

    provider: str
    sender: str
    recipient: str | None = None
    text: str
    received_at: AwareDatetime | None = None
    raw: str | None = Field(default=None, repr=False)

    @field_validator("received_at")
    @classmethod
    def _received_at_utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


Outcome = Receipt | MimgwError


class BulkResult(_Frozen):
    """One outcome per input message, in input order: a :class:`Receipt` or the error.

    ``messages`` holds each :class:`Message` sent, or the input item itself where it
    could not become a message (its outcome is then an ``InvalidMessageError``).
    """

    messages: tuple[Message | Any, ...]
    outcomes: tuple[Receipt | MimgwError, ...]

    def model_post_init(self, __context: Any) -> None:
        if len(self.messages) != len(self.outcomes):
            raise ValueError("BulkResult needs exactly one outcome per message")

    def __len__(self) -> int:
        return len(self.outcomes)

    def __iter__(self) -> Iterator[Receipt | MimgwError]:  # type: ignore[override]
        return iter(self.outcomes)

    def __getitem__(self, index: int) -> Receipt | MimgwError:
        return self.outcomes[index]

    def items(self) -> Iterator[tuple[Message | Any, Receipt | MimgwError]]:
        """Each input message with its outcome."""
        return zip(self.messages, self.outcomes, strict=True)

    @property
    def receipts(self) -> list[Receipt]:
        return [o for o in self.outcomes if isinstance(o, Receipt)]

    @property
    def errors(self) -> list[MimgwError]:
        return [o for o in self.outcomes if isinstance(o, MimgwError)]

    @property
    def ok(self) -> bool:
        """True when every message was accepted."""
        return all(isinstance(o, Receipt) for o in self.outcomes)

    def __repr__(self) -> str:
        return f"BulkResult(accepted={len(self.receipts)}, failed={len(self.errors)})"

    __str__ = __repr__  # not every message and outcome of a campaign
