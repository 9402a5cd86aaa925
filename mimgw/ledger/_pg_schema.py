"""PostgreSQL ledger plumbing: table names, the versioned schema, DSN redaction, error mapping.

Kept apart from :mod:`mimgw.ledger.postgres` so the ledger's logic reads on its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

from mimgw.errors import ConfigurationError
from mimgw.ledger.entry import LedgerError

__all__ = ["SCHEMA_VERSION", "UPGRADES", "Tables", "ensure_schema", "guard", "open_error"]

SCHEMA_VERSION = 1
"""The layout this mimgw writes; kept per ledger in ``{table}_meta``."""

UPGRADES: dict[int, tuple[str, ...]] = {}
"""Statements that take a ledger from version ``n`` to ``n + 1`` (``{entries}``,
``{intents}``, ``{meta}`` and ``{table}`` are replaced by the table names). Applied in
order, in one transaction, the first time a newer mimgw opens an older ledger."""

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")


@dataclass(frozen=True, slots=True)
class Tables:
    """The three tables of one ledger, derived from its ``table`` name."""

    table: str

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.table):
            raise ConfigurationError(
                "ledger.table: use lowercase letters, digits and underscores "
                "(at most 40, not starting with a digit)"
            )

    @property
    def entries(self) -> str:
        return self.table

    @property
    def intents(self) -> str:
        return f"{self.table}_intents"

    @property
    def meta(self) -> str:
        return f"{self.table}_meta"

    def sql(self, template: str) -> str:
        return template.format(
            table=self.table,
            entries=self.entries,
            intents=self.intents,
            meta=self.meta,
            cols="provider, message_id, reference, state, due_at, settled, created_at, data",
        )


_CREATE = (
    """CREATE TABLE {entries} (
        provider TEXT NOT NULL,
        message_id TEXT NOT NULL,
        reference TEXT,
        state TEXT NOT NULL,
        due_at TIMESTAMPTZ,
        settled BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMPTZ NOT NULL,
        data JSONB NOT NULL,
        PRIMARY KEY (provider, message_id)
    )""",
    "CREATE INDEX {table}_message ON {entries} (message_id)",
    "CREATE INDEX {table}_reference ON {entries} (reference)",
    "CREATE INDEX {table}_due ON {entries} (due_at) WHERE NOT settled AND due_at IS NOT NULL",
    """CREATE TABLE {intents} (
        id TEXT PRIMARY KEY,
        key TEXT UNIQUE,
        state TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        data JSONB NOT NULL
    )""",
    "CREATE INDEX {table}_intents_open ON {intents} (created_at) "
    "WHERE state IN ('in_flight', 'unknown')",
)


async def ensure_schema(conn: Any, tables: Tables) -> None:
    """Create the tables (first use) or upgrade them, once, whichever process gets there first."""
    async with conn.transaction():
        # one creator or upgrader at a time across every process sharing the database
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"mimgw:{tables.table}")
        await conn.execute(
            tables.sql("CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value TEXT)")
        )
        found = await conn.fetchval(
            tables.sql("SELECT value FROM {meta} WHERE name = 'schema_version'")
        )
        if found is None:
            if await conn.fetchval("SELECT to_regclass($1)", tables.entries) is not None:
                raise ConfigurationError(
                    f"ledger.table: table {tables.entries!r} exists but has no mimgw schema "
                    f"version in {tables.meta!r}; choose another ledger.table"
                )
            for statement in _CREATE:
                await conn.execute(tables.sql(statement))
        else:
            version = int(found)
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"ledger: table {tables.entries!r} has schema version {version}; this "
                    f"mimgw knows up to {SCHEMA_VERSION} (upgrade mimgw)"
                )
            for step in range(version, SCHEMA_VERSION):
                if step not in UPGRADES:
                    raise ConfigurationError(
                        f"ledger: no upgrade from schema version {step} of {tables.entries!r}"
                    )
                for statement in UPGRADES[step]:
                    await conn.execute(tables.sql(statement))
            if version == SCHEMA_VERSION:
                return
        await conn.execute(
            tables.sql(
                "INSERT INTO {meta} (name, value) VALUES ('schema_version', $1) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            ),
            str(SCHEMA_VERSION),
        )


# -- secrets and errors -------------------------------------------------------------------


def dsn_secrets(dsn: str | None) -> tuple[str, ...]:
    """The password written in a DSN (URL form or ``password=`` parameter), to redact."""
    if not dsn:
        return ()
    found: list[str] = []
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        found += [password, unquote(password)]
    found += [m for m in re.findall(r"password=([^&\s]+)", dsn) if m]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def safe_dsn(dsn: str | None, secrets: tuple[str, ...]) -> str | None:
    return None if dsn is None else redact(dsn, secrets)


def check_dsn(dsn: str | None) -> None:
    if dsn is None:
        return  # asyncpg reads PGHOST, PGUSER, … like libpq
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigurationError("ledger.url: not a valid postgresql:// URL") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigurationError(
            "ledger.url: a PostgreSQL ledger needs a postgresql://user@host/db URL"
        )


_CONFIG_ERRORS = (
    asyncpg.InvalidAuthorizationSpecificationError,  # bad user or password
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InvalidPasswordError,
    asyncpg.ClientConfigurationError,
    ValueError,
)
_STORAGE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)


def describe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}", secrets)


def open_error(exc: BaseException, secrets: tuple[str, ...]) -> ConfigurationError | LedgerError:
    """What a failure to open the pool means: bad configuration, or a server out of reach."""
    if isinstance(exc, _CONFIG_ERRORS):
        return ConfigurationError(
            f"ledger.url: cannot open the PostgreSQL ledger: {describe(exc, secrets)}"
        )
    return LedgerError(f"PostgreSQL ledger unreachable: {describe(exc, secrets)}")


@contextmanager
def guard(secrets: tuple[str, ...]) -> Iterator[None]:
    """Turn every driver or socket error into :class:`LedgerError` (password redacted)."""
    try:
        yield
    except (LedgerError, ConfigurationError):
        raise
    except _STORAGE_ERRORS as exc:
        raise LedgerError(f"PostgreSQL ledger failed: {describe(exc, secrets)}") from None
