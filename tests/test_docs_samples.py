"""docs/testing.md works as pasted: its own conftest and pyproject lines, its test samples."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def test_testing_guide_samples_pass_as_pasted(tmp_path: Path) -> None:
    blocks = BLOCK.findall((ROOT / "docs" / "testing.md").read_text(encoding="utf-8"))
    [toml] = [body for lang, body in blocks if lang == "toml" and "asyncio_mode" in body]
    [conftest] = [body for lang, body in blocks if lang == "python" and "pytest_plugins" in body]
    tests = [body for lang, body in blocks if lang == "python" and "def test_" in body]
    assert len(tests) >= 4
    (tmp_path / "pyproject.toml").write_text(toml, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(conftest, encoding="utf-8")
    for index, body in enumerate(tests):
        (tmp_path / f"test_sample_{index}.py").write_text(body, encoding="utf-8")
    done = subprocess.run(  # noqa: S603 - our interpreter, the doc's own samples
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(body.count("def test_") for body in tests)
    assert f"{count} passed" in done.stdout, done.stdout
    assert "skipped" not in done.stdout


def test_quickstart_fastapi_sample_runs_as_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    section = text[text.index("## 6.") : text.index("## 7.")]
    [(_, body)] = BLOCK.findall(section)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBHOOK_TOKEN", "quickstart-token-0123456789")
    namespace: dict[str, object] = {"__name__": "quickstart_app"}
    exec(compile(body, "quickstart.md", "exec", dont_inherit=True), namespace)  # noqa: S102 - our own doc
    app = namespace["app"]
    assert app.url_path_for("send_otp") == "/otp"  # type: ignore[attr-defined]
    webhook = app.url_path_for("mimgw_webhook", provider_name="v4")  # type: ignore[attr-defined]
    assert webhook == "/mimgw/webhooks/v4"
