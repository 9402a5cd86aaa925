"""Configuration reaches the PostgreSQL ledger: ``MIMGW_LEDGER__URL=postgresql://…``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mimgw import ConfigurationError, Receipt
from mimgw.config import GatewaySettings, LedgerSettings
from mimgw.gateway import Gateway
from mimgw.ledger import SqliteLedger

SECRET = "pg-pw-123"


def test_a_postgres_url_picks_the_postgres_ledger_without_connecting() -> None:
    settings = LedgerSettings(url=f"postgresql://app:{SECRET}@db.invalid:5432/sms", table="sms")
    assert settings.backend == "postgres"
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    ledger = settings.build()  # nothing opened yet: the host does not even resolve
    assert type(ledger).__name__ == "PostgresLedger" and SECRET not in repr(ledger)
    assert ledger.tables.table == "sms"  # type: ignore[attr-defined]
    assert LedgerSettings(backend="postgres").backend == "postgres"  # PG* environment


def test_a_sqlite_url_is_a_path(tmp_path: object) -> None:
    settings = LedgerSettings(url="sqlite:///var/x/ledger.db")
    assert settings.backend == "sqlite" and str(settings.path) == "var/x/ledger.db"
    assert isinstance(settings.build(), SqliteLedger)
    assert LedgerSettings(backend="memory").build().__class__.__name__ == "MemoryLedger"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": f"mysql://u:{SECRET}@h/db"}, "postgresql://"),
        ({"url": f"postgresql://u:{SECRET}@h/db", "backend": "sqlite"}, "backend"),
        ({"url": "sqlite:///a.db", "path": "b.db"}, "not both"),
    ],
)
def test_bad_ledger_urls_are_named_never_echoed(
    values: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIMGW_PROVIDERS__MAIN__KIND", "imiconnect")
    monkeypatch.setenv("MIMGW_PROVIDERS__MAIN__SERVICE_KEY", "k" * 12)
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings(ledger=values)
    assert "ledger" in str(caught.value) and message in str(caught.value)
    assert SECRET not in str(caught.value)


def test_importing_mimgw_imports_no_database_driver() -> None:
    code = (
        "import sys, mimgw, mimgw.ledger, mimgw.config\n"
        "print(sorted(m for m in ('asyncpg',) if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.services
async def test_gateway_from_settings_records_into_postgres(
    pg_dsn: str, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIMGW_PROVIDERS__MAIN__KIND", "imiconnect")
    monkeypatch.setenv("MIMGW_PROVIDERS__MAIN__SERVICE_KEY", "k" * 12)
    monkeypatch.setenv("MIMGW_LEDGER__URL", pg_dsn)
    monkeypatch.setenv("MIMGW_LEDGER__TABLE", pg_table)
    first = Gateway.from_settings()
    await first.ledger.record_submit(Receipt(provider="main", message_id="m1", to="8801712345678"))
    await first.aclose()
    second = Gateway.from_settings()  # another worker, same tables
    entry = await second.ledger.get("main", "m1")
    assert entry is not None and entry.submitted
    await second.aclose()


async def test_postgres_ledger_says_it_needs_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    import sniffio

    from mimgw.ledger import PostgresLedger

    monkeypatch.setattr(sniffio, "current_async_library", lambda: "trio")
    with pytest.raises(ConfigurationError, match="asyncio only"):
        await PostgresLedger("postgresql://u@127.0.0.1:1/db").get("gw", "m")
