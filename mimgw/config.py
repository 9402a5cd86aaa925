"""Configuration with pydantic-settings: environment (``MIMGW_`` prefix, ``__`` nesting),
a ``.env`` file and an optional TOML file build the whole :class:`~mimgw.Gateway`.

Swapping the primary gateway is a configuration change: reorder ``providers`` (or set
their ``order``). Credentials are :class:`~pydantic.SecretStr`; invalid configuration
raises :class:`~mimgw.ConfigurationError` naming the field, never echoing a value.
See ``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx
from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mimgw.breaker import BreakerPolicy
from mimgw.config_providers import (
    DiniSoftSettings,
    IMIconnectSettings,
    LimitSettings,
    MimSmsV3JsonSettings,
    MimSmsV3Settings,
    MimSmsV4Settings,
    ProviderSettings,
    Section,
    provider_class,
)
from mimgw.config_stores import LedgerSettings, StateSettings
from mimgw.errors import ConfigurationError
from mimgw.limits import RateLimit
from mimgw.providers import PROVIDER_CLASSES, Provider
from mimgw.retry import RedeliveryPolicy, RetryPolicy

if TYPE_CHECKING:
    from mimgw.gateway import Gateway

__all__ = [
    "BreakerSettings",
    "DiniSoftSettings",
    "GatewaySettings",
    "IMIconnectSettings",
    "LedgerSettings",
    "LimitSettings",
    "MimSmsV3JsonSettings",
    "MimSmsV3Settings",
    "MimSmsV4Settings",
    "ProviderSettings",
    "RedeliverySettings",
    "RetrySettings",
    "StateSettings",
    "build_gateway",
    "describe_validation_error",
    "provider_class",
]


_KINDS = frozenset(PROVIDER_CLASSES)

_PROVIDER_LABELS: ContextVar[list[str] | None] = ContextVar("_PROVIDER_LABELS", default=None)
"""While settings are validated: the name each provider goes by in error messages."""

NO_PROVIDERS_HINT = (
    "no provider is configured: set MIMGW_PROVIDERS__<NAME>__KIND (mimsms_v4, mimsms_v3, "
    "mimsms_v3_json, dinisoft or imiconnect) and its credentials, e.g. "
    "MIMGW_PROVIDERS__<NAME>__API_KEY, in the environment or .env, or add a "
    "[providers.<name>] table to a TOML file (docs/configuration.md)"
)


def _labels(items: Sequence[object]) -> list[str]:
    """``name``, else ``kind`` when no other provider has it, else the list position."""
    named = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    kinds = [item.get("kind") if isinstance(item, Mapping) else None for item in items]
    labels = []
    for index, (name, kind) in enumerate(zip(named, kinds, strict=True)):
        if isinstance(name, str) and name and named.count(name) == 1:
            labels.append(name)
        elif isinstance(kind, str) and kind and kinds.count(kind) == 1 and kind not in named:
            labels.append(kind)
        else:
            labels.append(str(index))
    return labels


class RetrySettings(Section):
    attempts: PositiveInt = 3
    initial: NonNegativeFloat = 0.2
    max_backoff: NonNegativeFloat = 5.0
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: bool = True
    deadline: PositiveFloat | None = 30.0
    resend_unknown: bool = False

    def to_policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class BreakerSettings(Section):
    enabled: bool = True
    threshold: PositiveInt = 5
    cooldown: NonNegativeFloat = 30.0
    account_threshold: PositiveInt = 1
    account_cooldown: NonNegativeFloat = 600.0
    probe_balance: bool = False

    def to_policy(self) -> BreakerPolicy | None:
        if not self.enabled:
            return None
        return BreakerPolicy(**self.model_dump(exclude={"enabled"}))


class RedeliverySettings(Section):
    enabled: bool = False
    delays: list[NonNegativeFloat] = Field(default_factory=lambda: [300.0, 1800.0, 7200.0])
    """Seconds before the 1st, 2nd, … redelivery (the last repeats)."""
    target: Literal["same", "route"] = "same"
    max_redeliveries: int | None = Field(default=None, ge=0)

    @field_validator("delays")
    @classmethod
    def _not_empty(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("at least one delay is required")
        return value

    def to_policy(self) -> RedeliveryPolicy | None:
        if not self.enabled:
            return None
        return RedeliveryPolicy(
            delays=tuple(timedelta(seconds=d) for d in self.delays),
            target=self.target,
            max_redeliveries=self.max_redeliveries,
        )


class GatewaySettings(BaseSettings):
    """Everything a :class:`~mimgw.Gateway` needs, from init values, ``MIMGW_*`` environment
    variables, a ``.env`` file and a TOML file (in that order of precedence)."""

    model_config = SettingsConfigDict(
        env_prefix="MIMGW_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # a shared .env holds other applications' variables too
        frozen=True,
    )

    providers: list[ProviderSettings] = Field(min_length=1)
    strategy: Literal["priority", "round_robin", "weighted"] = "priority"
    on_unknown: Literal["raise", "failover"] = "raise"
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    limits: LimitSettings | None = None
    """Default pacing for every provider; a provider's own ``limits`` wins."""
    ledger: LedgerSettings = LedgerSettings()
    redelivery: RedeliverySettings = RedeliverySettings()
    state: StateSettings = StateSettings()

    def __init__(self, **values: Any) -> None:
        labels: list[str] = []
        token = _PROVIDER_LABELS.set(labels)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error(exc, labels)) from None
        finally:
            _PROVIDER_LABELS.reset(token)

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_as_list(cls, value: object) -> object:
        """Accept a table keyed by name (and env-style ``0``, ``1`` … keys)."""
        if isinstance(value, Mapping):
            if value and all(str(k).isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=lambda k: int(k))]
            else:
                items = []
                for key, item in value.items():
                    if isinstance(item, Mapping) and "name" not in item:
                        item = {**item, "name": str(key)}
                    items.append(item)
                value = items
        labels = _PROVIDER_LABELS.get()
        if labels is not None and isinstance(value, list):
            labels[:] = _labels(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )

    @classmethod
    def load(
        cls,
        *,
        toml: str | Path | None = None,
        env_file: str | Path | None = None,
        **values: Any,
    ) -> GatewaySettings:
        """Read the settings; ``toml`` adds a TOML file, ``env_file`` replaces ``.env``."""
        target: type[GatewaySettings] = cls
        if toml is not None:
            path = Path(toml)
            if not path.is_file():
                raise ConfigurationError(f"toml: no such file: {path}")
            config = SettingsConfigDict(**{**cls.model_config, "toml_file": path})
            target = cast(
                "type[GatewaySettings]", type(cls.__name__, (cls,), {"model_config": config})
            )
        if env_file is not None:
            values["_env_file"] = env_file
        try:
            return target(**values)
        except ValueError as exc:  # a TOML syntax error surfaces as a ValueError subclass
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"toml: cannot read {toml}: {exc}") from None


def describe_validation_error(exc: ValidationError, provider_labels: Sequence[str] = ()) -> str:
    """``providers.dini.api_key: Field required; …`` — locations and messages, never values.

    A provider is named by its name (or its kind, or its position when neither tells
    it apart), as given in ``provider_labels``.
    """
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        raw = list(err["loc"])
        if (
            len(raw) > 1
            and raw[0] == "providers"
            and isinstance(raw[1], int)
            and raw[1] < len(provider_labels)
        ):
            raw[1] = provider_labels[raw[1]]
        # the discriminated union adds the kind as a location step: leave it out
        loc = [
            str(p)
            for i, p in enumerate(raw)
            if not (isinstance(p, str) and p in _KINDS and not (i == 1 and raw[0] == "providers"))
        ]
        where = ".".join(loc) or "settings"
        if raw == ["providers"] and err["type"] in ("missing", "too_short"):
            parts.append(f"providers: {NO_PROVIDERS_HINT}")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "invalid configuration: " + "; ".join(parts)


def build_gateway(settings: GatewaySettings, *, client: httpx.AsyncClient | None = None) -> Gateway:
    """A :class:`~mimgw.Gateway` with every enabled provider, in configured order."""
    from mimgw.gateway import Gateway

    chosen = [(i, p) for i, p in enumerate(settings.providers) if p.enabled]
    if not chosen:
        raise ConfigurationError("providers: no provider is enabled")
    chosen.sort(key=lambda t: (t[1].order is None, t[1].order or 0, t[0]))
    providers: list[Provider] = []
    weights: dict[str, float] = {}
    limits: dict[str, RateLimit] = {}
    for _, item in chosen:
        name = item.name or item.kind
        if name in weights:
            raise ConfigurationError(
                f"providers.{name}.name: another provider is already named {name!r}"
            )
        cls = provider_class(item.kind)
        try:
            providers.append(cls(**{**item.constructor_kwargs(client), "name": name}))
        except ConfigurationError as exc:
            raise ConfigurationError(f"providers.{name}: {exc}") from None
        except TypeError as exc:
            raise ConfigurationError(
                f"providers.{name}: {cls.__name__} rejected the settings: {exc}"
            ) from None
        weights[name] = item.weight
        limit = item.limits or settings.limits
        if limit is not None:
            limits[name] = limit.to_limit()
    if settings.strategy == "weighted" and not any(w > 0 for w in weights.values()):
        raise ConfigurationError(
            "providers.weight: the weighted strategy needs an enabled provider with weight > 0"
        )
    return Gateway(
        providers,
        strategy=settings.strategy,
        weights=weights if settings.strategy == "weighted" else None,
        retry=settings.retry.to_policy(),
        breaker=settings.breaker.to_policy(),
        limits=limits or None,
        ledger=settings.ledger.build(),
        on_unknown=settings.on_unknown,
        redelivery=settings.redelivery.to_policy(),
        state=settings.state.build(),
    )
