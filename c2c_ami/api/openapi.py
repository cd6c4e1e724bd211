"""The OpenAPI 3 document of the whole HTTP API, served at ``/v1/openapi.json``.

Written as data next to the code it describes; the call record's schema comes from
``calls/record.py`` and parameter patterns from ``patterns.py``. ``tests/api/test_openapi.py``
keeps it in sync with the router (every route documented, nothing documented that is not
routed) and with the error codes in ``errors.py`` and their statuses in ``api/errors.py``.
"""
from __future__ import annotations

from typing import Any

from .. import __version__, patterns
from ..calls.policy import MAX_ENTRIES_PER_REQUEST
from ..calls.record import LIVE_CALL_KEYS, record_schema
from ..carrier import DATE_RANGE, DATE_RULE, LIVE_STATES, TIME_FIELDS, UNKNOWN_CAUSE
from ..errors import ERROR_CLASSES
from ..notify.webhooks import ALL_EVENTS, EVENTS
from ..scroll import MAX_SCROLL_ID
from ..store import COUNT_CAP
from .errors import HTTP_STATUS, ROUTING_CODES
from .schemas import (
    CDR_STATUSES,
    MAX_JSON_BODY,
    MAX_JSON_DEPTH,
    MAX_OFFSET,
    UNSUPPORTED_CARRIER_EVENTS,
    V2_NAMES,
    V2_OPTIONAL,
)

_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _param(name: str, description: str, *, required: bool = False, pattern: str | None = None,
           max_length: int | None = None, where: str = "query", kind: str = "string") -> dict:
    schema: dict = {"type": kind}
    if pattern:
        schema["pattern"] = pattern
    if max_length:
        schema["maxLength"] = max_length
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def _failures(*statuses: int, schema: str = "Failure") -> dict:
    by_status: dict[int, list[str]] = {}
    for cls in ERROR_CLASSES:
        by_status.setdefault(HTTP_STATUS[cls.code], []).append(cls.code)
    return {str(s): {"description": ", ".join(by_status.get(s, ["error"])),
                     "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
            for s in statuses}


def _ok(schema_ref: str, description: str) -> dict:
    return {"200": {"description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}}


_CLICK2CALL_PARAMS = [
    _param("ext", "Extension to ring first (must match the tenant's `extensions`).", required=True,
           pattern=patterns.EXTENSION.anchored),
    _param("phone", "Number to call once the extension answers. Spaces, dots, dashes, parentheses "
           "and a leading + are removed; 3-20 digits remain.", required=True),
    _param("src_cid_name", "Caller name shown on the extension's phone (default Click2Call). "
           "Letters of any script, digits, space and . - _ ' @ +", max_length=patterns.NAME_MAX_LENGTH),
    _param("src_cid_number", "Number shown on the extension's phone (default: the ext).",
           pattern=patterns.CID_NUMBER.anchored),
    _param("dest_cid_name", "Caller name sent to the called number (default: the hotline).",
           max_length=patterns.NAME_MAX_LENGTH),
    _param("dest_cid_number", "Caller number sent to the called number (default: the hotline).",
           pattern=patterns.CID_NUMBER.anchored),
    _param("auto_answer", "true/false/1/0/yes/no: send the tenant's auto-answer headers (its bundle, by default "
           "`standard`: Call-Info answer-after=0, Alert-Info alert-autoanswer, Answer-Mode Auto, "
           "P-Auto-answer, Answer-After) to the extension."),
    _param("hotline", "Hotline to call out through (default: the tenant's first).",
           pattern=patterns.HOTLINE.anchored),
    _param("is_encode", "true/false/1/0/yes/no: phone is Base64-encoded."),
    _param("customer_id", "The CRM's customer the call is about: in the call record, CDRs, webhooks "
           "and the dialplan (C2C_CUSTOMER_ID).", pattern=patterns.CUSTOMER_ID.anchored),
    _param("record", "true/false/1/0/yes/no: record this call (overrides the tenant's recording.enabled); "
           "the recording's link is the CDR's recording_url."),
    _param("Idempotency-Key", "Replays the first answer for the same key (same parameters); keys are "
           "remembered per token (an extension-scoped token's are its own). At most once.",
           where="header", pattern=patterns.IDEMPOTENCY_KEY.anchored),
]

_IDEMPOTENCY_KEY = _CLICK2CALL_PARAMS[-1]
_V1_FIELD = {p["name"]: p for p in _CLICK2CALL_PARAMS}


def _v2_body() -> dict:
    """POST /v2/click2call's body: the carrier's three keys, then v1's optional parameters."""
    def field(v1_name: str, description: str | None = None) -> dict:
        schema = dict(_V1_FIELD[v1_name]["schema"])
        schema["description"] = description or _V1_FIELD[v1_name]["description"]
        return schema
    properties = {
        "id": field("customer_id", "The CRM's customer the call is about (v1: customer_id): in the call "
                    "record, CDRs, webhooks and the dialplan (C2C_CUSTOMER_ID)."),
        "mobile": field("phone", "Number to call (v1: phone): " + _V1_FIELD["phone"]["description"]),
        "agent": field("ext", "Extension to ring first (v1: ext); must match the tenant's `extensions`."),
    }
    for v2_name, v1_name in V2_NAMES.items():       # every v1 parameter by its v1 name, not beside its v2 one
        properties[v1_name] = field(v1_name, f"{v1_name} is {v2_name} by its v1 name: give one of the two "
                                             "(both: INVALID_PARAMS)")
    for name in V2_OPTIONAL:
        properties[name] = field(name)
        if name in ("auto_answer", "is_encode", "record"):
            properties[name] = {"oneOf": [{"type": "boolean"}, {"type": "string"}],
                                "description": "true/false (or v1's strings)"}
    one_of_each = [{"oneOf": [{"required": [v2_name]}, {"required": [v1_name]}]}
                   for v2_name, v1_name in V2_NAMES.items()]
    return {"type": "object", "allOf": one_of_each, "properties": properties,
            "description": "id, mobile and agent are required, each by that name or by its v1 name "
                           "(customer_id, phone, ext), not both. A key given twice is INVALID_PARAMS."}


_CALL_ID_PATH = _param("call_id", "The call_id returned by click2call.", required=True,
                       where="path", pattern=patterns.CALL_ID.anchored)
_CDR_ID_PATH = _param("id", "The call_id, or the call's SIP Call-ID (URL-encoded: it may hold '@').",
                      required=True, where="path", pattern=patterns.CDR_ID.anchored)

_CARRIER_TIME: dict[str, Any] = {"type": "string", "description": "YYYY-MM-DD HH:MM:SS in api.timezone; \"\" when none",
                 "example": "2021-02-18 17:20:58"}


def _carrier_cdr(record: dict[str, Any]) -> dict[str, Any]:
    """The carrier's CDR (``carrier.cdr_record``): its keys, then the gateway's fields as extras."""
    fields = record["properties"]
    text = {"type": "string"}
    carrier: dict[str, Any] = {
        "id": {"type": "string", "description": "the call_id"},
        "call_id": {"type": "string"},
        "sip_call_id": {"type": "string", "description": "SIP Call-ID of the trunk leg (PJSIP: CHANNEL(pjsip,call-id); "
                                                          "chan_sip: SIPCALLID); \"\" when unknown"},
        "cause": {"type": "string", "description": "Q.850 cause name (NORMAL_CLEARING, USER_BUSY, NO_ANSWER, "
                                                   f"...; {UNKNOWN_CAUSE} for a code without one); \"\" when none"},
        "cause_code": {"type": "integer", "nullable": True, "description": "the Q.850 cause number"},
        "duration": fields["duration"], "billsec": fields["billsec"],
        "direction": {"type": "string", "enum": ["outbound"]},
        "recording_url": {"type": "string", "description": "the recording's link (a signed URL of "
                                                           "/v1/recording/{call_id}, or recording.url_template); "
                                                           "\"\" when the call has no recording"},
        "extension": text, "from_number": text, "to_number": text,
        "receive_dest": {"type": "string", "description": "always \"\" (no ring groups or queues)"},
        "hotline": text,
        "time_started": _CARRIER_TIME, "time_answered": _CARRIER_TIME, "time_ended": _CARRIER_TIME,
        "status": {"type": "string", "enum": [*CDR_STATUSES, ""]},
        "customer_id": {"type": "string", "nullable": True},
    }
    extras = {name: schema for name, schema in fields.items() if name not in carrier and name not in TIME_FIELDS}
    times = {name: _CARRIER_TIME for name in TIME_FIELDS if name not in carrier}
    utc = {f"{name}_utc": {**fields[name], "description": f"{name}, ISO-8601 in UTC"} for name in TIME_FIELDS}
    return {"type": "object", "required": list(carrier), "properties": {**carrier, **extras, **times, **utc}}


def _hook_payload(record: dict[str, Any]) -> dict[str, Any]:
    """A webhook's body (``carrier.hook_payload``): the carrier's "Event Hook Data" keys, ``leg``,
    the carrier's CDR fields and the gateway's as extras, and ``event``."""
    cdr = _carrier_cdr(record)["properties"]
    text = {"type": "string"}
    carrier: dict[str, Any] = {
        "call_id": cdr["call_id"], "sip_call_id": cdr["sip_call_id"],
        "domain": {"type": "string", "description": "the tenant"},
        "direction": cdr["direction"],
        "from_number": {"type": "string", "description": "the extension"},
        "to_number": {"type": "string", "description": "the number dialed"},
        "hotline": text,
        "state": {"type": "string", "enum": list(EVENTS), "description": "the event's name"},
        "duration": {**cdr["duration"], "description": "seconds from the request to the end (so far, "
                                                       "before hangup)"},
        "billsec": {**cdr["billsec"], "description": "seconds from the number's answer to the end (so far, "
                                                     "before hangup)"},
        "recording_url": cdr["recording_url"],
        "time_started": _CARRIER_TIME, "time_answered": _CARRIER_TIME, "time_ended": _CARRIER_TIME,
        "customer_id": cdr["customer_id"],
    }
    leg = {"leg": {"type": "string", "enum": ["extension", "number"],
                   "description": "ringing and answered only: the leg that rang or answered"}}
    extras = {name: schema for name, schema in cdr.items() if name not in carrier and name not in ("tenant", "state")}
    own = {"call_state": {**record["properties"]["state"], "description": "the gateway's own state of the call"},
           "event": {"type": "string", "enum": list(EVENTS), "description": "the event (= state, X-C2C-Event)"}}
    return {"type": "object", "required": [*carrier, *own],
            "properties": {**carrier, **leg, **extras, **own}}


_LIVE_CALL: dict[str, Any] = {"type": "object", "properties": {
    "call_id": {"type": "string"}, "context": {"type": "string", "description": "the tenant"},
    "created_time": _CARRIER_TIME,
    "destination": {"type": "string", "description": "the number dialed"},
    "direction": {"type": "string", "enum": ["outbound"]},
    "ip": {"type": "string", "description": "always \"\""},
    "source": {"type": "string", "description": "the extension"},
    "state": {"type": "string", "enum": sorted(set(LIVE_STATES.values())),
              "description": "as a FreeSWITCH channel state: CS_INIT (being set up), CS_ROUTING (the "
                             "extension rings), CS_EXECUTE (the extension answered: dialing, or talking)"},
    "hotline": {"type": "string"}, "customer_id": {"type": "string", "nullable": True},
    "call_state": {"type": "string", "description": "the gateway's own state of the call"},
    "created_time_utc": {"type": "string", "format": "date-time"}}}

def _control_paths() -> dict[str, Any]:
    """POST /v1/call/{call_id}/transfer, park, listen, whisper, barge, recording/pause|resume."""
    def action(summary: str, description: str, body: bool = True, failures: tuple[int, ...] = ()) -> dict:
        operation: dict[str, Any] = {
            "summary": summary, "description": description, "security": _BEARER, "parameters": [_CALL_ID_PATH],
            "responses": {**_ok("ControlResult", "done"),
                          **_failures(400, 401, 403, 404, 409, 429, 502, 503, *failures)}}
        if body:
            operation["requestBody"] = {"required": False, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ControlRequest"}}}}
        return {"post": operation}
    refusals = ("Refused before anything reaches the PBX: ext not the tenant's (403 FORBIDDEN), not registered "
                "(404 USER_NOT_REGISTERED), busy (409 USER_BUSY); the customer has not answered (409 "
                "CALL_NOT_ANSWERED); another action clashes (409 CALL_BUSY); an ended or unknown call (404 "
                "CALL_NOT_FOUND).")
    supervise = ("ext rings (with the tenant's auto-answer headers if auto_answer) and, once it answers, "
                 "{how}. The answer comes once the PBX took the request; the call record's supervisors "
                 "shows when spying started and ended. " + refusals)
    return {
        "/v1/call/{call_id}/transfer": action(
            "Transfer the customer (bleg, the default) or the agent (aleg) to another extension",
            "Attended by the gateway: ext rings; once it answers, bleg: the customer talks with ext and the "
            "agent's leg ends; aleg: the agent talks with ext and the customer's leg ends. A parked call: the "
            "waiting party is connected. If ext does not answer within calls.ring_timeout nothing moves: 409 "
            "NO_ANSWER (or 409 USER_BUSY if it refused). The call keeps its call_id; its record gains "
            "transfers and final_ext. " + refusals),
        "/v1/call/{call_id}/park": action(
            "Park a party: it waits (music on hold) for a transfer; the other party's leg ends",
            "legs (required): bleg parks the customer, aleg the agent. A transfer within calls.park_timeout "
            "connects the waiting party; after it the waiting party is hung up (hangup_by pbx). Needs the "
            "calls.park_context dialplan context (docs/asterisk.md). " + refusals),
        "/v1/call/{call_id}/listen": action("A supervisor listens to the call", supervise.format(
            how="hears the agent and the customer, silently")),
        "/v1/call/{call_id}/whisper": action("A supervisor coaches the agent", supervise.format(
            how="hears the call and speaks to the agent only")),
        "/v1/call/{call_id}/barge": action("A supervisor joins the call", supervise.format(
            how="hears the call and speaks to both parties")),
        "/v1/call/{call_id}/recording/pause": action(
            "Mask the recording from now (a card number is said): silence is recorded, the timeline kept",
            "409 NOT_RECORDING when the call has no recording. The record lists recording_masked.", body=False),
        "/v1/call/{call_id}/recording/resume": action(
            "Record the call's audio again after a pause",
            "409 NOT_RECORDING when the call has no recording.", body=False),
    }
_MONITOR_AGENT: dict[str, Any] = {"type": "object", "required": [
    "extension", "agent_name", "call_state", "call_id", "call_time", "destination", "direction", "user_agent",
    "network_ip", "server_host"], "properties": {
    "extension": {"type": "string"},
    "agent_name": {"type": "string", "description": "tenants[].agents; \"\" when none"},
    "call_state": {"type": "string", "enum": ["IDLE", "RINGING", "ONCALL"]},
    "call_id": {"type": "string", "description": "the gateway's call on this extension; \"\" for none (or a call "
                                                 "the gateway did not place)"},
    "call_time": {**_CARRIER_TIME, "description": "when the call (or, without one of the gateway's, the ringing "
                                                  "or the talk) began: YYYY-MM-DD HH:MM:SS in api.timezone; "
                                                  "\"\" when idle"},
    "destination": {"type": "string", "description": "the number the gateway's call dials; \"\" otherwise"},
    "direction": {"type": "string", "enum": ["outbound", ""]},
    "user_agent": {"type": "string", "description": "the registered phone's User-Agent"},
    "network_ip": {"type": "string", "description": "the registered phone's address"},
    "server_host": {"type": "string", "description": "the PBX's host (its ami.host)"},
    "domain_name": {"type": "string", "description": "the tenant"},
    "username": {"type": "string", "description": "the extension"}}}

_FINDING: dict[str, Any] = {"type": "object", "required": ["code", "what", "where", "fix", "blocking"], "properties": {
    "code": {"type": "string", "description": "ami_login, ami_permission, ami_read, context_missing, "
                                              "context_no_match, context_no_dial, dial_without_trunk, trunk_missing, "
                                              "endpoint_missing, module_missing"},
    "what": {"type": "string"}, "where": {"type": "string", "description": "the file and section (or config key)"},
    "fix": {"type": "string", "description": "the line to add or change"},
    "blocking": {"type": "boolean", "description": "no call at all can be placed on this PBX (/readyz: not ready)"}}}

_BLACKLIST_ENTRY: dict[str, Any] = {"type": "object", "required": ["id", "phone_number", "description"], "properties": {
    "id": {"type": "string", "format": "uuid"}, "phone_number": {"type": "string", "description": "as given"},
    "description": {"type": "string"}}}

_BULK_RESULT: dict[str, Any] = {"type": "object", "required": ["success", "fail", "message"], "properties": {
    "success": {"type": "array", "items": {"type": "string"}, "description": "the numbers done, as given"},
    "fail": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}},
             "description": "{number: reason}: phone_number is duplicate | invalid | not in the blacklist"},
    "message": {"type": "string", "enum": ["successfully"]}}}

GUARD_SCHEMAS: dict[str, Any] = {
    "BlacklistEntry": _BLACKLIST_ENTRY,
    "BlacklistPage": {"type": "object", "required": ["data", "limit", "offset", "total"], "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/BlacklistEntry"}},
        "limit": {"type": "integer"}, "offset": {"type": "integer"}, "total": {"type": "integer"}}},
    "BlacklistAdd": {"type": "object", "required": ["blacklist"], "properties": {"blacklist": {
        "type": "array", "minItems": 1, "maxItems": MAX_ENTRIES_PER_REQUEST, "items": {
            "type": "object", "required": ["phone_number"], "properties": {
                "phone_number": {"type": "string"}, "description": {"type": "string", "maxLength": 255}}}}}},
    "BlacklistRemove": {"type": "object", "required": ["blacklist"], "properties": {"blacklist": {
        "type": "array", "minItems": 1, "maxItems": MAX_ENTRIES_PER_REQUEST, "items": {"type": "string"}}}},
    "BlacklistResult": _BULK_RESULT,
    "MonitorAgents": {"type": "object", "required": ["data", "total"], "properties": {
        "data": {"type": "array", "items": _MONITOR_AGENT}, "total": {"type": "integer"}}},
    "PbxCheck": {"type": "object", "required": ["status", "pbxs"], "properties": {
        "status": {"type": "string", "enum": ["ok", "findings"]},
        "pbxs": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "blocking": {"type": "boolean"},
            "findings": {"type": "array", "items": _FINDING},
            "skipped": {"type": "array", "items": {"type": "string"},
                        "description": "what the AMI user's rights did not let the check see"}}}}}},
}

_BLACKLIST_BODY = (f"The carrier's shape; at most {MAX_ENTRIES_PER_REQUEST} numbers, within http.client_max_size "
                   "bytes. Numbers compare in E.164 by tenants[].default_region (VN: 0899990988, +84899990988 and "
                   "84899990988 are one number). ")

GUARD_PATHS: dict[str, Any] = {
    "/v1/blacklist": {
        "get": {"summary": "The tenant's do-not-call list, in the order it was listed", "security": _BEARER,
                "parameters": [_param("limit", "1-500, default 50", kind="integer"),
                               _param("offset", f"0-{MAX_OFFSET}, default 0", kind="integer")],
                "responses": {**_ok("BlacklistPage", "one page"), **_failures(400, 401, 429)}},
        "post": {"summary": "List numbers: a click-to-call to any of them is 403 PHONE_BLACKLISTED",
                 "description": _BLACKLIST_BODY + "A number already listed, or twice in the body, fails "
                                "'phone_number is duplicate'; one that cannot be a number, 'phone_number is "
                                "invalid'. A token for one extension may not (403).",
                 "security": _BEARER,
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/BlacklistAdd"}}}},
                 "responses": {**_ok("BlacklistResult", "what was listed, what failed and why"),
                               **_failures(400, 401, 403, 429)}},
        "delete": {"summary": "Unlist numbers", "description": _BLACKLIST_BODY + "A token for one extension may "
                   "not (403).", "security": _BEARER,
                   "requestBody": {"required": True, "content": {"application/json": {
                       "schema": {"$ref": "#/components/schemas/BlacklistRemove"}}}},
                   "responses": {**_ok("BlacklistResult", "what was unlisted, what failed and why"),
                                 **_failures(400, 401, 403, 429)}}},
    "/v1/blacklist/{id}": {"get": {
        "summary": "One entry, by its id or its number (in any of its forms)", "security": _BEARER,
        "parameters": [_param("id", "an entry's id or a phone number", required=True, where="path",
                              pattern=patterns.BLACKLIST_ID.anchored)],
        "responses": {**_ok("BlacklistEntry", "the entry (the carrier's bare object)"),
                      **_failures(400, 401, 404, 429)}}},
    "/v1/monitor/agent": {"get": {
        "summary": "The tenant's registered extensions and what each is doing (a token for one extension: itself)",
        "description": "Kept from AMI events (registrations, device states, the gateway's calls): no AMI action "
                       "per request. IDLE, RINGING or ONCALL; call_id, destination and direction describe the "
                       "gateway's own call on the extension.",
        "security": _BEARER,
        "responses": {**_ok("MonitorAgents", "the agents, by extension"), **_failures(401, 429)}}},
    "/v1/pbx/check": {"get": {
        "summary": "Check each PBX's Asterisk side now: AMI rights, dialplan, trunks, modules",
        "description": "The operator's: Authorization: Bearer <metrics.token> (401 while metrics.token is not set; "
                       "a tenant's token is refused). Each finding says what is wrong, where, and the line to add "
                       "or change.",
        "security": _BEARER,
        "responses": {**_ok("PbxCheck", "the findings of each PBX"), **_failures(400, 401)}}},
}


# -- the event stream, the console and the widget (docs/api.md, "The event stream") ------------
_STREAM_EVENTS = "ringing, answered, hangup, cdr, state, agent, reset"
SEE_PATHS: dict[str, Any] = {
    "/v1/events/stream": {"get": {
        "summary": "The tenant's events as Server-Sent Events (text/event-stream)",
        "description": f"Events: {_STREAM_EVENTS}. ringing/answered/hangup/cdr: data is the webhook body "
                       "(WebhookPayload, with event); state: the same payload whenever a live call's state or "
                       "call control changes (call_state tells the state); agent: the agent monitor's row of one "
                       "extension (MonitorAgents' item and registered: true, or {extension, agent_name, "
                       "domain_name, registered: false}); reset: Last-Event-ID cannot be resumed "
                       "({reason: purged|unknown, last_event_id, id}). id: the tenant's event sequence; a client "
                       "that reconnects with Last-Event-ID (or ?last_event_id=) gets every event after it that "
                       "is within events.retention. Heartbeats (': ping') every events.heartbeat seconds. "
                       "An extension-scoped token sees only its extension's calls and agent. The token may be "
                       "given as ?token= (EventSource cannot set headers); it is never logged.",
        "security": [{"bearerAuth": []}, {"queryToken": []}],
        "parameters": [_param("last_event_id", "resume after this id (as the Last-Event-ID header)",
                              pattern="^[0-9]{1,19}$"),
                       _param("Last-Event-ID", "resume after this id (EventSource sends it on reconnect)",
                              where="header")],
        "responses": {"200": {"description": "the stream", "content": {"text/event-stream": {
                          "schema": {"type": "string"}}}},
                      **_failures(400, 401, 429)}}},
    "/v1/event/deliveries": {"get": {
        "summary": "Every webhook of the tenant with its deliveries: pending, delivered, dead, last error",
        "description": "Counts of the deliveries still in the outbox (delivered and dead ones are purged after "
                       "webhooks.retention_days). A token for one extension may not (403).",
        "security": _BEARER,
        "responses": {**_ok("HookDeliveries", "the webhooks"), **_failures(401, 403, 429)}}},
    "/v1/event/{hook_id}/retry": {"post": {
        "summary": "Queue the webhook's dead deliveries again, from their first attempt",
        "security": _BEARER,
        "parameters": [_param("hook_id", "webhook id", required=True, where="path")],
        "responses": {**_ok("HookRetried", "how many were queued again"), **_failures(400, 401, 403, 404, 429)}}},
    "/v1/pbx/status": {"get": {
        "summary": "The tenant's own PBX: its AMI link and the findings of the last check that concern the tenant",
        "description": "What the console shows a tenant: no check is run (GET /v1/pbx/check, the operator's, "
                       "runs one); findings about other tenants of the PBX are left out. A token for one "
                       "extension may not (403).",
        "security": _BEARER,
        "responses": {**_ok("PbxStatus", "the PBX"), **_failures(401, 403, 429)}}},
    "/console": {"get": {
        "summary": "The operations console (HTML): sign in with a tenant's api key",
        "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    "/console/{asset}": {"get": {
        "summary": "The console's script and style (console.js, console.css)",
        "parameters": [_param("asset", "console.js or console.css", required=True, where="path")],
        "responses": {"200": {"description": "the file", "content": {"text/javascript": {"schema": {"type": "string"}},
                                                                    "text/css": {"schema": {"type": "string"}}}},
                      "404": {"description": "no such file"}}}},
    "/widget.js": {"get": {
        "summary": "The click-to-call widget a CRM page includes (data-token: an extension-scoped token)",
        "responses": {"200": {"description": "the script",
                              "content": {"text/javascript": {"schema": {"type": "string"}}}}}}},
}

SEE_SCHEMAS: dict[str, Any] = {
    "HookDeliveries": {"type": "object", "required": ["status", "data", "total"], "properties": {
        "status": {"type": "string", "enum": ["success"]}, "total": {"type": "integer"},
        "data": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string"}},
            "event": {"type": "string", "description": "the carrier's view of events ('*' for all)"},
            "created_at": {"type": "string"}, "pending": {"type": "integer"}, "delivered": {"type": "integer"},
            "dead": {"type": "integer"},
            "last_error": {"type": "string", "nullable": True,
                           "description": "the error of the latest delivery that failed an attempt"}}}}}},
    "HookRetried": {"type": "object", "required": ["status", "id", "retried"], "properties": {
        "status": {"type": "string", "enum": ["success"]}, "id": {"type": "string"}, "retried": {"type": "integer"}}},
    "PbxStatus": {"type": "object", "required": ["status", "pbx"], "properties": {
        "status": {"type": "string", "enum": ["success"]},
        "pbx": {"type": "object", "properties": {
            "name": {"type": "string"}, "ami": {"type": "string", "description": "the AMI link's state"},
            "detail": {"type": "string", "nullable": True, "description": "why calls cannot be placed, when not"},
            "usable": {"type": "boolean"}, "checked_at": {"type": "number", "nullable": True},
            "findings": {"type": "array", "items": _FINDING},
            "skipped": {"type": "array", "items": {"type": "string"}}}}}},
}


def build_openapi() -> dict[str, Any]:
    codes = [cls.code for cls in ERROR_CLASSES] + list(ROUTING_CODES.values())   # any path: 404, 405
    record = record_schema()
    return {
        "openapi": "3.0.3",
        "info": {"title": "c2c-ami", "version": __version__,
                 "description": "HTTP click-to-call gateway for Asterisk. Ring an extension; when "
                                "it answers, dial a number through a hotline trunk."},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"},
                                "queryToken": {"type": "apiKey", "in": "query", "name": "token",
                                               "description": "a Bearer token in the query (GET /v1/events/stream "
                                                              "only: EventSource cannot set headers)"}},
            "schemas": {
                "Success": {"type": "object", "required": ["status", "call_id"],
                            "properties": {"status": {"type": "string", "enum": ["success"]},
                                           "call_id": {"type": "string", "format": "uuid"}}},
                "Failure": {"type": "object", "required": ["status", "error", "message"],
                            "properties": {"status": {"type": "string", "enum": ["fail"]},
                                           "error": {"type": "string", "enum": codes},
                                           "message": {"type": "string"},
                                           "call_id": {"type": "string"}}},
                "SuccessV2": {"type": "object", "required": ["code", "status", "call_id"],
                              "properties": {"code": {"type": "string", "enum": ["0"]},
                                             "status": {"type": "string", "enum": ["success"]},
                                             "call_id": {"type": "string", "format": "uuid"}}},
                "FailureV2": {"type": "object", "required": ["code", "status", "error", "message"],
                              "properties": {"code": {"type": "string", "enum": ["1"]},
                                             "status": {"type": "string", "enum": ["fail"]},
                                             "error": {"type": "string", "enum": codes},
                                             "message": {"type": "string"},
                                             "call_id": {"type": "string"}}},
                "ClickToCallV2": _v2_body(),
                "CallRecord": record,
                "CallResponse": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["success"]},
                    "call": {"$ref": "#/components/schemas/CallRecord"}}},
                "CarrierCdr": _carrier_cdr(record),
                "WebhookPayload": _hook_payload(record),
                "CdrResponse": {"allOf": [{"$ref": "#/components/schemas/CarrierCdr"}, {
                    "type": "object", "properties": {"call": {"$ref": "#/components/schemas/CallRecord"}}}]},
                "LiveCalls": {"type": "object", "required": ["data", "total"], "properties": {
                    "data": {"type": "array", "items": _LIVE_CALL},
                    "total": {"type": "integer"},
                    "status": {"type": "string", "enum": ["success"]},
                    "calls": {"type": "array", "items": {"type": "object", "properties": {
                        key: record["properties"][name] for key, name in LIVE_CALL_KEYS.items()}}}}},
                "CdrPage": {"type": "object", "required": ["data", "total", "page", "limit"], "properties": {
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/CarrierCdr"}},
                    "total": {"type": "integer", "description": (
                        "How many CDRs match. Exact when total_exact is true; otherwise a lower "
                        f"bound: at least this many match (counting stops after max({COUNT_CAP}, "
                        "offset + limit) matches, and total is that number).")},
                    "page": {"type": "integer"}, "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "status": {"type": "string", "enum": ["success"]},
                    "total_exact": {"type": "boolean", "description": "true: total is the exact "
                                    "count; false: more than total match (total is a lower bound)"},
                    "cdrs": {"type": "array", "description": "the same CDRs as the gateway's call records",
                             "items": {"$ref": "#/components/schemas/CallRecord"}}}},
                "CdrScroll": {"type": "object", "required": ["data", "scroll_id"], "properties": {
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/CarrierCdr"}},
                    "scroll_id": {"type": "string", "description": "give it as ?scroll_id= for the next "
                                  "batch; \"\" once data is empty"},
                    "status": {"type": "string", "enum": ["success"]},
                    "cdrs": {"type": "array", "description": "the same CDRs as the gateway's call records",
                             "items": {"$ref": "#/components/schemas/CallRecord"}}}},
                "CdrList": {"oneOf": [{"$ref": "#/components/schemas/CdrPage"},
                                      {"$ref": "#/components/schemas/CdrScroll"}]},
                "Webhook": {"type": "object", "properties": {
                    "id": {"type": "string"}, "url": {"type": "string", "format": "uri"},
                    "events": {"type": "array", "items": {"type": "string", "enum": [*EVENTS, ALL_EVENTS]}},
                    "created_at": {"type": "string"},
                    "secret": {"type": "string", "description": "only in the POST answer"}}},
                "WebhookCreated": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["success"]},
                    "hook": {"$ref": "#/components/schemas/Webhook"}}},
                "WebhookCreate": {"type": "object", "required": ["url"], "properties": {
                    "url": {"type": "string", "format": "uri"},
                    "events": {"type": "array", "items": {"type": "string", "enum": [*EVENTS, ALL_EVENTS]}},
                    "secret": {"type": "string", "description": "HMAC key; generated if absent",
                               "pattern": patterns.HOOK_SECRET.anchored}}},
                "CarrierWebhookCreate": {
                    "type": "object", "required": ["callback_url", "event"],
                    "description": "The carrier's shape (told apart by callback_url; with url too: 400). "
                                   "One registration is one event: register a URL once per event.",
                    "properties": {
                        "callback_url": {"type": "string", "format": "uri"},
                        "callback_apikey": {"type": "string", "pattern": patterns.HOOK_API_KEY.anchored,
                                            "description": "optional: sent with every delivery as "
                                                           "X-Api-Key and Authorization: Bearer; "
                                                           f"{patterns.HOOK_API_KEY.rule}"},
                        "event": {"type": "string", "enum": list(EVENTS),
                                  "description": f"{', '.join(UNSUPPORTED_CARRIER_EVENTS)} (never produced "
                                                 "by this gateway) are refused: 400 'event: ...'"},
                        "secret": {"type": "string", "description": "HMAC key; generated if absent",
                                   "pattern": patterns.HOOK_SECRET.anchored}}},
                "CarrierWebhookCreated": {
                    "type": "object", "required": ["created", "id", "secret"],
                    "properties": {"created": {"type": "boolean", "enum": [True]},
                                   "id": {"type": "string", "format": "uuid"},
                                   "secret": {"type": "string", "description": "the signing secret; "
                                                                               "shown only here"}}},
                "CarrierWebhook": {"type": "object", "required": ["id", "event", "callback_url", "callback_apikey"],
                                   "properties": {
                    "id": {"type": "string"},
                    "event": {"type": "string", "description": (
                        "the hook's event; for a c2c-ami hook of every event '*', of several "
                        "events their names joined by commas (e.g. 'cdr,hangup')")},
                    "callback_url": {"type": "string", "format": "uri"},
                    "callback_apikey": {"type": "string", "description": "'' when none"}}},
                "Webhooks": {"type": "object", "properties": {
                    "status": {"type": "string"},
                    "data": {"type": "array", "items": {"$ref": "#/components/schemas/CarrierWebhook"},
                             "description": "the carrier's view of this page (the same hooks as hooks)"},
                    "total": {"type": "integer", "description": "all of the tenant's webhooks"},
                    "page": {"type": "integer"}, "limit": {"type": "integer"},
                    "hooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}}},
                "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
                "ControlRequest": {"type": "object", "properties": {
                    "ext": {"type": "string", "pattern": patterns.EXTENSION.anchored,
                            "description": "the extension that takes the call, or supervises it"},
                    "legs": {"type": "string", "enum": ["bleg", "aleg"],
                             "description": "bleg: the customer (the side that received the call); "
                                            "aleg: the agent (the side that placed it)"},
                    "auto_answer": {"type": "boolean", "description": "supervision: send the tenant's "
                                                                      "auto-answer headers to ext"}}},
                "ControlResult": {"type": "object", "required": ["status", "call_id"], "properties": {
                    "status": {"type": "string", "enum": ["success"]},
                    "call_id": {"type": "string"},
                    "ext": {"type": "string"}, "legs": {"type": "string", "enum": ["bleg", "aleg"]},
                    "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]},
                    "masked": {"type": "boolean", "description": "recording pause/resume: silent now"}}},
                "Deleted": {"type": "object", "properties": {"status": {"type": "string", "enum": ["success"]},
                                                             "deleted": {"type": "boolean", "enum": [True]}}},
                "TokenRequest": {"type": "object", "required": ["api_key"], "properties": {
                    "api_key": {"type": "string", "description": "one of the tenant's api_keys",
                                "pattern": patterns.TOKEN.anchored},
                    "ext": {"type": "string", "pattern": patterns.EXTENSION.anchored,
                            "description": "optional: the token may act only for this extension "
                                           "(must match the tenant's extensions)"}}},
                "Token": {"type": "object", "required": ["data"], "properties": {
                    "data": {"type": "object", "required": ["token", "expired", "user_id"], "properties": {
                        "token": {"type": "string", "description": "use as Authorization: Bearer <token>"},
                        "expired": {"type": "integer", "description": "when it expires, unix seconds"},
                        "user_id": {"type": "string", "description": "the tenant's domain"}}}}},
                **GUARD_SCHEMAS,
                **SEE_SCHEMAS,
            },
        },
        "paths": {
            "/v1/auth/token": {"post": {
                "summary": "Exchange an api key for a token (valid auth.token_ttl seconds)",
                "security": [],
                "description": "The carrier's token exchange. With ext, the token may click-to-call only "
                               "with that ext (another: 403 FORBIDDEN), sees only that extension's calls "
                               "and CDRs (any other: 404 CALL_NOT_FOUND) and may not manage webhooks "
                               "(403). A wrong or missing api_key is 401 UNAUTHORIZED 'invalid api_key'; "
                               "after auth.failure_burst failed authentications (of any credential) a "
                               "client address gets 429 RATE_LIMITED "
                               "(refilled at auth.failures_per_minute). An expired token is 401 "
                               "'token expired'. The body: JSON, at most "
                               f"{MAX_JSON_BODY} bytes (else INVALID_PARAMS naming the field).",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
                "responses": {**_ok("Token", "the token"), **_failures(400, 401, 403, 429, 503)}}},
            "/v1/click2call": {"get": {
                "summary": "Click-to-call, synchronous: returns when the extension answers",
                "security": _BEARER, "parameters": _CLICK2CALL_PARAMS,
                "responses": {**_ok("Success", "the extension answered; the number is being dialed"),
                              **_failures(400, 401, 403, 404, 409, 429, 502, 503)}}},
            "/v1/click2call/async": {"get": {
                "summary": "Click-to-call, asynchronous: returns once the call is queued",
                "security": _BEARER, "parameters": _CLICK2CALL_PARAMS,
                "responses": {**_ok("Success", "the extension is registered and free; it is ringing"),
                              **_failures(400, 401, 403, 404, 409, 429, 502, 503)}}},
            "/v2/click2call": {"post": {
                "summary": "Click-to-call, asynchronous, the carrier's v2: a JSON body",
                "description": "As GET /v1/click2call/async (same checks, duplicate-click guard, "
                               "Idempotency-Key and limits) with id, mobile, agent for customer_id, "
                               "phone, ext. Success is {code: '0', status: success, call_id}; a failure "
                               "{code: '1', status: fail, error, message} (plus call_id when a call was "
                               "attempted) with v1's HTTP status; a message names the body's key "
                               "(id: ..., mobile: ..., agent: ...; or its v1 name, if the body used it). "
                               "Each of id, mobile, agent may be given by its v1 name instead (customer_id, "
                               "phone, ext), never both; a key given twice is INVALID_PARAMS. Values are JSON "
                               "strings (auto_answer, is_encode also booleans); at most "
                               f"{MAX_JSON_BODY} bytes, within http.body_timeout; unknown keys are ignored. "
                               "Two Idempotency-Key headers: INVALID_PARAMS.",
                "security": _BEARER, "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ClickToCallV2"}}}},
                "responses": {**_ok("SuccessV2", "the extension is registered and free; it is ringing"),
                              **_failures(400, 401, 403, 404, 409, 429, 500, 502, 503, schema="FailureV2")}}},
            "/v1/calls/{call_id}": {
                "get": {"summary": "A call's live state, or its final record", "security": _BEARER,
                        "parameters": [_CALL_ID_PATH],
                        "responses": {**_ok("CallResponse", "the call"), **_failures(400, 401, 404, 429, 503)}},
                "delete": {"summary": "Hang up a call, or cancel it while the extension rings",
                           "security": _BEARER, "parameters": [_CALL_ID_PATH],
                           "responses": {**_ok("Success", "hangup requested"),
                                         **_failures(400, 401, 404, 429, 503)}}},
            **_control_paths(),
            "/v1/recording/{call_id}": {"get": {
                "summary": "A call's recording (audio/wav; HTTP Range supported)",
                "security": [{}, *_BEARER],
                "description": "With the signed link of a CDR's recording_url (?exp&sig) no token is needed; "
                               "an expired or altered link is 403 FORBIDDEN. Without them, a Bearer token of "
                               "the call's tenant (an extension-scoped token: its own calls). No file: 404.",
                "parameters": [_CALL_ID_PATH, _param("exp", "the link's expiry, unix seconds"),
                               _param("sig", "the link's signature")],
                "responses": {"200": {"description": "the WAV file",
                                      "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                              "206": {"description": "the requested range of it"},
                              **_failures(400, 401, 403, 404, 429)}}},
            "/v1/call": {"get": {"summary": "The tenant's live calls ({data, total})", "security": _BEARER,
                                 "responses": {**_ok("LiveCalls", "live calls"), **_failures(401, 429, 503)}}},
            "/v1/cdr": {"get": {
                "summary": "Call detail records of ended calls, newest first: pages, or a scroll",
                "security": _BEARER,
                "description": "With page, limit or offset: one page ({data, total, page, limit}). "
                               "Without them: the carrier's scroll ({data, scroll_id}); ?scroll_id= "
                               "gives the next batch (the same filters and size, or limit again) until "
                               "data is empty. A scroll id is signed for the tenant: another tenant's, "
                               "an edited or a garbled one is INVALID_PARAMS 'scroll_id: ...'. Dates "
                               f"are {DATE_RULE}; both ends inclusive (a bare end date: that whole day). "
                               "Each parameter at most once (a repeated one is INVALID_PARAMS).",
                "parameters": [_param("start_date", f"time_started >= start_date: {DATE_RULE}; dates "
                                      f"from {DATE_RANGE[0]} to {DATE_RANGE[1]}"),
                               _param("end_date", "time_started <= end_date, to the second (a bare "
                                      "YYYY-MM-DD: the whole day)"),
                               _param("extension", "exact extension", pattern=patterns.EXTENSION.anchored),
                               _param("phone", "exact number (either party)", pattern=patterns.CID_NUMBER.anchored),
                               _param("status", ", ".join(CDR_STATUSES)),
                               _param("customer_id", "exact customer id (v2 id, v1 customer_id)",
                                      pattern=patterns.CUSTOMER_ID.anchored),
                               _param("direction", "outbound (every click-to-call) or inbound (none)"),
                               _param("limit", "1-500, default 50 (a page; or a scroll's batch with scroll_id)",
                                      kind="integer"),
                               _param("page", "from 1", kind="integer"),
                               _param("offset", f"rows to skip, 0-{MAX_OFFSET}; replaces page", kind="integer"),
                               _param("scroll_id", "the previous answer's scroll_id", max_length=MAX_SCROLL_ID)],
                "responses": {**_ok("CdrList", "CDRs"), **_failures(400, 401, 403, 429, 503)}}},
            "/v1/cdr/{id}": {"get": {
                "summary": "One CDR, by call_id or SIP Call-ID (the carrier's bare record)",
                "security": _BEARER, "parameters": [_CDR_ID_PATH],
                "responses": {**_ok("CdrResponse", "the CDR"), **_failures(400, 401, 404, 429, 503)}}},
            "/v1/event": {
                "get": {"summary": "The tenant's webhooks, oldest first, by pages", "security": _BEARER,
                        "parameters": [_param("limit", "1-500, default 50", kind="integer"),
                                       _param("page", "from 1", kind="integer")],
                        "responses": {**_ok("Webhooks", "webhooks"), **_failures(400, 401, 403, 429, 503)}},
                "post": {"summary": "Register a webhook", "security": _BEARER,
                         "description": "Two shapes, told apart by the URL key: c2c-ami's {url, events, secret} "
                                        "answered {status, hook}, and the carrier's {callback_url, event, "
                                        "callback_apikey} answered {created, id, secret}; both URL keys: 400 "
                                        "'callback_url: ...'. "
                                        "At most webhooks.max_hooks_per_tenant per tenant (409 TOO_MANY_HOOKS). "
                                        "The URL must pass the egress policy (400 INVALID_PARAMS, 'url: ...' or "
                                        "'callback_url: ...'): "
                                        "no loopback, private, link-local, unique-local, multicast, unspecified "
                                        "or reserved address (nor IPv6 forms of them) unless in "
                                        "webhooks.allow_networks, never one in webhooks.deny_networks, no "
                                        "localhost, no numeric host other than a dotted quad or [IPv6], no "
                                        "user:password@. It is checked again at every delivery after DNS "
                                        "resolution. Deliveries carry X-C2C-Event, X-C2C-Delivery (a random "
                                        "UUID, the same on retries), X-C2C-Timestamp and X-C2C-Signature, and, "
                                        "for a hook with a callback_apikey, X-Api-Key: <key> and "
                                        "Authorization: Bearer <key>. The delivery's body is a "
                                        "WebhookPayload (the carrier's Event Hook Data and extras). "
                                        f"The body: at most {MAX_JSON_BODY} bytes, JSON nested at most "
                                        f"{MAX_JSON_DEPTH} levels, received within http.body_timeout "
                                        "(else INVALID_PARAMS).",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"oneOf": [{"$ref": "#/components/schemas/WebhookCreate"},
                                                  {"$ref": "#/components/schemas/CarrierWebhookCreate"}]}}}},
                         "responses": {"200": {"description": "the webhook, with its secret (in the shape of "
                                                              "the request)",
                                               "content": {"application/json": {"schema": {"oneOf": [
                                                   {"$ref": "#/components/schemas/WebhookCreated"},
                                                   {"$ref": "#/components/schemas/CarrierWebhookCreated"}]}}}},
                                       **_failures(400, 401, 403, 409, 429, 503)}},
                "delete": {"summary": "Remove a webhook (same as DELETE /v1/event/{hook_id})",
                           "security": _BEARER,
                           "parameters": [_param("id", "webhook id", required=True)],
                           "responses": {**_ok("Deleted", "removed"), **_failures(400, 401, 403, 404, 429, 503)}}},
            "/v1/event/{hook_id}": {"delete": {
                "summary": "Remove a webhook", "security": _BEARER,
                "parameters": [_param("hook_id", "webhook id", required=True, where="path")],
                "responses": {**_ok("Deleted", "removed"), **_failures(400, 401, 403, 404, 429, 503)}}},
            "/healthz": {"get": {"summary": "The process is alive",
                                 "responses": _ok("Status", "alive")}},
            "/readyz": {"get": {"summary": "AMI logged in and usable, and the store answering",
                                "description": "200 when at least one PBX can place a call and the store "
                                               "answers; 503 when no PBX can (no AMI link, or a blocking "
                                               "finding of the check of its Asterisk side: the AMI user may "
                                               "not Originate or Getvar, or reads no call events), or the store "
                                               "does not (its store.state is unavailable), or while stopping. "
                                               "Every PBX's state with the findings of its last check "
                                               "(pbxs[].findings), and the store's (backend, state, "
                                               "down_seconds), never its address.",
                                "responses": {**_ok("Status", "ready"),
                                              "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "description": "Open unless metrics.token is set; then that token "
                                                "as Authorization: Bearer <token>.",
                                 "security": [{}, {"bearerAuth": []}],
                                 "responses": {"200": {"description": "text exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                               **_failures(400, 401, 429)}}},
            **GUARD_PATHS,
            **SEE_PATHS,
            "/v1/openapi.json": {"get": {"summary": "This document",
                                         "responses": {"200": {"description": "OpenAPI 3 document",
                                                               "content": {"application/json": {
                                                                   "schema": {"type": "object"}}}}}}},
        },
    }
