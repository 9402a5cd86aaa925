"""mimgw: async SMS for Bangladeshi gateways behind one interface.

from mimgw.providers import MimSmsV4

async with MimSmsV4(username=..., api_key=..., sender="MyBrand") as sms:
    receipt = await sms.send("01712345678", "Your code is 4711")
"""

from __future__ import annotations

from mimgw.breaker import BreakerPolicy, BreakerState, CircuitBreaker, CircuitOpenError
from mimgw.config import GatewaySettings
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
from mimgw.gateway import Gateway
from mimgw.ledger import Ledger, LedgerEntry, LedgerError, MemoryLedger, SqliteLedger
from mimgw.limits import RateLimit
from mimgw.models import Balance, BulkResult, DeliveryReport, InboundMessage, Message, Receipt
from mimgw.phone import normalize_number
from mimgw.providers.base import Capabilities, Provider
from mimgw.retry import RedeliveryPolicy, RetryPolicy
from mimgw.taxonomy import ErrorKind, State
from mimgw.text import TextInfo, analyse_text

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AllProvidersFailedError",
    "AuthenticationError",
    "BadResponseError",
    "Balance",
    "BreakerPolicy",
    "BreakerState",
    "BulkResult",
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
    "InvalidMessageError",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "MemoryLedger",
    "Message",
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
