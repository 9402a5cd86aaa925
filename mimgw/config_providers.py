"""Provider sections of the configuration: one pydantic model per gateway kind, each
building its provider (credentials as :class:`~pydantic.SecretStr`). Used by
:mod:`mimgw.config`."""

from __future__ import annotations

from abc import abstractmethod
from datetime import timedelta
from typing import Annotated, Any, Literal

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
)

from mimgw.errors import ConfigurationError
from mimgw.limits import RateLimit
from mimgw.providers import PROVIDER_CLASSES, Provider

__all__ = [
    "DiniSoftSettings",
    "IMIconnectSettings",
    "LimitSettings",
    "MimSmsV3JsonSettings",
    "MimSmsV3Settings",
    "MimSmsV4Settings",
    "ProviderSettings",
    "Section",
    "provider_class",
]


def provider_class(kind: str) -> type[Provider]:
    """The provider class configured as ``kind``."""
    try:
        return PROVIDER_CLASSES[kind]
    except KeyError:
        raise ConfigurationError(f"kind: unknown provider kind {kind!r}") from None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSettings(Section):
    rate: PositiveFloat | None = Field(default=None, allow_inf_nan=False)
    burst: PositiveInt | None = None
    max_in_flight: PositiveInt | None = None

    def to_limit(self) -> RateLimit:
        return RateLimit(rate=self.rate, burst=self.burst, max_in_flight=self.max_in_flight)


class _ProviderCommon(Section):
    name: str | None = None
    sender: str | None = None
    base_url: str | None = None
    timeout: PositiveFloat | None = None
    weight: NonNegativeFloat = 1.0
    order: int | None = None
    """Lower goes first; providers without one follow in listed order."""
    enabled: bool = True
    limits: LimitSettings | None = None
    timezone: str | None = None
    """Zone of the gateway's naive timestamps (default Asia/Dhaka)."""

    @abstractmethod
    def credentials(self) -> dict[str, Any]:
        """Constructor arguments particular to the kind (optional ones only when set)."""

    def constructor_kwargs(self, client: httpx.AsyncClient | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "sender": self.sender,
            "name": self.name,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "client": client,
        }
        if self.timezone is not None:
            kwargs["timezone"] = self.timezone
        kwargs.update((k, v) for k, v in self.credentials().items() if v is not None)
        return kwargs


def _secret(value: SecretStr) -> str:
    return value.get_secret_value()


class MimSmsV4Settings(_ProviderCommon):
    kind: Literal["mimsms_v4"]
    username: str
    api_key: SecretStr
    campaign_id: str | None = None
    method: Literal["json", "query"] | None = None

    def credentials(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "api_key": _secret(self.api_key),
            "campaign_id": self.campaign_id,
            "method": self.method,
        }


class MimSmsV3Settings(_ProviderCommon):
    kind: Literal["mimsms_v3"]
    username: str
    password: SecretStr
    binary_unicode: bool | None = None

    def credentials(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": _secret(self.password),
            "binary_unicode": self.binary_unicode,
        }


class MimSmsV3JsonSettings(_ProviderCommon):
    kind: Literal["mimsms_v3_json"]
    username: str
    password: SecretStr

    def credentials(self) -> dict[str, Any]:
        return {"username": self.username, "password": _secret(self.password)}


class DiniSoftSettings(_ProviderCommon):
    kind: Literal["dinisoft"]
    api_key: SecretStr
    secret_key: SecretStr
    client_name: str | None = None
    balance_url: str | None = None
    secure: bool | None = None

    def credentials(self) -> dict[str, Any]:
        return {
            "api_key": _secret(self.api_key),
            "secret_key": _secret(self.secret_key),
            "client_name": self.client_name,
            "balance_url": self.balance_url,
            "secure": self.secure,
        }


class IMIconnectSettings(_ProviderCommon):
    kind: Literal["imiconnect"]
    service_key: SecretStr
    notify_url: str | None = None
    notify_data: str | None = None
    priority: str | None = None
    tld: Literal["io", "com", "in"] | None = None
    validity: timedelta | None = None
    """Sent as ``expiry`` (seconds, or ISO 8601 such as ``PT6H``)."""

    def credentials(self) -> dict[str, Any]:
        return {
            "service_key": _secret(self.service_key),
            "notify_url": self.notify_url,
            "notify_data": self.notify_data,
            "priority": self.priority,
            "tld": self.tld,
            "validity": self.validity,
        }


ProviderSettings = Annotated[
    MimSmsV4Settings
    | MimSmsV3Settings
    | MimSmsV3JsonSettings
    | DiniSoftSettings
    | IMIconnectSettings,
    Field(discriminator="kind"),
]
