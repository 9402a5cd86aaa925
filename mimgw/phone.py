"""Phone number normalisation: every common form becomes E.164 digits without "+"."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from mimgw.errors import InvalidMessageError

__all__ = ["DEFAULT_REGION", "normalize_number"]

DEFAULT_REGION = "BD"
_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")


@lru_cache(maxsize=4096)
def normalize_number(number: str, region: str = DEFAULT_REGION) -> str:
    """Return ``number`` as E.164 digits without "+", e.g. ``01712-345678`` -> ``8801712345678``.

    Bangladeshi numbers may be written nationally (``01…``), with the country code
    (``8801…``, ``+8801…``, ``008801…``), with spaces, dashes or brackets. Foreign
    numbers need their country code (``+385…``, ``00385…`` or bare digits).

    Raises :class:`InvalidMessageError` for anything that is not a valid number.
    """
    if not isinstance(number, str):
        raise InvalidMessageError(f"phone number must be a string, not {type(number).__name__}")
    compact = _SEPARATORS.sub("", number.strip())
    if not compact:
        raise InvalidMessageError("phone number is empty")
    if not re.fullmatch(r"\+?\d{3,17}", compact):
        raise InvalidMessageError(f"not a phone number: {number!r}")
    candidates = [compact]
    if compact[0] != "+" and not compact.startswith("00"):
        # bare international digits such as 38598514674 or 8801712345678
        candidates.append("+" + compact)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return e164[1:]
    raise InvalidMessageError(f"not a valid phone number: {number!r}")
