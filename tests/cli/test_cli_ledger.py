"""mimgw ledger unresolved|resolve against a SQLite ledger from configuration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mimgw.ledger import Intent, SqliteLedger
from mimgw.models import Message

CliRun = Callable[..., tuple[int, str, str]]


async def write_unknown(path: Path, key: str) -> Intent:
    ledger = SqliteLedger(path)
    try:
        message = Message(to="01712345678", text="hello", idempotency_key=key)
        return await ledger.begin(Intent.for_message(message, now=datetime.now(UTC)))
    finally:
        await ledger.aclose()


def config(tmp: Path) -> Path:
    path = tmp / "mimgw.toml"
    path.write_text(
        f'[ledger]\nbackend = "sqlite"\npath = "{(tmp / "ledger.db").as_posix()}"\n\n'
        '[providers.imi]\nkind = "imiconnect"\nservice_key = "not-used-0123456789"\n'
    )
    return path


def test_unresolved_lists_and_resolve_settles(cli: CliRun, clean_env: Path) -> None:
    intent = asyncio.run(write_unknown(clean_env / "ledger.db", "order-42"))
    toml = config(clean_env)
    code, out, err = cli("ledger", "unresolved", "--config", toml, "--json")
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["id"] == intent.id and listed["key"] == "order-42"
    code, out, _ = cli("ledger", "unresolved", "--config", toml)
    assert "1 unresolved send" in out and "order-42" in out
    code, out, err = cli("ledger", "resolve", "order-42", "--not-sent", "--config", toml)
    assert code == 0, err
    assert "not_sent" in out
    code, out, _ = cli("ledger", "unresolved", "--config", toml, "--json")
    assert json.loads(out) == []
    code, _, err = cli("ledger", "resolve", "order-42", "--sent", "--config", toml)
    assert code == 1
    assert "already not_sent" in err


def test_resolve_options_go_together(cli: CliRun, clean_env: Path) -> None:
    code, _, err = cli(
        "ledger", "resolve", "x", "--not-sent", "--message-id", "1", "--config", config(clean_env)
    )
    assert code == 1
    assert "go with --sent" in err
