"""Run the mimgw command line in-process, with a wide, colourless console."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mimgw.cli import main

CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MIMGW_ variables and no stray .env: the directory is a fresh tmp_path."""
    for name in [k for k in os.environ if k.upper().startswith("MIMGW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
