"""The gateway backends, one module each, on the shared :class:`~mimgw.Provider` base.

``PROVIDER_CLASSES`` maps each backend's ``kind`` (the name configuration uses) to its
class, in the order the documentation lists them. Each backend module is imported on
first use (``from mimgw.providers import DiniSoft`` imports only DiniSoft's module);
``PROVIDER_CLASSES`` imports them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mimgw.providers.base import Provider

if TYPE_CHECKING:
    from mimgw.providers.dinisoft import DiniSoft
    from mimgw.providers.imiconnect import IMIconnect
    from mimgw.providers.mimsms_v3 import MimSmsV3
    from mimgw.providers.mimsms_v3_json import MimSmsV3Json
    from mimgw.providers.mimsms_v4 import MimSmsV4

    PROVIDER_CLASSES: dict[str, type[Provider]]

_MODULES: dict[str, str] = {
    "MimSmsV4": "mimgw.providers.mimsms_v4",
    "MimSmsV3": "mimgw.providers.mimsms_v3",
    "MimSmsV3Json": "mimgw.providers.mimsms_v3_json",
    "DiniSoft": "mimgw.providers.dinisoft",
    "IMIconnect": "mimgw.providers.imiconnect",
}
"""Class name -> backend module, in the documented order."""


def _registry() -> dict[str, type[Provider]]:
    classes: list[type[Provider]] = [__getattr__(name) for name in _MODULES]
    return {cls.kind: cls for cls in classes}


def __getattr__(name: str) -> Any:
    if name == "PROVIDER_CLASSES":
        value: Any = _registry()
    elif name in _MODULES:
        value = getattr(importlib.import_module(_MODULES[name]), name)
    else:
        raise AttributeError(f"module 'mimgw.providers' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "PROVIDER_CLASSES",
    "DiniSoft",
    "IMIconnect",
    "MimSmsV3",
    "MimSmsV3Json",
    "MimSmsV4",
    "Provider",
]
