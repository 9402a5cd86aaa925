"""mimgw: async SMS for Bangladeshi gateways behind one interface.

from mimgw.providers import MimSmsV4

async with MimSmsV4(username=..., api_key=..., sender="MyBrand") as sms:
    receipt = await sms.send("01712345678", "Your code is 4711")

``import mimgw`` loads what a send needs (errors, models, phone numbers, text, HTTP);
everything else (the Gateway and its ledger, retry and breakers, settings, the
providers) is imported on first use, through the module ``__getattr__`` (PEP 562), so
``from mimgw import Gateway`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mimgw.errors import (
    AccessDeniedError,
    AllProvidersFailedError,
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    ConnectFailedError,
    ContentRejectedError,
    InsufficientBalanceError,
    InvalidMessageError,
    MessageNotFoundError,
    MimgwError,
    OutcomeUnknownError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RecipientRejectedError,
    RequestRejectedError,
    SenderRejectedError,
    UnsupportedOperationError,
    WebhookAuthError,
)
from mimgw.models import Balance, BulkResult, DeliveryReport, InboundMessage, Message, Receipt
from mimgw.phone import normalize_number
from mimgw.taxonomy import ErrorKind, State
from mimgw.text import TextInfo, analyse_text

if TYPE_CHECKING:
    from mimgw.breaker import BreakerPolicy, BreakerState, CircuitBreaker, CircuitOpenError
    from mimgw.config import GatewaySettings
    from mimgw.gateway import Gateway
    from mimgw.ledger import (
        Intent,
        IntentState,
        Ledger,
        LedgerEntry,
        LedgerError,
        MemoryLedger,
        SqliteLedger,
    )
    from mimgw.limits import RateLimit
    from mimgw.providers.base import Capabilities, Provider
    from mimgw.providers.mimsms_v4 import CampaignRequiredError
    from mimgw.retry import RedeliveryPolicy, RetryPolicy

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "BreakerPolicy": "mimgw.breaker",
    "BreakerState": "mimgw.breaker",
    "CampaignRequiredError": "mimgw.providers.mimsms_v4",
    "Capabilities": "mimgw.providers.base",
    "CircuitBreaker": "mimgw.breaker",
    "CircuitOpenError": "mimgw.breaker",
    "Gateway": "mimgw.gateway",
    "GatewaySettings": "mimgw.config",
    "Intent": "mimgw.ledger",
    "IntentState": "mimgw.ledger",
    "Ledger": "mimgw.ledger",
    "LedgerEntry": "mimgw.ledger",
    "LedgerError": "mimgw.ledger",
    "MemoryLedger": "mimgw.ledger",
    "Provider": "mimgw.providers.base",
    "RateLimit": "mimgw.limits",
    "RedeliveryPolicy": "mimgw.retry",
    "RetryPolicy": "mimgw.retry",
    "SqliteLedger": "mimgw.ledger",
}
"""Public name -> the module that defines it, imported on first access."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mimgw' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AccessDeniedError",
    "AllProvidersFailedError",
    "AuthenticationError",
    "BadResponseError",
    "Balance",
    "BreakerPolicy",
    "BreakerState",
    "BulkResult",
    "CampaignRequiredError",
    "Capabilities",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectFailedError",
    "ContentRejectedError",
    "DeliveryReport",
    "ErrorKind",
    "Gateway",
    "GatewaySettings",
    "InboundMessage",
    "InsufficientBalanceError",
    "Intent",
    "IntentState",
    "InvalidMessageError",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "MemoryLedger",
    "Message",
    "MessageNotFoundError",
    "MimgwError",
    "OutcomeUnknownError",
    "Provider",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimit",
    "RateLimitedError",
    "Receipt",
    "RecipientRejectedError",
    "RedeliveryPolicy",
    "RequestRejectedError",
    "RetryPolicy",
    "SenderRejectedError",
    "SqliteLedger",
    "State",
    "TextInfo",
    "UnsupportedOperationError",
    "WebhookAuthError",
    "__version__",
    "analyse_text",
    "normalize_number",
]
