"""The mimgw command line, run in-process against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mimgw.cli import demo, info, simulate
from mimgw.cli.common import SIMULATED_KINDS, error_name
from mimgw.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    InvalidMessageError,
    ProviderError,
)
from mimgw.taxonomy import ErrorKind

CliRun = Callable[..., tuple[int, str, str]]


def test_demo_runs_every_section(cli: CliRun) -> None:
    code, out, err = cli("demo")
    assert code == 0, out + err
    assert "failed:" not in out
    for needle in (
        "mimsms_v4: send",
        "mimsms_v3: send",
        "mimsms_v3_json: send",
        "dinisoft: send",
        "imiconnect: send",
        "one-to-many: 4/4 accepted",
        "personalised: 4/4 accepted",
        "Absent subscriber for SM",
        "second pull: 0 report(s)",
        "pushed imiconnect",
        "inbound from",
        "failed over",
        "demo complete",
    ):
        assert needle in out, needle
    assert "Traceback" not in out + err


def test_demo_exit_code_reports_a_failed_section(
    cli: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        async def run() -> None:
            raise RuntimeError("boom")

        return run

    monkeypatch.setattr(demo, "_demo_parse_dlr", broken)
    code, out, _ = cli("demo")
    assert code == 1
    assert "mimsms_v4: DLR classification failed: RuntimeError" in out
    assert "failover" in out  # the sections after it still ran
    assert "Traceback" not in out


def test_providers_lists_every_gateway(cli: CliRun) -> None:
    code, out, _ = cli("providers")
    assert code == 0
    for needle in (*SIMULATED_KINDS, "webhook push", "balance"):
        assert needle in out, needle


def test_providers_json_is_each_class_capabilities(cli: CliRun) -> None:
    code, out, _ = cli("providers", "--json")
    assert code == 0
    data = json.loads(out)
    classes = info.provider_classes()
    assert list(data) == [c.kind for c in classes]
    for cls in classes:
        assert data[cls.kind] == cls.capabilities.as_dict()


def test_provider_classes_come_from_the_package() -> None:
    kinds = [c.kind for c in info.provider_classes()]
    assert kinds[:5] == list(SIMULATED_KINDS)


def test_send_with_simulator(cli: CliRun) -> None:
    code, out, err = cli("send", "01712-345678", "আপনার কোড 4711", "--simulator")
    assert code == 0, err
    assert "mimsms_v4 accepted" in out
    assert "8801712345678" in out
    assert "ucs2" in out


def test_send_json_and_provider_pin(cli: CliRun) -> None:
    code, out, err = cli(
        "send", "01712345678", "hello", "--simulator", "--provider", "dinisoft", "--json"
    )
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["provider"] == "dinisoft"
    assert receipt["to"] == "8801712345678"
    assert "raw" not in receipt


def test_balance_with_simulator(cli: CliRun) -> None:
    code, out, err = cli("balance", "--simulator")
    assert code == 0, err
    assert "mimsms_v4" in out
    assert "no balance endpoint" in out  # IMIconnect documents none


def test_balance_json_pinned(cli: CliRun) -> None:
    code, out, err = cli("balance", "--simulator", "--provider", "dinisoft", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["dinisoft"]
    assert float(data["dinisoft"]["amount"]) > 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["send"],
        ["send", "01712345678"],
        ["frobnicate"],
        ["send-bulk", "x.csv", "--concurrency", "0"],
        ["simulate", "--port", "70000"],
        ["ledger"],
        ["ledger", "resolve", "abc"],
    ],
)
def test_bad_usage_exits_2(cli: CliRun, argv: list[str]) -> None:
    code, _, err = cli(*argv)
    assert code == 2
    assert "usage:" in err


def test_bad_usage_with_json_is_json(cli: CliRun) -> None:
    code, out, err = cli("send", "01712345678", "--json")
    assert code == 2
    assert json.loads(out) == {
        "error": "usage",
        "detail": "the following arguments are required: text",
    }
    assert err == ""


def test_version(cli: CliRun) -> None:
    code, out, _ = cli("--version")
    assert code == 0
    assert out.startswith("mimgw ")


def test_unknown_message_is_a_one_line_error(cli: CliRun) -> None:
    code, out, err = cli("status", "12345", "--simulator", "--provider", "dinisoft")
    assert code == 1
    assert err.startswith("error request_rejected: dinisoft")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_invalid_number_is_named_by_its_kind(cli: CliRun) -> None:
    code, out, err = cli("send", "12", "hi", "--simulator")
    assert code == 1
    assert err.startswith("error invalid_message: ")
    assert "InvalidMessageError" not in err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) <= 2


def test_json_errors_are_json(cli: CliRun) -> None:
    code, out, err = cli("send", "123", "hello", "--simulator", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["error"] == "invalid_message"
    assert "123" in data["detail"]
    assert err == ""


def test_json_provider_errors_carry_the_kind(cli: CliRun) -> None:
    code, out, _ = cli("status", "12345", "--simulator", "--provider", "dinisoft", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["error"] == "request_rejected"
    assert data["provider"] == "dinisoft"
    assert data["may_have_been_sent"] is False


def test_error_names_are_the_documented_kinds() -> None:
    auth = ProviderError.of(ErrorKind.AUTH, "v4", 401, "bad key")
    unknown = ProviderError.of(ErrorKind.OUTCOME_UNKNOWN, "dini", None, "read timeout")
    assert error_name(auth) == "auth"
    assert error_name(unknown) == "outcome_unknown"
    assert error_name(AllProvidersFailedError([auth, unknown])) == "outcome_unknown"
    assert error_name(AllProvidersFailedError([])) == "all_providers_failed"
    assert error_name(InvalidMessageError("x")) == "invalid_message"
    assert error_name(ConfigurationError("x")) == "configuration"


def test_unknown_provider_pin(cli: CliRun) -> None:
    code, _, err = cli("balance", "--simulator", "--provider", "nope")
    assert code == 1
    assert "no provider named 'nope'" in err


def test_missing_config_file(cli: CliRun, tmp_path: Path) -> None:
    code, _, err = cli("balance", "--config", tmp_path / "missing.toml")
    assert code == 1
    assert "not found" in err


def test_unexpected_errors_have_no_traceback(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    async def crash(*args: Any) -> int:
        raise KeyError("internal")

    monkeypatch.setattr(info, "cmd_providers", crash)
    code, out, err = cli("providers")
    assert code == 1
    assert "unexpected error" in err
    assert "Traceback" not in out + err


def test_config_file_errors_never_print_credentials(cli: CliRun, clean_env: Path) -> None:
    """A real configuration whose gateway refuses the connection (a closed loopback port)."""
    secret = "Sup3r-Secret-ApiKey-771"
    config = clean_env / "mimgw.toml"
    config.write_text(
        "[retry]\nattempts = 1\n\n"
        "[[providers]]\n"
        'kind = "mimsms_v4"\n'
        'username = "ops@example.com"\n'
        f'api_key = "{secret}"\n'
        'sender = "MyBrand"\n'
        'base_url = "http://127.0.0.1:9"\n'
        "timeout = 2\n"
    )
    code, out, err = cli("send", "01712345678", "hi", "--config", config)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error connect_failed:")
    assert secret not in out + err
    assert "Traceback" not in out + err


def test_invalid_config_is_a_one_line_error(cli: CliRun, clean_env: Path) -> None:
    config = clean_env / "mimgw.toml"
    config.write_text('[providers.dini]\nkind = "dinisoft"\napi_key = "k-123456789"\n')
    code, _, err = cli("balance", "--config", config)
    assert code == 1
    assert err.startswith("error configuration: ")
    assert "providers.dini.secret_key" in err
    assert "k-123456789" not in err


def test_empty_configuration_says_how_to_configure(cli: CliRun, clean_env: Path) -> None:
    code, _, err = cli("balance")
    assert code == 1
    assert "MIMGW_PROVIDERS__<NAME>__KIND" in " ".join(err.split())


# -- without the cli extra ----------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_without_the_cli_extra_help_is_a_one_line_hint() -> None:
    done = _python(
        "import sys; sys.modules['rich'] = None; sys.modules['uvicorn'] = None\n"
        "from mimgw.cli import main\n"
        "sys.exit(main(['--help']))"
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        done.stderr.strip()
        == 'mimgw: the command line needs the "cli" extra: pip install "mimgw[cli]"'
    )


def test_importing_the_cli_loads_no_command_and_no_uvicorn() -> None:
    """(httpx itself imports rich when it is installed, so only our own modules are checked.)"""
    done = _python(
        "import sys, mimgw.cli\n"
        "print(sorted(m for m in sys.modules if m == 'uvicorn' or m.startswith('mimgw.cli.')))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_simulate_prints_env_lines(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(simulate, "serve", lambda app, host, port: served.append((app, host, port)))
    code, out, _ = cli("simulate", "--port", "9999")
    assert code == 0
    assert served and served[0][1:] == ("127.0.0.1", 9999)
    assert "sim.invalid" not in out
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert all(line.startswith("MIMGW_PROVIDERS__") and "=" in line for line in lines)
    for kind in SIMULATED_KINDS:
        assert f"MIMGW_PROVIDERS__{kind.upper()}__KIND={kind}" in lines
        assert f"MIMGW_PROVIDERS__{kind.upper()}__BASE_URL=http://127.0.0.1:9999" in lines


def test_simulate_push_url_reaches_the_served_app(
    cli: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(simulate, "serve", lambda app, host, port: served.append(app))
    url = "http://127.0.0.1:8000/mimgw/webhooks/{kind}?token=abc"
    code, out, _ = cli("simulate", "--push-url", url)
    assert code == 0
    [app] = served
    assert app.push_url == url
    assert f"# delivery reports and inbound messages are pushed to {url}" in out
