"""Ledgers shared by several writers: SQLite files, and PostgreSQL on 127.0.0.1:5432 when it
answers (skipped otherwise; under ``CI=true`` a missing PostgreSQL fails, as in
tests/services). The PostgreSQL fixtures are tests/services/conftest.py's own."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from worker import LedgerSpec, open_ledger

from mimgw.ledger import Ledger, MemoryLedger, SqliteLedger

_SERVICES = Path(__file__).parent.parent / "services"
if str(_SERVICES) not in sys.path:
    sys.path.append(str(_SERVICES))  # its conftest imports its own helper modules
_spec = importlib.util.spec_from_file_location("services_conftest", _SERVICES / "conftest.py")
assert _spec is not None and _spec.loader is not None
_services = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_services)
pg_dsn = _services.pg_dsn
pg_table = _services.pg_table


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)],
)
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerSpec:
    """Storage several processes can share."""
    if request.param == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "shared.db")}
    return {
        "kind": "postgres",
        "dsn": request.getfixturevalue("pg_dsn"),
        "table": request.getfixturevalue("pg_table"),
    }


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.services)],
)
def ledger_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Ledger]:
    """Every ledger backend; the factory opens the same storage each call (memory: the
    same object)."""
    if request.param == "memory":
        one = MemoryLedger()
        return lambda: one
    if request.param == "sqlite":
        path = str(tmp_path / "ledger.db")
        return lambda: SqliteLedger(path)
    dsn, table = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_table")
    return lambda: open_ledger({"kind": "postgres", "dsn": dsn, "table": table})
