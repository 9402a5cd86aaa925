"""``import mimgw`` stays light: heavy and optional modules load on first use only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import mimgw
import mimgw.providers

NEVER_ON_IMPORT = [
    # drivers of optional extras (DESIGN.md section 10)
    "asyncpg",
    "redis",
    "taskiq",
    "aiohttp",
    "httpx_aiohttp",
    # what only some uses need
    "pydantic_settings",
    "fastapi",
    "starlette",
    "rich",
    "uvicorn",
    "defusedxml",
    "xml.etree.ElementTree",
    "phonenumbers",
    "tenacity",
    "sqlite3",
    "mimgw.config",
    "mimgw.cli",
    "mimgw.fastapi",
    "mimgw.simulator",
    "mimgw.testing",
    "mimgw.gateway",
    "mimgw.ledger",
    "mimgw.providers.mimsms_v4",
    "mimgw.providers.mimsms_v3",
    "mimgw.providers.mimsms_v3_json",
    "mimgw.providers.dinisoft",
    "mimgw.providers.imiconnect",
]


def loaded_after(code: str) -> set[str]:
    """Module names present in a fresh interpreter after running ``code``."""
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_mimgw_loads_nothing_heavy() -> None:
    loaded = loaded_after("import mimgw")
    assert sorted(set(NEVER_ON_IMPORT) & loaded) == []


def test_a_provider_import_loads_only_that_provider() -> None:
    loaded = loaded_after("from mimgw.providers import MimSmsV4")
    assert "mimgw.providers.mimsms_v4" in loaded
    others = {"mimgw.providers.dinisoft", "mimgw.providers.imiconnect", "mimgw.providers.mimsms_v3"}
    assert not others & loaded
    for name in ("asyncpg", "redis", "taskiq", "aiohttp", "pydantic_settings", "fastapi"):
        assert name not in loaded, name


def test_a_bangladeshi_send_path_never_imports_phonenumbers() -> None:
    loaded = loaded_after(
        "from mimgw import Message\nMessage(to='+880 1712-345678', text='hi')\n"
        "from mimgw.providers import MimSmsV4"
    )
    assert "phonenumbers" not in loaded


@pytest.mark.parametrize("module", ["mimgw", "mimgw.providers"])
def test_every_public_name_imports_in_a_fresh_interpreter(module: str) -> None:
    names = sys.modules[module].__all__
    code = f"from {module} import {', '.join(names)}"
    loaded_after(code)  # raises CalledProcessError on any ImportError


@pytest.mark.parametrize("module", [mimgw, mimgw.providers])
def test_dir_lists_every_public_name(module: object) -> None:
    assert set(module.__all__) <= set(dir(module))  # type: ignore[attr-defined]


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = mimgw.Nope  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = mimgw.providers.Nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from mimgw import Nope")  # noqa: S102 - the import statement itself


def test_lazy_names_are_the_real_objects() -> None:
    from mimgw.gateway import Gateway
    from mimgw.providers.mimsms_v4 import CampaignRequiredError, MimSmsV4

    assert mimgw.Gateway is Gateway
    assert mimgw.CampaignRequiredError is CampaignRequiredError
    assert issubclass(mimgw.CampaignRequiredError, mimgw.MimgwError)
    assert mimgw.providers.MimSmsV4 is MimSmsV4
    assert mimgw.providers.PROVIDER_CLASSES["mimsms_v4"] is MimSmsV4
