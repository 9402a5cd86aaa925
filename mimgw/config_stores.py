"""Configuration of where records and shared state live: the ledger (memory, a SQLite
file or PostgreSQL) and the limits/breakers state (this process or Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import PositiveInt, SecretStr, field_validator, model_validator

from mimgw.config_providers import Section
from mimgw.errors import ConfigurationError
from mimgw.ledger import Ledger, MemoryLedger, SqliteLedger
from mimgw.ledger.memory import DEFAULT_MAX_ENTRIES
from mimgw.state import GatewayState

__all__ = ["LedgerSettings", "StateSettings"]


class LedgerSettings(Section):
    """Where intents, submits and reports are recorded.

    ``backend`` memory (default), sqlite (``path``) or postgres (``url``); a ``url`` alone
    picks its backend: ``postgresql://user:password@host/db`` or ``sqlite:///path``.
    """

    backend: Literal["memory", "sqlite", "postgres"] = "memory"
    path: Path | None = None
    url: SecretStr | None = None
    """Secret: a PostgreSQL URL may hold a password."""
    table: str = "mimgw_ledger"
    """PostgreSQL: the entries table (intents and the schema version live beside it)."""
    max_entries: PositiveInt | None = DEFAULT_MAX_ENTRIES
    """Memory: entries kept before the oldest finished ones are dropped (``None``: no cap)."""

    @model_validator(mode="before")
    @classmethod
    def _backend_from_url(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("url") is None:
            return data
        raw = data["url"]
        url = raw.get_secret_value() if isinstance(raw, SecretStr) else str(raw)
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        values = dict(data)
        if scheme in ("postgres", "postgresql"):
            backend = "postgres"
        elif scheme == "sqlite" and url.startswith(("sqlite:///", "SQLITE:///")):
            backend = "sqlite"
            path = url[len("sqlite:///") :]
            if not path:
                raise ValueError("url: sqlite:///path needs a file path")
            if values.get("path") is not None and Path(values["path"]) != Path(path):
                raise ValueError("give the SQLite file as path or as url, not both")
            values["path"] = path
        else:
            raise ValueError("url must be postgresql://user@host/database or sqlite:///path")
        if values.get("backend") not in (None, backend):
            raise ValueError(f"url is a {backend} URL but backend is {values['backend']!r}")
        values["backend"] = backend
        return values

    @field_validator("max_entries", mode="before")
    @classmethod
    def _no_cap(cls, value: Any) -> Any:
        """``none`` (any case) from the environment means no cap."""
        if isinstance(value, str) and value.strip().lower() in ("none", "null"):
            return None
        return value

    @model_validator(mode="after")
    def _sqlite_needs_path(self) -> LedgerSettings:
        if self.backend == "sqlite" and self.path is None:
            raise ValueError("path is required for the sqlite ledger")
        if self.backend != "memory" and "max_entries" in self.model_fields_set:
            raise ValueError(f"max_entries applies to the memory ledger, not {self.backend}")
        return self

    def build(self) -> Ledger:
        if self.backend == "postgres":
            try:
                from mimgw.ledger.postgres import PostgresLedger
            except ImportError:
                raise ConfigurationError(
                    "ledger: the postgres backend needs asyncpg (pip install 'mimgw[postgres]')"
                ) from None
            dsn = None if self.url is None else self.url.get_secret_value()
            return PostgresLedger(dsn, table=self.table)
        if self.backend == "sqlite":
            assert self.path is not None
            return SqliteLedger(self.path)
        return MemoryLedger(max_entries=self.max_entries)


class StateSettings(Section):
    """Where limits and breakers live: this process (default) or Redis (``url``)."""

    url: SecretStr | None = None
    """``redis://…``: share them through :class:`mimgw.shared.RedisState` (extra ``redis``);
    secret because it may hold a password."""
    prefix: str = "mimgw"

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        schemes = ("redis://", "rediss://", "unix://")
        if value is not None and not value.get_secret_value().startswith(schemes):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    def build(self) -> GatewayState | None:
        if self.url is None:
            return None
        from mimgw.shared import RedisState

        return RedisState(self.url.get_secret_value(), prefix=self.prefix)
