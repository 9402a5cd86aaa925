"""Phone number normalisation: every common form becomes E.164 digits without "+".

Bangladeshi mobile numbers, nearly every number a send sees, take a fast path of plain
string work; anything else goes to the ``phonenumbers`` library, imported on first use.
Numbers under Bangladesh's country code (+880) must be mobiles: operator prefixes
013-019 and eight more digits. Landlines (``02-9876543``) and the retired ``011``
prefix cannot take an SMS and are rejected.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from mimgw.errors import InvalidMessageError

if TYPE_CHECKING:
    import phonenumbers

__all__ = ["BD_MOBILE_PREFIXES", "DEFAULT_REGION", "normalize_number", "region_of"]

DEFAULT_REGION = "BD"
BD_MOBILE_PREFIXES = frozenset({"13", "14", "15", "16", "17", "18", "19"})
"""Operator codes after the leading ``01`` / ``8801`` (011 was Citycell, closed in 2016)."""

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
_DIGITS = re.compile(r"\+?\d{3,17}")
# international forms of a Bangladeshi number, and national ones (leading 0) for region BD
_BD_INTERNATIONAL = re.compile(r"(?:\+|00)?880(\d+)")
_BD_NATIONAL = re.compile(r"0(1\d+)")
_BD_MOBILE = re.compile(r"1[3-9]\d{8}")


def _check_bd(national: str, number: str) -> str:
    """``national`` is what follows +880; return E.164 digits or say why it is no mobile."""
    if national.startswith("0"):  # "+880 (0)17…": a national prefix written after +880
        national = national[1:]
    if _BD_MOBILE.fullmatch(national):
        return "880" + national
    if national.startswith("11") and len(national) == 10:
        raise InvalidMessageError(
            f"not a mobile number: {number!r} (the Bangladeshi 011 prefix is no longer in service)"
        )
    if national[:1] == "1":
        raise InvalidMessageError(
            f"not a valid Bangladeshi mobile number: {number!r} "
            "(expected 01 and an operator digit 3-9, then 8 digits)"
        )
    raise InvalidMessageError(
        f"not a mobile number: {number!r} is a Bangladeshi landline or service number; "
        "SMS goes to mobiles (013-019)"
    )


@lru_cache(maxsize=4096)
def normalize_number(number: str, region: str = DEFAULT_REGION) -> str:
    """Return ``number`` as E.164 digits without "+", e.g. ``01712-345678`` -> ``8801712345678``.

    Bangladeshi numbers may be written nationally (``01…``), with the country code
    (``8801…``, ``+8801…``, ``008801…``), with spaces, dashes or brackets. Foreign
    numbers need their country code (``+385…``, ``00385…`` or bare digits).

    Raises :class:`InvalidMessageError` for anything that is not a valid number, and for
    a Bangladeshi number that is not a mobile (a landline, the retired 011 prefix).
    """
    if not isinstance(number, str):
        raise InvalidMessageError(f"phone number must be a string, not {type(number).__name__}")
    compact = _SEPARATORS.sub("", number.strip())
    if not compact:
        raise InvalidMessageError("phone number is empty")
    if not _DIGITS.fullmatch(compact):
        raise InvalidMessageError(f"not a phone number: {number!r}")
    # fast path: no phonenumbers call for Bangladeshi numbers
    match = _BD_INTERNATIONAL.fullmatch(compact)
    if match is not None:
        return _check_bd(match.group(1), number)
    if region == "BD":
        match = _BD_NATIONAL.fullmatch(compact)
        if match is not None:
            return _check_bd(match.group(1), number)
    return _slow_path(compact, number, region)


def _slow_path(compact: str, number: str, region: str) -> str:
    import phonenumbers

    candidates = [compact]
    if compact[0] != "+" and not compact.startswith("00"):
        # bare international digits such as 38598514674
        candidates.append("+" + compact)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(parsed):
            continue
        if parsed.country_code == 880:  # a landline (mobiles took the fast path)
            return _check_bd(str(parsed.national_number), number)
        return _e164(parsed)
    raise InvalidMessageError(f"not a valid phone number: {number!r}")


def _e164(parsed: phonenumbers.PhoneNumber) -> str:
    import phonenumbers

    e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164[1:]


def region_of(number: str) -> str:
    """The ISO region (``"BD"``, ``"GB"``…) of E.164 digits as :func:`normalize_number` returns.

    ``"ZZ"`` when the country code is unknown.
    """
    if number.startswith("880"):  # no cache to look in (a campaign's numbers are distinct)
        return "BD"
    return _foreign_region(number)


@lru_cache(maxsize=1024)
def _foreign_region(number: str) -> str:
    import phonenumbers

    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        return "ZZ"
    region: str | None = phonenumbers.region_code_for_number(parsed)
    return region or "ZZ"
