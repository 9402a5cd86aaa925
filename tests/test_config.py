"""Configuration from the environment, .env and TOML; errors that name the field, not the secret."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from mimgw import ConfigurationError
from mimgw.config import GatewaySettings, build_gateway, provider_class
from mimgw.gateway import Gateway
from mimgw.ledger import MemoryLedger, SqliteLedger
from mimgw.simulator import Simulator

SECRET = "sup3r-s3cret-key"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.upper().startswith("MIMGW_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def v4_env(monkeypatch: pytest.MonkeyPatch, name: str = "primary") -> None:
    prefix = f"MIMGW_PROVIDERS__{name.upper()}__"
    monkeypatch.setenv(prefix + "KIND", "mimsms_v4")
    monkeypatch.setenv(prefix + "USERNAME", "me@example.com")
    monkeypatch.setenv(prefix + "API_KEY", SECRET)
    monkeypatch.setenv(prefix + "SENDER", "BRAND")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    v4_env(monkeypatch)
    monkeypatch.setenv("MIMGW_RETRY__ATTEMPTS", "5")
    monkeypatch.setenv("MIMGW_STRATEGY", "round_robin")
    monkeypatch.setenv("MIMGW_BREAKER__ENABLED", "false")
    settings = GatewaySettings.load()
    [provider] = settings.providers
    assert provider.kind == "mimsms_v4" and provider.name == "primary"
    assert provider.api_key.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert settings.retry.attempts == 5 and settings.strategy == "round_robin"
    assert settings.breaker.to_policy() is None
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_environment_lists_by_index_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMGW_PROVIDERS__1__KIND", "imiconnect")
    monkeypatch.setenv("MIMGW_PROVIDERS__1__SERVICE_KEY", SECRET)
    monkeypatch.setenv("MIMGW_PROVIDERS__0__KIND", "dinisoft")
    monkeypatch.setenv("MIMGW_PROVIDERS__0__API_KEY", "a")
    monkeypatch.setenv("MIMGW_PROVIDERS__0__SECRET_KEY", "b")
    assert [p.kind for p in GatewaySettings.load().providers] == ["dinisoft", "imiconnect"]
    for key in list(os.environ):
        if key.startswith("MIMGW_PROVIDERS__"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(
        "MIMGW_PROVIDERS", '[{"kind": "mimsms_v3", "username": "u", "password": "p"}]'
    )
    assert [p.kind for p in GatewaySettings.load().providers] == ["mimsms_v3"]


TOML = """
strategy = "priority"
on_unknown = "raise"

[retry]
attempts = 2
deadline = 10

[ledger]
backend = "sqlite"
path = "{path}"

[redelivery]
enabled = true
delays = [60, 600]

[[providers]]
name = "v4"
kind = "mimsms_v4"
username = "me@example.com"
api_key = "{secret}"
sender = "BRAND"
order = {v4_order}

[[providers]]
name = "dini"
kind = "dinisoft"
api_key = "k"
secret_key = "{secret}"
sender = "BRAND"
order = {dini_order}
limits = {{ rate = 5, max_in_flight = 2 }}
"""


def write_toml(tmp_path: Path, *, v4_order: int = 1, dini_order: int = 2) -> Path:
    path = tmp_path / "mimgw.toml"
    path.write_text(
        TOML.format(
            path=(tmp_path / "ledger.db").as_posix(),
            secret=SECRET,
            v4_order=v4_order,
            dini_order=dini_order,
        )
    )
    return path


def test_settings_from_toml_with_env_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIMGW_RETRY__ATTEMPTS", "4")
    settings = GatewaySettings.load(toml=write_toml(tmp_path))
    assert [p.name for p in settings.providers] == ["v4", "dini"]
    assert settings.retry.attempts == 4 and settings.retry.deadline == 10
    assert settings.ledger.backend == "sqlite"
    policy = settings.redelivery.to_policy()
    assert policy is not None and [d.total_seconds() for d in policy.delays] == [60, 600]


def test_settings_from_a_dotenv_file(tmp_path: Path) -> None:
    env = tmp_path / "prod.env"
    env.write_text(
        "MIMGW_PROVIDERS__MAIN__KIND=imiconnect\n"
        f"MIMGW_PROVIDERS__MAIN__SERVICE_KEY={SECRET}\n"
        "MIMGW_ON_UNKNOWN=failover\n"
        "DATABASE_URL=postgres://someone-else\n"
    )
    settings = GatewaySettings.load(env_file=env)
    assert settings.providers[0].kind == "imiconnect" and settings.on_unknown == "failover"
    (tmp_path / ".env").write_text(env.read_text())
    assert GatewaySettings.load().providers[0].name == "main"  # ./.env by default


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"providers": [{"kind": "mimsms_v4", "username": "u"}]}, "providers.mimsms_v4.api_key"),
        (
            {"providers": {"dini": {"kind": "dinisoft", "api_key": SECRET}}},
            "providers.dini.secret_key",
        ),
        (
            {"providers": [{"kind": "dinisoft", "name": "b", "api_key": SECRET}]},
            "providers.b.secret_key",
        ),
        (
            {
                "providers": [
                    {"kind": "imiconnect", "service_key": SECRET},
                    {"kind": "imiconnect", "timeout": 1},
                ]
            },
            "providers.1.service_key",
        ),
        ({"providers": [{"kind": "nope"}]}, "providers.nope"),
        ({"providers": [{"name": "x"}]}, "providers.x"),
        ({"providers": []}, "providers"),
        (
            {"providers": [{"kind": "imiconnect", "service_key": SECRET, "timeout": -1}]},
            "providers.imiconnect.timeout",
        ),
        (
            {
                "providers": [{"kind": "imiconnect", "service_key": SECRET}],
                "retry": {"attempts": 0},
            },
            "retry.attempts",
        ),
        (
            {
                "providers": [{"kind": "imiconnect", "service_key": SECRET}],
                "ledger": {"backend": "sqlite"},
            },
            "ledger",
        ),
        (
            {"providers": [{"kind": "imiconnect", "service_key": SECRET, "apikey": SECRET}]},
            "providers.imiconnect.apikey",
        ),
    ],
)
def test_invalid_settings_name_the_field_and_never_the_secret(
    values: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings(**values)
    text = str(caught.value)
    assert f"{field}:" in text
    assert SECRET not in text and SECRET not in repr(caught.value)


def test_environment_errors_name_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMGW_PROVIDERS__DINI__KIND", "dinisoft")
    monkeypatch.setenv("MIMGW_PROVIDERS__DINI__SECRET_KEY", SECRET)
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.load()
    assert "providers.dini.api_key: Field required" in str(caught.value)
    assert "providers.0" not in str(caught.value)


@pytest.mark.parametrize("values", [{}, {"providers": []}])
def test_no_provider_at_all_says_how_to_add_one(values: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        GatewaySettings.load(**values)
    text = str(caught.value)
    assert "MIMGW_PROVIDERS__<NAME>__KIND" in text
    assert "Field required" not in text


def test_missing_and_broken_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        GatewaySettings.load(toml=tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("providers = [")
    with pytest.raises(ConfigurationError, match="toml"):
        GatewaySettings.load(toml=broken)


def test_unknown_kind_resolution_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="kind"):
        provider_class("carrier-pigeon")


async def test_from_settings_builds_a_working_gateway(tmp_path: Path) -> None:
    pytest.importorskip("mimgw.providers.mimsms_v4")
    pytest.importorskip("mimgw.providers.dinisoft")
    sim = Simulator(seed=3)
    v4 = sim.mimsms_v4.provider_kwargs()
    dini = sim.dinisoft.provider_kwargs()
    settings = GatewaySettings(
        providers=[
            {"kind": "mimsms_v4", "name": "v4", **v4},
            {"kind": "dinisoft", "name": "dini", **dini, "limits": {"max_in_flight": 2}},
        ],
        retry={"attempts": 1},
    )
    async with sim.client() as client, Gateway.from_settings(settings, client=client) as gw:
        assert list(gw.providers) == ["v4", "dini"]
        assert isinstance(gw.ledger, MemoryLedger)
        receipt = await gw.send("01712345678", "hello from config")
        assert receipt.provider == "v4"
        sim.fail("mimsms_v4", "connect_error")
        assert (await gw.send("01712345678", "again")).provider == "dini"
        assert gw.health()["dini"]["max_in_flight"] == 2
        assert v4["api_key"] not in repr(gw.providers["v4"])


def test_swapping_the_primary_is_configuration_only(tmp_path: Path) -> None:
    pytest.importorskip("mimgw.providers.mimsms_v4")
    pytest.importorskip("mimgw.providers.dinisoft")
    first = Gateway.from_settings(toml=write_toml(tmp_path, v4_order=1, dini_order=2))
    assert list(first.providers) == ["v4", "dini"]
    assert isinstance(first.ledger, SqliteLedger)
    assert first.redelivery is not None and first.retry.attempts == 2
    assert first.health()["dini"]["rate"] == 5
    swapped = Gateway.from_settings(toml=write_toml(tmp_path, v4_order=3, dini_order=2))
    assert list(swapped.providers) == ["dini", "v4"]


def test_build_rejects_duplicate_names_and_all_disabled() -> None:
    pytest.importorskip("mimgw.providers.imiconnect")
    twice = GatewaySettings(
        providers=[
            {"kind": "imiconnect", "service_key": "a", "name": "x"},
            {"kind": "imiconnect", "service_key": "b", "name": "x"},
        ]
    )
    with pytest.raises(ConfigurationError, match=r"providers\.x\.name"):
        build_gateway(twice)
    off = GatewaySettings(providers=[{"kind": "imiconnect", "service_key": "a", "enabled": False}])
    with pytest.raises(ConfigurationError, match="no provider is enabled"):
        build_gateway(off)
    bad_url = GatewaySettings(
        providers=[{"kind": "imiconnect", "service_key": SECRET, "base_url": "ftp://x"}]
    )
    with pytest.raises(ConfigurationError, match=r"providers\.imiconnect: ") as caught:
        build_gateway(bad_url)
    assert SECRET not in str(caught.value)


def test_imiconnect_validity_reaches_the_provider() -> None:
    settings = GatewaySettings(
        providers=[{"kind": "imiconnect", "service_key": SECRET, "validity": "PT6H"}]
    )
    gateway = build_gateway(settings)
    provider = gateway.providers["imiconnect"]
    assert getattr(provider, "validity", None) == timedelta(hours=6)
    with pytest.raises(ConfigurationError, match="validity"):
        build_gateway(
            GatewaySettings(
                providers=[{"kind": "imiconnect", "service_key": SECRET, "validity": 0}]
            )
        )


def test_the_memory_ledgers_cap_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    v4_env(monkeypatch)
    assert GatewaySettings().ledger.build().max_entries == 100_000  # type: ignore[attr-defined]
    monkeypatch.setenv("MIMGW_LEDGER__MAX_ENTRIES", "500")
    assert GatewaySettings().ledger.build().max_entries == 500  # type: ignore[attr-defined]
    monkeypatch.setenv("MIMGW_LEDGER__MAX_ENTRIES", "null")
    assert GatewaySettings().ledger.build().max_entries is None  # type: ignore[attr-defined]
    monkeypatch.setenv("MIMGW_LEDGER__MAX_ENTRIES", "0")
    with pytest.raises(ConfigurationError, match="max_entries"):
        GatewaySettings()
    monkeypatch.setenv("MIMGW_LEDGER__MAX_ENTRIES", "10")
    monkeypatch.setenv("MIMGW_LEDGER__BACKEND", "sqlite")
    monkeypatch.setenv("MIMGW_LEDGER__PATH", "l.db")
    with pytest.raises(ConfigurationError, match="memory ledger"):
        GatewaySettings()
