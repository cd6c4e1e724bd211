"""The call record: the one definition of what a call looks like from outside.

``FIELDS`` lists every field once, with its type, its allowed values and how it is read off
a ``Call``. From it come the record itself (``GET /v1/calls/{id}``, CDRs, webhook payloads),
the store's columns and the OpenAPI schema; a test pins the store's first migration, written
before this module, to the same names.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from .call import Call, CallState, CdrStatus, ExtFailure, HangupBy, NumberFailure
from .legs import ParkOutcome, SupervisionMode


def iso(timestamp: float | None) -> str | None:
    """Times are ISO-8601 in UTC with milliseconds (e.g. 2026-11-30T09:35:45.123+00:00)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str                          # JSON type: string, integer, boolean or array
    read: Callable[[Call], Any]
    description: str = ""
    values: tuple[str, ...] = ()       # the only values it takes (besides null, if nullable)
    nullable: bool = True
    format: str | None = None
    items: dict[str, Any] | None = None   # an array's item schema

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.kind}
        if self.items is not None:
            schema["items"] = self.items
        if self.format:
            schema["format"] = self.format
        if self.values:
            schema["enum"] = [*self.values, None] if self.nullable else list(self.values)
        if self.nullable:
            schema["nullable"] = True
        if self.description:
            schema["description"] = self.description
        return schema


_STR: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _list(name: str, read: Callable[[Call], list[dict[str, Any]]], description: str,
          properties: dict[str, Any]) -> Field:
    """A list of objects (call control's); empty when nothing was asked."""
    return Field(name, "array", read, description, nullable=False,
                 items={"type": "object", "properties": properties, "required": list(properties)})


def _time(name: str, read: Callable[[Call], float | None], description: str, *,
          nullable: bool = True) -> Field:
    return Field(name, "string", lambda c: iso(read(c)), description, nullable=nullable, format="date-time")


FIELDS: tuple[Field, ...] = (
    Field("call_id", "string", lambda c: c.call_id, "the id click2call returned", nullable=False),
    Field("tenant", "string", lambda c: c.tenant, "the tenant (domain) that placed the call", nullable=False),
    Field("direction", "string", lambda c: "outbound", values=("outbound",), nullable=False),
    Field("extension", "string", lambda c: c.ext, "the agent's extension", nullable=False),
    Field("from_number", "string", lambda c: c.ext, "the calling party: the extension", nullable=False),
    Field("to_number", "string", lambda c: c.phone, "the number dialed (digits only)", nullable=False),
    Field("hotline", "string", lambda c: c.hotline, "the hotline the number was called from", nullable=False),
    Field("trunk", "string", lambda c: c.trunk, "the hotline's trunk endpoint", nullable=False),
    Field("state", "string", lambda c: c.state.value, values=tuple(s.value for s in CallState), nullable=False),
    Field("status", "string", lambda c: c.status, "the carrier's CDR status, once ended",
          values=get_args(CdrStatus)),
    Field("cause", "string", lambda c: c.cause, "Q.850 hangup cause"),
    Field("cause_txt", "string", lambda c: c.cause_txt),
    Field("hangup_by", "string", lambda c: c.hangup_by, "who hung up first", values=get_args(HangupBy)),
    Field("ext_failure", "string", lambda c: c.ext_failure, "why the extension was not connected",
          values=get_args(ExtFailure)),
    Field("number_failure", "string", lambda c: c.number_failure, "why the number was not reached",
          values=get_args(NumberFailure)),
    Field("sip_call_id", "string", lambda c: c.sip_call_id,
          "SIP Call-ID of the trunk leg (PJSIP: CHANNEL(pjsip,call-id); chan_sip: SIPCALLID)"),
    Field("ext_channel", "string", lambda c: c.ext_channel),
    Field("trunk_channel", "string", lambda c: c.trunk_channel),
    _time("time_started", lambda c: c.started_at, "when the request arrived", nullable=False),
    _time("time_ext_answered", lambda c: c.ext_answered_at, "when the extension answered"),
    _time("time_answered", lambda c: c.number_answered_at, "when the called number answered"),
    _time("time_ended", lambda c: c.ended_at, "when the call ended"),
    Field("duration", "integer", lambda c: c.duration, "seconds from request to end", nullable=False),
    Field("billsec", "integer", lambda c: c.billsec, "seconds from the number's answer to end", nullable=False),
    Field("pbx", "string", lambda c: c.pbx, "the PBX the call was placed on"),
    Field("ended_unobserved", "boolean", lambda c: c.ended_unobserved,
          "the call ended while the gateway could not observe it (a lost AMI link, a restart): its "
          "state is the last one known, time_ended when it was last known up, billsec a lower bound",
          nullable=False),
    Field("customer_id", "string", lambda c: c.customer_id,
          "the CRM's customer the call is about (v2 id, v1 customer_id), if given"),
    Field("final_ext", "string", lambda c: c.final_ext,
          "who the customer talked to last: the extension of the last answered customer (bleg) "
          "transfer, else `extension`"),
    _list("transfers", lambda c: [{"ext": t.ext, "legs": t.legs, "time": iso(t.time), "answered": t.answered}
                                  for t in c.transfers],
          "each transfer asked: `legs` bleg moves the customer to `ext`, aleg the agent; `answered` "
          "null while `ext` rings", {"ext": _STR, "legs": _enum("aleg", "bleg"), "time": _TIME,
                                     "answered": {"type": "boolean", "nullable": True}}),
    _list("parks", lambda c: [{"legs": p.legs, "time": iso(p.time), "outcome": p.outcome,
                               "time_ended": iso(p.time_ended)} for p in c.parks],
          "each park: `legs` is the party that waited (bleg the customer, aleg the agent); `outcome` "
          "null while it waits", {"legs": _enum("aleg", "bleg"), "time": _TIME,
                                  "outcome": {**_enum(*get_args(ParkOutcome)), "nullable": True},
                                  "time_ended": {**_TIME, "nullable": True}}),
    _list("supervisors", lambda c: [{"ext": s.ext, "mode": s.mode, "time_started": iso(s.time_started),
                                     "time_ended": iso(s.time_ended)} for s in c.supervisors],
          "each supervisor asked: `time_started` when the PBX started spying on the agent (null if "
          "the supervisor never answered)", {"ext": _STR, "mode": _enum(*get_args(SupervisionMode)),
                                              "time_started": {**_TIME, "nullable": True},
                                              "time_ended": {**_TIME, "nullable": True}}),
    Field("recorded", "boolean", lambda c: c.recording_started_at is not None,
          "a recording of the call was started when the customer answered (its link: "
          "`recording_url` in CDRs and the cdr webhook)", nullable=False),
    _list("recording_masked", lambda c: [{"start": iso(m.start), "end": iso(m.end)} for m in c.masks],
          "spans of the recording kept silent (pause/resume); `end` null while paused",
          {"start": _TIME, "end": {**_TIME, "nullable": True}}),
    Field("auto_answer_honoured", "boolean", lambda c: c.auto_answer_honoured(),
          "auto-answer was asked: true if the agent's phone answered by itself (within a second of "
          "its INVITE), false if it rang instead; null when not asked or when nothing tells"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)


def call_record(call: Call) -> dict[str, Any]:
    """The call as the API, the webhooks and the CDR store show it."""
    return {f.name: f.read(call) for f in FIELDS}


def record_schema() -> dict[str, Any]:
    """The OpenAPI schema of a call record."""
    return {"type": "object", "required": [f.name for f in FIELDS if not f.nullable],
            "properties": {f.name: f.schema() for f in FIELDS}}


# The carrier's live-calls list (GET /v1/call): its key -> the record field it shows.
LIVE_CALL_KEYS: dict[str, str] = {
    "call_id": "call_id", "source": "extension", "destination": "to_number",
    "direction": "direction", "state": "state", "created_time": "time_started", "hotline": "hotline",
}


_LIVE_CALL_FIELDS = tuple((key, next(f for f in FIELDS if f.name == name)) for key, name in LIVE_CALL_KEYS.items())


def live_call_summary(call: Call) -> dict[str, Any]:
    return {key: field.read(call) for key, field in _LIVE_CALL_FIELDS}
