"""The OpenAPI 3 document of the whole HTTP API, served at ``/v1/openapi.json``.

Written as data next to the code it describes; the call record's schema comes from
``calls/record.py`` and parameter patterns from ``patterns.py``. ``tests/api/test_openapi.py``
keeps it in sync with the router (every route documented, nothing documented that is not
routed) and with the error codes in ``errors.py`` and their statuses in ``api/errors.py``.
"""
from __future__ import annotations

from typing import Any

from .. import __version__, patterns
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
        if name in ("auto_answer", "is_encode"):
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
        "recording_url": {"type": "string", "description": "always \"\": no recordings"},
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

def build_openapi() -> dict[str, Any]:
    codes = [cls.code for cls in ERROR_CLASSES] + list(ROUTING_CODES.values())   # any path: 404, 405
    record = record_schema()
    return {
        "openapi": "3.0.3",
        "info": {"title": "c2c-ami", "version": __version__,
                 "description": "HTTP click-to-call gateway for Asterisk. Ring an extension; when "
                                "it answers, dial a number through a hotline trunk."},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
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
                                "description": "200 when at least one PBX's AMI link is usable and the store "
                                               "answers; 503 when no PBX is, or the store does not (its "
                                               "store.state is unavailable), or while stopping. Every PBX's "
                                               "state, and the store's (backend, state, down_seconds), "
                                               "never its address.",
                                "responses": {**_ok("Status", "ready"),
                                              "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "description": "Open unless metrics.token is set; then that token "
                                                "as Authorization: Bearer <token>.",
                                 "security": [{}, {"bearerAuth": []}],
                                 "responses": {"200": {"description": "text exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                               **_failures(400, 401, 429)}}},
            "/v1/openapi.json": {"get": {"summary": "This document",
                                         "responses": {"200": {"description": "OpenAPI 3 document",
                                                               "content": {"application/json": {
                                                                   "schema": {"type": "object"}}}}}}},
        },
    }
