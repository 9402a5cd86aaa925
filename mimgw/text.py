"""Text analysis: GSM-7 or UCS-2, how many characters and segments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = ["Encoding", "TextInfo", "analyse_text"]

Encoding = Literal["gsm7", "ucs2"]

# GSM 03.38 default alphabet and its extension table (extension characters take two septets).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION


def _class(chars: frozenset[str], *, negated: bool = False) -> re.Pattern[str]:
    listed = "".join(re.escape(ch) for ch in sorted(chars))
    return re.compile(f"[{'^' if negated else ''}{listed}]")


# one scan in C for the first character outside a set (a set's issuperset hashes every
# character of the text: three times as slow)
_NOT_BASIC = _class(_GSM_BASIC, negated=True)
_NOT_GSM = _class(_GSM_ALL, negated=True)
_EXTENSION_CHAR = _class(_GSM_EXTENSION)

SINGLE = {"gsm7": 160, "ucs2": 70}
"""Units that fit one standalone segment."""
CONCAT = {"gsm7": 153, "ucs2": 67}
"""Units that fit one segment of a concatenated message (the rest is the UDH)."""


@dataclass(frozen=True, slots=True)
class TextInfo:
    """What a text costs on the air interface."""

    encoding: Encoding
    characters: int
    """Unicode code points, as a person would count them."""
    units: int
    """Septets (GSM-7, extension characters count two) or UTF-16 code units (UCS-2)."""
    segments: int

    @property
    def unicode(self) -> bool:
        return self.encoding == "ucs2"

    @property
    def long(self) -> bool:
        return self.segments > 1


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    if encoding == "gsm7":
        return [2 if ch in _GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _count_segments(sizes: list[int], total: int, encoding: Encoding) -> int:
    if total <= SINGLE[encoding]:
        return 1 if total else 0
    # Characters are never split across segments (an escape pair or a surrogate pair).
    per, segments, used = CONCAT[encoding], 1, 0
    for size in sizes:
        if used + size > per:
            segments += 1
            used = 0
        used += size
    return segments


@lru_cache(maxsize=1024)
def analyse_text(text: str) -> TextInfo:
    """Work out encoding, length and segment count of ``text``.

    Any character outside the GSM 03.38 alphabet (Bangla, emoji, curly quotes)
    makes the whole message UCS-2.
    """
    encoding: Encoding
    if _NOT_BASIC.search(text) is None:
        encoding, wide = "gsm7", 0
    elif _NOT_GSM.search(text) is None:
        encoding, wide = "gsm7", len(_EXTENSION_CHAR.findall(text))
    else:
        encoding = "ucs2"  # characters beyond the BMP take two UTF-16 units
        wide = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
    units = len(text) + wide
    if units <= SINGLE[encoding]:
        segments = 1 if units else 0
    elif not wide:  # every character one unit: nothing to keep together
        segments = -(-units // CONCAT[encoding])
    else:
        segments = _count_segments(_unit_sizes(text, encoding), units, encoding)
    return _info(encoding, len(text), units, segments)


_INFOS: dict[tuple[Encoding, int, int, int], TextInfo] = {}
_INFOS_KEPT = 4096
"""Distinct analyses kept (texts of one length and alphabet share one)."""


def _info(encoding: Encoding, characters: int, units: int, segments: int) -> TextInfo:
    """One :class:`TextInfo` per distinct analysis: a campaign of personalised texts of a
    few lengths keeps a few objects, not one per message (an analysis is immutable)."""
    key = (encoding, characters, units, segments)
    info = _INFOS.get(key)
    if info is None:
        info = TextInfo(encoding=encoding, characters=characters, units=units, segments=segments)
        if len(_INFOS) >= _INFOS_KEPT:
            _INFOS.clear()
        _INFOS[key] = info
    return info
