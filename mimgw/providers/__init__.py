"""The gateway backends, one module each, on the shared :class:`~mimgw.Provider` base.

``PROVIDER_CLASSES`` maps each backend's ``kind`` (the name configuration uses) to its
class, in the order the documentation lists them.
"""

from __future__ import annotations

from mimgw.providers.base import Provider
from mimgw.providers.dinisoft import DiniSoft
from mimgw.providers.imiconnect import IMIconnect
from mimgw.providers.mimsms_v3 import MimSmsV3
from mimgw.providers.mimsms_v3_json import MimSmsV3Json
from mimgw.providers.mimsms_v4 import MimSmsV4

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    cls.kind: cls for cls in (MimSmsV4, MimSmsV3, MimSmsV3Json, DiniSoft, IMIconnect)
}
"""Backend ``kind`` -> provider class."""

__all__ = [
    "PROVIDER_CLASSES",
    "DiniSoft",
    "IMIconnect",
    "MimSmsV3",
    "MimSmsV3Json",
    "MimSmsV4",
    "Provider",
]
