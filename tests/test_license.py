"""The MIT licence the metadata declares is in the repository (and so in the wheel and sdist:
hatchling ships LICEN[CS]E* files by default unless ``license-files`` says otherwise)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_declared_licence_is_shipped() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2025 mimgw developers" in text
    patterns = project.get("license-files", ["LICEN[CS]E*"])
    assert any(Path("LICENSE").match(p) for p in patterns)
