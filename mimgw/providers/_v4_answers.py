"""How MiMSMS v4 answers are read: the body's ``statusCode`` decides (string or number,
never the HTTP status), ``trxnId`` names an accepted submit, and amounts may come as
numbers or grouped text (used by :mod:`.mimsms_v4`)."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from mimgw.errors import ProviderError
from mimgw.http import HttpResponse
from mimgw.providers._v4_codes import ERRORS, _fold
from mimgw.taxonomy import ErrorKind

__all__ = ["SUCCESS"]

SUCCESS = "200"
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_KNOWN_CODES = frozenset({SUCCESS, "401", *ERRORS})


def _documented_code(response: HttpResponse) -> str | None:
    """The body's ``statusCode`` when the body is a JSON object carrying a documented one."""
    try:
        body = response.json_object()
    except ProviderError:
        return None
    for key, value in body.items():
        if str(key).strip().lower() == "statuscode":
            if isinstance(value, bool) or not isinstance(value, str | int):
                return None
            code = str(value).strip().lstrip("0") or "0"
            return code if code in _KNOWN_CODES else None
    return None


def _succeeded(response: HttpResponse) -> dict[str, Any]:
    """The body (keys lowercased) when its ``statusCode`` is 200; else the mapped error."""
    data = response.json_object()
    body = {str(k).strip().lower(): v for k, v in data.items()}
    value = body.get("statuscode")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise response.bad("no statusCode")
    code = str(value).strip()
    if not re.fullmatch(r"-?\d{1,9}", code):
        raise response.bad("statusCode is not a number")
    code = str(int(code))
    if code != SUCCESS:
        raise _failure(response, code, body)
    return body


def _accepted(response: HttpResponse) -> str:
    """The ``trxnId`` of an accepted submit."""
    data = response.json_object()
    trxn_id = data.get("trxnId")
    if data.get("statusCode") == SUCCESS and isinstance(trxn_id, str) and trxn_id.strip():
        return trxn_id.strip()  # the documented spelling; any other goes the long way
    trxn_id = _succeeded(response).get("trxnid")
    if isinstance(trxn_id, bool) or not isinstance(trxn_id, str | int):
        raise response.bad("statusCode 200 without a trxnId")
    text = str(trxn_id).strip()
    if not text:
        raise response.bad("statusCode 200 without a trxnId")
    return text


def _failure(response: HttpResponse, code: str, body: dict[str, Any]) -> ProviderError:
    result = body.get("responseresult")
    said = result.strip()[:200] if isinstance(result, str) else ""
    if code == "401":
        word = body.get("status")
        folded = _fold(f"{said} {word if isinstance(word, str) else ''}")
        if "black" in folded or "block" in folded:
            kind, why = (
                ErrorKind.ACCESS_DENIED,
                "source IP address is blacklisted at the gateway; ask the MiMSMS account "
                "manager to lift it",
            )
        else:
            kind, why = ErrorKind.AUTH, "username or api key refused"
    elif code in ERRORS:
        kind, why = ERRORS[code]
    else:
        kind, why = ErrorKind.BAD_RESPONSE, "undocumented statusCode"
    detail = f"{why} (gateway said {said!r})" if said else why
    return response.error(kind, detail, code=code)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int | float):  # a JSON number
        return Decimal(str(value)) if math.isfinite(value) else None
    text = value.strip()
    if _GROUPED.fullmatch(text):  # "1,234.50"
        text = text.replace(",", "")
    if not _DECIMAL.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None
