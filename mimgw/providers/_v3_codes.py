"""Code tables of the legacy MiMSMS v3 APIs, shared by both backends and their simulators.

Everything a gateway code means for us lives here, as data: the plain API's
numeric answers, the DR-pull status words, and the Basic-auth JSON API's status
groups, statuses, error groups and GSM error codes (with their "permanent" flag),
and the small functions that read a status or error object against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import SecretStr

from mimgw.errors import ConfigurationError
from mimgw.taxonomy import ErrorKind, State

__all__ = [
    "DEFAULT_RETRIES",
    "DR_STATES",
    "ERROR_GROUPS",
    "GSM_ERRORS",
    "LEGACY_CODES",
    "STATUSES",
    "STATUS_BY_NAME",
    "STATUS_GROUPS",
    "GsmError",
    "LegacyState",
    "Status",
    "as_int",
    "classify",
    "credential",
    "dr_state",
    "failure",
    "legacy_error",
    "retries_for",
]

DEFAULT_RETRIES = 3
"""Resubmissions a report allows after a failure that is not permanent."""

# -- plain query API -------------------------------------------------------------------------

LEGACY_CODES: dict[int, tuple[ErrorKind, str]] = {
    -2: (ErrorKind.INSUFFICIENT_BALANCE, "not enough credits"),
    -5: (ErrorKind.AUTH, "username or password refused"),
    -10: (ErrorKind.AUTH, "username missing"),
    -11: (ErrorKind.AUTH, "password missing"),
    -13: (ErrorKind.RECIPIENT_REJECTED, "destination number refused"),
    # bare return values of the delivery-report pull
    5: (ErrorKind.AUTH, "username or password refused"),
    10: (ErrorKind.AUTH, "username missing"),
    11: (ErrorKind.AUTH, "password missing"),
}
"""Numeric answers of the plain API that are errors, as (kind, explanation)."""


def legacy_error(code: int) -> tuple[ErrorKind, str]:
    """What a non-zero plain-API code means.

    Unlisted negative codes are refusals (the API's convention: negative is an
    error, so nothing was sent): ``REQUEST_REJECTED`` with the code kept. An
    unlisted positive code is no documented answer at all: ``BAD_RESPONSE``.
    """
    known = LEGACY_CODES.get(code)
    if known is not None:
        return known
    if code < 0:
        return ErrorKind.REQUEST_REJECTED, "refused with an unlisted error code"
    return ErrorKind.BAD_RESPONSE, "unlisted status code"


class LegacyState(NamedTuple):
    state: State
    permanent: bool | None


DR_STATES: dict[str, LegacyState] = {
    "DELIVERED": LegacyState(State.DELIVERED, None),
    "DELIVRD": LegacyState(State.DELIVERED, None),
    "NOT_SENT": LegacyState(State.REJECTED, False),
    "ACCEPTED": LegacyState(State.ACCEPTED, None),
    "ACCEPTD": LegacyState(State.ACCEPTED, None),
    "BUFFERED": LegacyState(State.PENDING, None),
    "ENROUTE": LegacyState(State.PENDING, None),
    "PENDING": LegacyState(State.PENDING, None),
    "SENT": LegacyState(State.SENT, None),
    "EXPIRED": LegacyState(State.EXPIRED, False),
    "EXPIRD": LegacyState(State.EXPIRED, False),
    "REJECTED": LegacyState(State.REJECTED, True),
    "REJECTD": LegacyState(State.REJECTED, True),
    "UNDELIVERABLE": LegacyState(State.UNDELIVERABLE, False),
    "UNDELIV": LegacyState(State.UNDELIVERABLE, False),
    "FAILED": LegacyState(State.UNDELIVERABLE, False),
}
"""DR-pull ``status`` words. The document shows only ``NOT_SENT``; the rest are the
usual SMSC words, so that a report in any of them is classified rather than lost."""


def dr_state(word: str) -> LegacyState | None:
    """Classify a DR-pull status word (case, spaces and dashes tolerated)."""
    key = "_".join(word.strip().upper().replace("-", " ").split())
    return DR_STATES.get(key)


# -- Basic-auth JSON API ---------------------------------------------------------------------

STATUS_GROUPS: dict[int, tuple[str, State]] = {
    0: ("ACCEPTED", State.ACCEPTED),
    1: ("PENDING", State.PENDING),
    2: ("UNDELIVERABLE", State.UNDELIVERABLE),
    3: ("DELIVERED", State.DELIVERED),
    4: ("EXPIRED", State.EXPIRED),
    5: ("REJECTED", State.REJECTED),
}


@dataclass(frozen=True, slots=True)
class Status:
    """One row of the status table, with what it means for us."""

    id: int
    group: int
    name: str
    state: State
    submit_error: ErrorKind | None = None
    """For group 5 (REJECTED): the error a submit answered with this status raises."""
    permanent: bool | None = None
    """For failures without a GSM error: whether resubmitting is pointless."""
    action: str | None = None
    """The table's Action column (``NULL`` there is ``None`` here)."""
    redeliver: bool = True
    """Whether a report in this status allows automatic redelivery through the same
    account. False where the cause is the account or the sending itself (no credits,
    prepaid package expired, no route, flooding): resending there cannot help."""


_P, _S = State.PENDING, State.SENT
_U, _D, _E, _R = State.UNDELIVERABLE, State.DELIVERED, State.EXPIRED, State.REJECTED
_K = ErrorKind
_NO = False  # Status.redeliver
_MANAGER = "Contact account manager"
_UNLIST_SENDER = "Remove sender from blacklist"
_UNLIST_DEST = "Remove destination from blacklist"
_TOP_UP = "Top-Up your account to extend the validity period"
_STOP = "STOP SPAMMING"

STATUSES: dict[int, Status] = {
    s.id: s
    for s in (
        Status(1, 1, "PENDING_TIME_VIOLATION", _P),
        # handed to the operator, not yet to the handset: not a final delivery
        Status(2, 3, "DELIVERED_TO_OPERATOR", _S),
        # group 1: out of the gateway, but no report from the network yet
        Status(3, 1, "PENDING_WAITING_DELIVERY", _P),
        Status(4, 2, "UNDELIVERABLE_REJECTED_OPERATOR", _U, permanent=False),
        Status(5, 3, "DELIVERED_TO_HANDSET", _D),
        Status(6, 5, "REJECTED_NETWORK", _R, _K.ACCESS_DENIED, True, _MANAGER),
        Status(7, 1, "PENDING_ENROUTE", _P),
        Status(8, 5, "REJECTED_PREFIX_MISSING", _R, _K.RECIPIENT_REJECTED, True),
        Status(9, 2, "UNDELIVERABLE_NOT_DELIVERED", _U, permanent=False),
        Status(10, 5, "REJECTED_DND", _R, _K.RECIPIENT_REJECTED, True),
        Status(11, 5, "REJECTED_SOURCE", _R, _K.SENDER_REJECTED, True),
        Status(12, 5, "REJECTED_NOT_ENOUGH_CREDITS", _R, _K.INSUFFICIENT_BALANCE, False, None, _NO),
        Status(13, 5, "REJECTED_SENDER", _R, _K.SENDER_REJECTED, True, _UNLIST_SENDER),
        Status(14, 5, "REJECTED_DESTINATION", _R, _K.RECIPIENT_REJECTED, True, _UNLIST_DEST),
        Status(15, 4, "EXPIRED_EXPIRED", _E, permanent=False),
        Status(16, 5, "REJECTED_NOT_REACHABLE", _R, _K.PROVIDER_UNAVAILABLE, False),
        Status(
            17,
            5,
            "REJECTED_PREPAID_PACKAGE_EXPIRED",
            _R,
            _K.INSUFFICIENT_BALANCE,
            False,
            _TOP_UP,
            _NO,
        ),
        Status(18, 5, "REJECTED_DESTINATION_NOT_REGISTERED", _R, _K.RECIPIENT_REJECTED, True),
        Status(19, 5, "REJECTED_ROUTE_NOT_AVAILABLE", _R, _K.ACCESS_DENIED, False, _MANAGER, _NO),
        # a flood rejection: retrying it, here or elsewhere, only adds to the flood
        Status(20, 5, "REJECTED_FLOODING_FILTER", _R, _K.REQUEST_REJECTED, False, _STOP, _NO),
        Status(21, 5, "REJECTED_SYSTEM_ERROR", _R, _K.PROVIDER_UNAVAILABLE, False),
        Status(22, 4, "EXPIRED_UNKNOWN", _E, permanent=False),
        Status(23, 5, "REJECTED_DUPLICATE_MESSAGE_ID", _R, _K.REQUEST_REJECTED, True),
        Status(24, 5, "REJECTED_INVALID_UDH", _R, _K.CONTENT_REJECTED, True),
        Status(25, 5, "REJECTED_MESSAGE_TOO_LONG", _R, _K.CONTENT_REJECTED, True),
    )
}
"""Status id -> row. Classification goes by id first, then group, then name."""

STATUS_BY_NAME: dict[str, Status] = {s.name: s for s in STATUSES.values()}

ERROR_GROUPS: dict[int, str] = {
    0: "OK",
    1: "HANDSET_ERRORS",
    2: "USER_ERRORS",
    3: "OPERATOR_ERRORS",
}


class GsmError(NamedTuple):
    name: str
    permanent: bool | None


def _gsm(rows: str) -> dict[int, GsmError]:
    table: dict[int, GsmError] = {}
    for row in rows.split():
        code, name, flag = row.split(":")
        table[int(code)] = GsmError(name, None if flag == "-" else flag == "1")
    return table


GSM_ERRORS: dict[int, GsmError] = _gsm(
    """
    0:NO_ERROR:- 1:EC_UNKNOWN_SUBSCRIBER:1 5:EC_UNIDENTIFIED_SUBSCRIBER:0
    6:EC_ABSENT_SUBSCRIBER_SM:0 9:EC_ILLEGAL_SUBSCRIBER:1
    10:EC_BEARER_SERVICE_NOT_PROVISIONED:0 11:EC_TELESERVICE_NOT_PROVISIONED:1
    12:EC_ILLEGAL_EQUIPMENT:1 13:EC_CALL_BARRED:0 20:EC_SS_INCOMPATIBILITY:0
    21:EC_FACILITY_NOT_SUPPORTED:0 27:EC_ABSENT_SUBSCRIBER:0
    31:EC_SUBSCRIBER_BUSY_FOR_MT_SMS:0 32:EC_SM_DELIVERY_FAILURE:0
    33:EC_MESSAGE_WAITING_LIST_FULL:0 34:EC_SYSTEM_FAILURE:0 35:EC_DATA_MISSING:1
    36:EC_UNEXPECTED_DATA_VALUE:1 51:EC_RESOURCE_LIMITATION:0 71:EC_UNKNOWN_ALPHABET:1
    72:EC_USSD_BUSY:1 255:EC_UNKNOWN_ERROR:1 256:EC_SM_DF_memoryCapacityExceeded:0
    257:EC_SM_DF_equipmentProtocolError:0 258:EC_SM_DF_equipmentNotSM_Equipped:0
    259:EC_SM_DF_unknownServiceCentre:0 260:EC_SM_DF_sc_Congestion:0
    261:EC_SM_DF_invalidSME_Address:0 262:EC_SM_DF_subscriberNotSC_Subscriber:0
    500:EC_PROVIDER_GENERAL_ERROR:0 502:EC_NO_RESPONSE:0
    503:EC_SERVICE_COMPLETION_FAILURE:0 504:EC_UNEXPECTED_RESPONSE_FROM_PEER:0
    507:EC_MISTYPED_PARAMETER:0 508:EC_NOT_SUPPORTED_SERVICE:0
    509:EC_DUPLICATED_INVOKE_ID:0 511:EC_INITIATING_RELEASE:0
    1024:EC_OR_appContextNotSupported:0 1025:EC_OR_invalidDestinationReference:0
    1026:EC_OR_invalidOriginatingReference:0 1027:EC_OR_encapsulatedAC_NotSupported:0
    1028:EC_OR_transportProtectionNotAdequate:0 1029:EC_OR_noReasonGiven:0
    1030:EC_OR_potentialVersionIncompatibility:0 1031:EC_OR_remoteNodeNotReachable:0
    1152:EC_NNR_noTranslationForAnAddressOfSuchNature:0
    1153:EC_NNR_noTranslationForThisSpecificAddress:0 1154:EC_NNR_subsystemCongestion:0
    1155:EC_NNR_subsystemFailure:0 1156:EC_NNR_unequippedUser:0 1157:EC_NNR_MTPfailure:0
    1158:EC_NNR_networkCongestion:0 1159:EC_NNR_unqualified:0
    1160:EC_NNR_errorInMessageTransportXUDT:0 1161:EC_NNR_errorInLocalProcessingXUDT:0
    1162:EC_NNR_destinationCannotPerformReassemblyXUDT:0 1163:EC_NNR_SCCPfailure:0
    1164:EC_NNR_hopCounterViolation:0 1165:EC_NNR_segmentationNotSupported:0
    1166:EC_NNR_segmentationFailure:0 1281:EC_UA_userSpecificReason:0
    1282:EC_UA_userResourceLimitation:0 1283:EC_UA_resourceUnavailable:0
    1284:EC_UA_applicationProcedureCancellation:0 1536:EC_PA_providerMalfunction:0
    1537:EC_PA_supportingDialogOrTransactionReleased:0 1538:EC_PA_ressourceLimitation:0
    1539:EC_PA_maintenanceActivity:0 1540:EC_PA_versionIncompatibility:0
    1541:EC_PA_abnormalMapDialog:0 1792:EC_NC_abnormalEventDetectedByPeer:0
    1793:EC_NC_responseRejectedByPeer:0 1794:EC_NC_abnormalEventReceivedFromPeer:0
    1795:EC_NC_messageCannotBeDeliveredToPeer:0 1796:EC_NC_providerOutOfInvoke:0
    2048:EC_TIME_OUT:0 2049:EC_IMSI_BLACKLISTED:1 2050:EC_DEST_ADDRESS_BLACKLISTED:1
    2051:EC_InvalidMscAddress:0 4096:EC_invalidPduFurmat:1 4097:EC_NotSubmittedToGMSC:1
    4100:EC_Cancelled:1 4101:EC_ValidityExpired:1 4102:EC_NotSubmittedToSmppChannel:0
    """
)
"""GSM error id -> (short name, permanent). ``None``: the table gives no flag (NO_ERROR)."""


def retries_for(state: State, permanent: bool | None, row: Status | None = None) -> int:
    """How many resubmissions a report allows: none unless a failure that is not permanent,
    and none for a status whose cause a resend through the same account cannot cure."""
    if row is not None and not row.redeliver:
        return 0
    if state in (State.UNDELIVERABLE, State.EXPIRED, State.REJECTED) and permanent is False:
        return DEFAULT_RETRIES
    return 0


_GROUP_BY_NAME = dict(STATUS_GROUPS.values())


def classify(status: Mapping[str, Any]) -> tuple[State, Status | None, int | None, str]:
    """(state, table row, status id, label) of a status object.

    By status id first, then the exact status name, then the group id, then the
    group name. The name comes before the group because it is more specific:
    ``DELIVERED_TO_OPERATOR`` is in the DELIVERED group but is not a delivery.
    """
    code = as_int(status.get("id"))
    name = status.get("name")
    name = name.strip().upper() if isinstance(name, str) else ""
    row = STATUSES.get(code) if code is not None else None
    if row is None and name:
        row = STATUS_BY_NAME.get(name)
    label = name or (row.name if row else "") or (f"status {code}" if code is not None else "")
    if row is not None:
        return row.state, row, code if code is not None else row.id, label or row.name
    group = as_int(status.get("groupId"))
    if group in STATUS_GROUPS:
        return STATUS_GROUPS[group][1], None, code, label or STATUS_GROUPS[group][0]
    group_name = status.get("groupName")
    if isinstance(group_name, str) and group_name.strip().upper() in _GROUP_BY_NAME:
        return _GROUP_BY_NAME[group_name.strip().upper()], None, code, label or group_name
    return State.UNKNOWN, None, code, label or "no status"


def failure(error: object, row: Status | None, label: str) -> tuple[str, bool | None]:
    """Reason and permanence of a failed message: the GSM error when there is one."""
    if isinstance(error, dict):
        code = as_int(error.get("id"))
        if code:
            known = GSM_ERRORS.get(code)
            name = error.get("name")
            reason = name if isinstance(name, str) and name else (known.name if known else "")
            flag = error.get("permanent")
            permanent = flag if isinstance(flag, bool) else (known.permanent if known else None)
            return reason or f"GSM error {code}", permanent
    return label, row.permanent if row else None


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def credential(value: str | SecretStr | None, field: str, provider: str) -> str:
    """A credential as a plain string; blank or missing is a configuration error."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{provider}: {field} must be a non-empty string")
    return value.strip()
