"""The carrier's formats, in one place: its times, its Q.850 cause names, its CDR record, its
live-call entry and its webhook payload.

The carrier shows a time as ``YYYY-MM-DD HH:MM:SS`` in its own time zone (here: the
configured ``api.timezone``, an IANA name), ``""`` when there is none, and takes date filters
in that form too (or as a bare ``YYYY-MM-DD``, or as ISO-8601 with an offset). The gateway
itself stores and computes in UTC (ISO-8601 with milliseconds, ``calls/record.py``); these
functions convert at the API's edge. Nothing here touches the network or the store.
"""
from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

CARRIER_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Q.850 cause code -> the name the carrier (a FreeSWITCH platform) shows in a CDR's ``cause``.
CAUSE_NAMES: dict[int, str] = {
    0: "NONE", 1: "UNALLOCATED_NUMBER", 2: "NO_ROUTE_TRANSIT_NET", 3: "NO_ROUTE_DESTINATION",
    6: "CHANNEL_UNACCEPTABLE", 7: "CALL_AWARDED_DELIVERED", 16: "NORMAL_CLEARING", 17: "USER_BUSY",
    18: "NO_USER_RESPONSE", 19: "NO_ANSWER", 20: "SUBSCRIBER_ABSENT", 21: "CALL_REJECTED",
    22: "NUMBER_CHANGED", 23: "REDIRECTION_TO_NEW_DESTINATION", 25: "EXCHANGE_ROUTING_ERROR",
    27: "DESTINATION_OUT_OF_ORDER", 28: "INVALID_NUMBER_FORMAT", 29: "FACILITY_REJECTED",
    30: "RESPONSE_TO_STATUS_ENQUIRY", 31: "NORMAL_UNSPECIFIED", 34: "NORMAL_CIRCUIT_CONGESTION",
    38: "NETWORK_OUT_OF_ORDER", 41: "NORMAL_TEMPORARY_FAILURE", 42: "SWITCH_CONGESTION",
    43: "ACCESS_INFO_DISCARDED", 44: "REQUESTED_CHAN_UNAVAIL", 45: "PRE_EMPTED",
    50: "FACILITY_NOT_SUBSCRIBED", 52: "OUTGOING_CALL_BARRED", 54: "INCOMING_CALL_BARRED",
    57: "BEARERCAPABILITY_NOTAUTH", 58: "BEARERCAPABILITY_NOTAVAIL", 63: "SERVICE_UNAVAILABLE",
    65: "BEARERCAPABILITY_NOTIMPL", 66: "CHAN_NOT_IMPLEMENTED", 69: "FACILITY_NOT_IMPLEMENTED",
    79: "SERVICE_NOT_IMPLEMENTED", 81: "INVALID_CALL_REFERENCE", 88: "INCOMPATIBLE_DESTINATION",
    95: "INVALID_MSG_UNSPECIFIED", 96: "MANDATORY_IE_MISSING", 97: "MESSAGE_TYPE_NONEXIST",
    98: "WRONG_MESSAGE", 99: "IE_NONEXIST", 100: "INVALID_IE_CONTENTS", 101: "WRONG_CALL_STATE",
    102: "RECOVERY_ON_TIMER_EXPIRE", 103: "MANDATORY_IE_LENGTH_ERROR", 111: "PROTOCOL_ERROR",
    127: "INTERWORKING",
}
UNKNOWN_CAUSE = "UNKNOWN"       # a code outside the table (its number is still in cause_code)

# The gateway's call state -> the carrier's live-call ``state`` (a FreeSWITCH channel state):
# the extension's channel is set up and rings, then runs the dialplan that dials the number
# (and, once that answers, stays in it, bridged: the carrier's example CS_EXECUTE).
LIVE_STATES: dict[str, str] = {
    "originating": "CS_INIT", "ext_ringing": "CS_ROUTING", "ext_answered": "CS_EXECUTE",
    "dialing": "CS_EXECUTE", "number_ringing": "CS_EXECUTE", "number_answered": "CS_EXECUTE",
    "ended": "CS_HANGUP",
}

# The record's times: each is shown in the carrier's format, its ISO-8601 UTC copy as <name>_utc.
TIME_FIELDS = ("time_started", "time_ext_answered", "time_answered", "time_ended")

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                        r"(Z|[+-][0-9]{2}:?[0-9]{2})?")
DATE_RULE = ("YYYY-MM-DD, YYYY-MM-DD HH:MM:SS (in api.timezone) or ISO-8601 with an offset "
             "(2021-02-18T10:20:58+00:00)")
# The dates a filter may name: wide enough for "from the beginning" and "until further notice",
# narrow enough that no time zone or end-of-day step leaves what a datetime can hold.
DATE_RANGE = (date(1900, 1, 1), date(9998, 12, 31))
RANGE_RULE = f"outside the supported range ({DATE_RANGE[0]} to {DATE_RANGE[1]})"


class DateOutOfRange(ValueError):
    """A well-formed date outside ``DATE_RANGE``."""


def zone(name: str) -> tzinfo:
    """The time zone ``api.timezone`` names: UTC needs no tz database; any other IANA name is
    read from the host's (Debian: the tzdata package). ZoneInfoNotFoundError, ValueError or
    OSError when it does not name one."""
    if name == "UTC":
        return UTC
    return zoneinfo.ZoneInfo(name)


def _instant(value: str | float | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def carrier_time(value: str | float | datetime | None, zone: tzinfo) -> str:
    """A time as the carrier shows it: ``YYYY-MM-DD HH:MM:SS`` in ``zone`` (fractions of a
    second cut off), ``""`` for none. Takes the record's ISO-8601 text, unix seconds, or a
    datetime (naive ones are UTC)."""
    if value is None or value == "":
        return ""
    return _carrier_time(value, zone)


@functools.lru_cache(maxsize=4096)
def _carrier_time(value: str | float | datetime, zone: tzinfo) -> str:
    """(A call's few times are shown again in each of its records and payloads: formatted once.)"""
    return _instant(value).astimezone(zone).strftime(CARRIER_TIME_FORMAT)


def date_bound(value: str, zone: tzinfo, *, end: bool) -> str:
    """A date filter as the UTC ISO-8601 text the store compares ``time_started`` with.

    ``value`` is ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS]`` (in ``zone``) or ISO-8601 with an
    offset. A start is inclusive. An end is inclusive too, to the second (a bare date: the
    whole day), so the bound returned for an end is exclusive: the next second, or the next
    day's midnight. ValueError if ``value`` is none of those; DateOutOfRange if its date is
    outside ``DATE_RANGE``."""
    if _DATE.fullmatch(value):
        day = date.fromisoformat(value)
        _in_range(day)
        if end:
            day += timedelta(days=1)
        moment = datetime.combine(day, time(0), zone)
    elif _DATE_TIME.fullmatch(value):
        moment = datetime.fromisoformat(value)
        _in_range(moment.date())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        if end:
            moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    else:
        raise ValueError(f"not {DATE_RULE}")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _in_range(day: date) -> None:
    if not DATE_RANGE[0] <= day <= DATE_RANGE[1]:
        raise DateOutOfRange(RANGE_RULE)


def cause_code(cause: Any) -> int | None:
    """The record's cause (Q.850 code as text, e.g. "16") as a number; None if it has none."""
    if isinstance(cause, int):
        return cause
    if isinstance(cause, str) and cause.strip().isdigit():
        return int(cause.strip())
    return None


def cause_name(cause: Any) -> str:
    """The carrier's cause name (NORMAL_CLEARING, USER_BUSY, NO_ANSWER...); "" when none."""
    code = cause_code(cause)
    if code is None:
        return ""
    return CAUSE_NAMES.get(code, UNKNOWN_CAUSE)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def cdr_record(record: dict[str, Any], zone: tzinfo, *, recording_url: str = "") -> dict[str, Any]:
    """A call record (``calls/record.py``) as the carrier's CDR: its keys first, in its order
    and with its meanings (``cause`` a name, times in its format, ``""`` for what is not
    there), then the gateway's other fields as extra keys: ``cause_code`` (the number) and
    every time's ISO-8601 UTC copy as ``<time>_utc``. ``recording_url``: the recording's link
    (``calls/recordings.py``), "" when there is none."""
    call_id = record.get("call_id")
    carrier = {
        "id": call_id,
        "call_id": call_id,
        "sip_call_id": _text(record.get("sip_call_id")),
        "cause": cause_name(record.get("cause")),
        "cause_code": cause_code(record.get("cause")),
        "duration": record.get("duration") or 0,
        "billsec": record.get("billsec") or 0,
        "direction": record.get("direction") or "outbound",
        "recording_url": recording_url,
        "extension": _text(record.get("extension")),
        "from_number": _text(record.get("from_number")),
        "to_number": _text(record.get("to_number")),
        "receive_dest": "",                       # no ring groups or queues in click-to-call
        "hotline": _text(record.get("hotline")),
        "time_started": carrier_time(record.get("time_started"), zone),
        "time_answered": carrier_time(record.get("time_answered"), zone),
        "time_ended": carrier_time(record.get("time_ended"), zone),
        "status": _text(record.get("status")),
        "customer_id": record.get("customer_id"),
    }
    extra = {k: v for k, v in record.items() if k not in carrier and k not in TIME_FIELDS}
    times = {name: carrier_time(record.get(name), zone) for name in TIME_FIELDS if name not in carrier}
    utc = {f"{name}_utc": record.get(name) for name in TIME_FIELDS}
    return {**carrier, **extra, **times, **utc}


# The carrier's webhook payload ("Event Hook Data"): its keys, in its order.
HOOK_KEYS = ("call_id", "sip_call_id", "domain", "direction", "from_number", "to_number", "hotline", "state",
             "duration", "billsec", "recording_url", "time_started", "time_answered", "time_ended", "customer_id")
HOOK_LEGS = ("extension", "number")        # which leg a ringing or answered event is about


def hook_payload(record: dict[str, Any], event: str, zone: tzinfo, *, leg: str | None = None,
                 recording_url: str = "") -> dict[str, Any]:
    """A webhook's payload for ``event`` (ringing, answered, hangup, cdr) about the call
    ``record``: the carrier's keys first (``state`` is the event's name, ``domain`` the
    tenant, times in its format), ``leg`` for ringing and answered, then the carrier's CDR
    fields (``cdr_record``: ``cause`` a Q.850 name, ``cause_code``, ``status``...) and the
    gateway's other fields as extras -- its own call state as ``call_state``, every time's
    ISO-8601 UTC copy as ``<time>_utc``. The same conventions for every event, so a ``cdr``
    payload holds the CDR ``GET /v1/cdr/{id}`` answers, plus the payload's keys."""
    cdr = cdr_record(record, zone, recording_url=recording_url)
    payload: dict[str, Any] = {
        "call_id": cdr["call_id"],
        "sip_call_id": cdr["sip_call_id"],
        "domain": _text(record.get("tenant")),
        "direction": cdr["direction"],
        "from_number": cdr["from_number"],
        "to_number": cdr["to_number"],
        "hotline": cdr["hotline"],
        "state": event,
        "duration": int(cdr["duration"]),
        "billsec": int(cdr["billsec"]),
        "recording_url": cdr["recording_url"],
        "time_started": cdr["time_started"],
        "time_answered": cdr["time_answered"],
        "time_ended": cdr["time_ended"],
        "customer_id": cdr["customer_id"],
    }
    if leg is not None:
        payload["leg"] = leg
    extra = {k: v for k, v in cdr.items() if k not in payload and k not in ("tenant", "state")}
    return {**payload, **extra, "call_state": record.get("state")}


def live_call(record: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A live call's record as an entry of the carrier's ``GET /v1/call`` list, with the
    gateway's own state (``call_state``) and the start in UTC (``created_time_utc``) as extras."""
    state = record.get("state")
    return {
        "call_id": record.get("call_id"),
        "context": record.get("tenant"),
        "created_time": carrier_time(record.get("time_started"), zone),
        "destination": _text(record.get("to_number")),
        "direction": record.get("direction") or "outbound",
        "ip": "",
        "source": _text(record.get("extension")),
        "state": LIVE_STATES.get(str(state), "CS_EXECUTE"),
        "hotline": _text(record.get("hotline")),
        "customer_id": record.get("customer_id"),
        "call_state": state,
        "created_time_utc": record.get("time_started"),
    }


__all__ = ["CAUSE_NAMES", "CARRIER_TIME_FORMAT", "DATE_RANGE", "DATE_RULE", "HOOK_KEYS", "HOOK_LEGS", "LIVE_STATES",
           "TIME_FIELDS", "UNKNOWN_CAUSE", "DateOutOfRange", "carrier_time", "cause_code", "cause_name", "cdr_record",
           "date_bound", "hook_payload", "live_call", "zone"]
