"""Request validation: raw query strings and JSON bodies become typed requests, or an
``InvalidParams`` whose message starts with the parameter's name.

Every value that can later reach AMI is checked here against a whitelist (charset, length;
the patterns are in ``patterns.py``), so CR, LF, NUL, other control characters, Unicode
separators, quotes, commas and brackets never leave this module. The AMI client re-checks
at the socket as a last guard.
"""
from __future__ import annotations

import base64
import binascii
import copy
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .. import patterns
from ..calls.call import CdrStatus
from ..calls.policy import MAX_ENTRIES_PER_REQUEST
from ..calls.requests import CdrQuery, ClickToCallRequest
from ..carrier import DATE_RULE, DateOutOfRange, date_bound
from ..errors import C2CError, InvalidParams
from ..notify.webhooks import ALL_EVENTS, EVENTS
from ..patterns import Pattern
from ..store import MAX_PAGE

MAX_QUERY_LENGTH = 4096
KNOWN_PARAMS = ("ext", "phone", "src_cid_name", "src_cid_number", "dest_cid_name",
                "dest_cid_number", "auto_answer", "hotline", "is_encode", "customer_id", "record")
# POST /v2/click2call: the carrier's body names -> the v1 parameter each stands for. Every v1
# parameter may be given in the body by its v1 name instead (customer_id, phone, ext, and the
# optional ones, V2_OPTIONAL, which have no other name); both names of one is refused.
V2_NAMES = {"id": "customer_id", "mobile": "phone", "agent": "ext"}
_V2_NAME_OF = {v1: v2 for v2, v1 in V2_NAMES.items()}
V2_OPTIONAL = ("src_cid_name", "src_cid_number", "dest_cid_name", "dest_cid_number", "auto_answer",
               "hotline", "is_encode", "record")
_V2_BOOLEANS = ("auto_answer", "is_encode", "record")
CDR_PARAMS = ("start_date", "end_date", "extension", "phone", "status", "customer_id", "direction", "limit",
              "page", "offset", "scroll_id")
PAGE_PARAMS = ("page", "limit", "offset")    # any of them: a page; none: a scroll (the carrier's default)
DIRECTIONS = ("outbound", "inbound")
MAX_OFFSET = 10**8
HOOK_PARAMS = ("id",)
HOOK_PAGE_PARAMS = ("limit", "page")
MAX_JSON_BODY = 16 * 1024       # a webhook registration is a few hundred bytes
MAX_JSON_DEPTH = 8              # {"events": [...]} is 2 deep; deeper is a parser attack
CDR_STATUSES: tuple[CdrStatus, ...] = ("ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CANCEL")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_query(raw_query: str, known: tuple[str, ...] = KNOWN_PARAMS) -> dict[str, str]:
    """Decode a raw query string strictly: UTF-8 only, no repeated ``known`` parameter (the
    endpoint's own: which of two values was meant cannot be guessed)."""
    if len(raw_query) > MAX_QUERY_LENGTH:
        raise InvalidParams(f"query: longer than {MAX_QUERY_LENGTH} characters")
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=64)
    except UnicodeDecodeError:
        raise InvalidParams("query: not valid UTF-8 after percent-decoding") from None
    except ValueError:
        raise InvalidParams("query: too many parameters") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params and name in known:
            raise InvalidParams(f"{name}: given more than once")
        params.setdefault(name, value)
    return params


# -- click-to-call -----------------------------------------------------------------------------

def parse_click_to_call(params: dict[str, str]) -> ClickToCallRequest:
    """Build the request from decoded parameters; unknown parameters are ignored."""
    ext = _required(params, "ext")
    if not patterns.EXTENSION.fullmatch(ext):
        raise InvalidParams(f"ext: must be {patterns.EXTENSION.rule}")
    phone = _required(params, "phone")
    if parse_bool(params, "is_encode"):
        phone = _decode_base64(phone)
    return ClickToCallRequest(
        ext=ext,
        phone=normalize_phone(phone),
        src_cid_name=_name(params, "src_cid_name") or "Click2Call",
        src_cid_number=optional_match(params, "src_cid_number", patterns.CID_NUMBER),
        dest_cid_name=_name(params, "dest_cid_name"),
        dest_cid_number=optional_match(params, "dest_cid_number", patterns.CID_NUMBER),
        auto_answer=parse_bool(params, "auto_answer"),
        hotline=optional_match(params, "hotline", patterns.HOTLINE),
        customer_id=optional_match(params, "customer_id", patterns.CUSTOMER_ID),
        record=parse_bool(params, "record") if params.get("record", "") != "" else None,
    )


@dataclass(frozen=True)
class V2Request:
    """A v2 body as the v1 request it stands for, and the body's key that gave each of
    ``customer_id``, ``phone`` and ``ext`` (an error names what the client sent)."""
    request: ClickToCallRequest
    names: dict[str, str]


def parse_click_to_call_v2(raw_body: bytes) -> V2Request:
    """``POST /v2/click2call`` body: ``{"id": customer, "mobile": phone, "agent": ext}`` (all
    three required; each may be given by its v1 name instead: ``customer_id``, ``phone``,
    ``ext``, but not by both), plus any of ``V2_OPTIONAL`` by its v1 name; unknown keys are
    ignored. Values are JSON strings (``auto_answer`` and ``is_encode`` may also be JSON
    booleans; null is the same as absent). Checked exactly as v1 checks them; a message names
    the body's key (``v2_named``)."""
    body = json_object(raw_body)
    params: dict[str, str] = {}
    names: dict[str, str] = {}          # v1 name -> the body's key that gave it
    for key in (*V2_NAMES, *_V2_NAME_OF, *V2_OPTIONAL):
        value = body.get(key)
        if value is None:
            continue
        v1_name = V2_NAMES.get(key, key)
        if v1_name in names:
            raise InvalidParams(f"{names[v1_name]}: given twice, as {names[v1_name]} and as {key} "
                                "(one name per parameter: which was meant cannot be guessed)")
        if isinstance(value, bool) and key in _V2_BOOLEANS:
            value = "true" if value else "false"
        if not isinstance(value, str):
            raise InvalidParams(f"{key}: must be a string" + (" or a boolean" if key in _V2_BOOLEANS else ""))
        params[v1_name], names[v1_name] = value, key
    if not params.get("customer_id"):
        raise InvalidParams(f"{names.get('customer_id', 'id')}: required")
    try:
        return V2Request(parse_click_to_call(params), names)
    except InvalidParams as exc:
        raise v2_named(exc, names) from None


def v2_named(error: C2CError, names: dict[str, str] | None = None) -> C2CError:
    """The error, its message naming the v2 body's key for the v1 parameter it names
    (``agent: ...`` for ``ext: ...``, unless the body said ``ext``; ``names``: v1 name -> the
    body's key): a copy, as an error may be shared (a call's outcome)."""
    for v1_name, v2_name in _V2_NAME_OF.items():
        if error.message.startswith(f"{v1_name}:"):
            key = (names or {}).get(v1_name, v2_name)
            if key == v1_name:
                return error
            renamed = copy.copy(error)
            renamed.message = f"{key}:{error.message[len(v1_name) + 1:]}"
            renamed.args = (renamed.message,)
            return renamed
    return error


def normalize_phone(raw: str) -> str:
    """Remove common formatting (spaces, dots, dashes, parentheses, one leading +)."""
    digits = patterns.PHONE_FORMATTING.sub("", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    if not patterns.PHONE_DIGITS.fullmatch(digits):
        raise InvalidParams(f"phone: must be {patterns.PHONE_DIGITS.rule}")
    return digits


def parse_bool(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "")
    if value == "":
        return False
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise InvalidParams(f"{name}: must be true, false, 1, 0, yes or no") from None


def _decode_base64(value: str) -> str:
    """``is_encode=true``: phone is Base64 (standard or URL-safe alphabet, padding optional)."""
    if len(value) > 64:
        raise InvalidParams("phone: Base64 value too long")
    padded = value + "=" * (-len(value) % 4)
    try:
        alphabet_fixed = padded.replace("-", "+").replace("_", "/")
        decoded = base64.b64decode(alphabet_fixed, validate=True)
        return decoded.decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidParams("phone: is_encode is true but phone is not valid Base64 of an ASCII number") from None


def _name(params: dict[str, str], name: str) -> str | None:
    """Caller-ID names: letters (any script), digits, space and . - _ ' @ +; NFC-normalised."""
    value = params.get(name, "")
    if value == "":
        return None
    value = unicodedata.normalize("NFC", value)
    if len(value) > patterns.NAME_MAX_LENGTH:
        raise InvalidParams(f"{name}: longer than {patterns.NAME_MAX_LENGTH} characters")
    for ch in value:
        if ch in patterns.NAME_PUNCTUATION:
            continue
        if unicodedata.category(ch)[0] not in "LMN":
            raise InvalidParams(f"{name}: character {ch!r} is not allowed "
                                "(letters, digits, space and . - _ ' @ + only)")
    if value.strip() != value or not value.strip():
        raise InvalidParams(f"{name}: must not start or end with a space")
    return value


# -- shared by every resource ------------------------------------------------------------------

def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if value == "":
        raise InvalidParams(f"{name}: required")
    return value


def optional_match(params: dict[str, str], name: str, pattern: Pattern) -> str | None:
    """An optional parameter that must fully match ``pattern``; None when absent or empty."""
    value = params.get(name, "")
    if value == "":
        return None
    if not pattern.fullmatch(value):
        raise InvalidParams(f"{name}: must be {pattern.rule}")
    return value


def checked(name: str, value: str, pattern: Pattern) -> str:
    """A required value (a path part, a header) that must fully match ``pattern``."""
    if not pattern.fullmatch(value):
        raise InvalidParams(f"{name}: {pattern.rule}")
    return value


# -- CDRs --------------------------------------------------------------------------------------

def parse_cdr_query(params: dict[str, str], zone: tzinfo = UTC) -> CdrQuery:
    """``GET /v1/cdr``: start_date, end_date (carrier dates in ``zone``), extension, phone,
    status, customer_id, direction, limit, page, offset. ``scroll_id`` is read by the handler."""
    return CdrQuery(
        start_date=_date(params, "start_date", zone, end=False),
        end_date=_date(params, "end_date", zone, end=True),
        extension=optional_match(params, "extension", patterns.EXTENSION),
        phone=optional_match(params, "phone", patterns.CID_NUMBER),
        status=_one_of(params, "status", CDR_STATUSES),
        customer_id=optional_match(params, "customer_id", patterns.CUSTOMER_ID),
        direction=_one_of(params, "direction", DIRECTIONS, " (click-to-call calls are outbound)"),
        limit=_int(params, "limit", 50, 1, MAX_PAGE), page=_int(params, "page", 1, 1, 10**6),
        offset=_int(params, "offset", 0, 0, MAX_OFFSET) if params.get("offset", "") != "" else None)


def is_paged(params: dict[str, str]) -> bool:
    """A page (page, limit or offset given) rather than a scroll."""
    return any(params.get(name, "") != "" for name in PAGE_PARAMS)


def parse_page(params: dict[str, str]) -> tuple[int, int]:
    """``limit`` (1-500, default 50) and ``page`` (from 1) of a listing."""
    return _int(params, "limit", 50, 1, MAX_PAGE), _int(params, "page", 1, 1, 10**6)


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise InvalidParams(f"{name}: a whole number from {low} to {high}")
    return int(value)


def _date(params: dict[str, str], name: str, zone: tzinfo, *, end: bool) -> str | None:
    """A carrier date filter as the UTC bound the store compares with (``carrier.date_bound``)."""
    value = params.get(name, "")
    if value == "":
        return None
    if not value.isascii() or len(value) > 40:
        raise InvalidParams(f"{name}: {DATE_RULE}")
    try:
        return date_bound(value, zone, end=end)
    except DateOutOfRange as exc:
        raise InvalidParams(f"{name}: {exc}") from None
    except (ValueError, OverflowError):
        raise InvalidParams(f"{name}: {DATE_RULE}") from None


def _one_of(params: dict[str, str], name: str, allowed: tuple[str, ...], note: str = "") -> str | None:
    """An optional parameter that must be one of ``allowed`` (None when absent or empty)."""
    value = params.get(name, "")
    if value == "":
        return None
    if value not in allowed:
        raise InvalidParams(f"{name}: one of {', '.join(allowed)}{note}")
    return value


# -- token exchange ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenRequest:
    api_key: str             # "" when absent: refused as a wrong key would be (401)
    ext: str | None          # the only extension the token may act for


def parse_token_request(raw_body: bytes) -> TokenRequest:
    """``POST /v1/auth/token`` body: {"api_key": ..., "ext": optional}."""
    body = json_object(raw_body)
    api_key = body.get("api_key", "")
    if not isinstance(api_key, str) or (api_key and not patterns.TOKEN.fullmatch(api_key)):
        raise InvalidParams("api_key: a string of printable ASCII without spaces (at most 512)")
    ext = body.get("ext")
    if ext is not None and (not isinstance(ext, str) or not patterns.EXTENSION.fullmatch(ext)):
        raise InvalidParams(f"ext: must be {patterns.EXTENSION.rule}")
    return TokenRequest(api_key, ext)


def json_object(raw_body: bytes, max_bytes: int = MAX_JSON_BODY) -> dict:
    """A JSON object body: bounded in size and depth before it is parsed."""
    if len(raw_body) > max_bytes:
        raise InvalidParams(f"body: larger than {max_bytes} bytes")
    try:        # UTF-8 only: json.loads(bytes) would also guess UTF-16/32, which the depth scan reads wrong
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParams("body: must be UTF-8 JSON") from None
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise InvalidParams(f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text, object_pairs_hook=_without_duplicates)
    except (ValueError, RecursionError):
        raise InvalidParams("body: must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidParams("body: must be a JSON object")
    return body


# -- the do-not-call list --------------------------------------------------------------------

BLACKLIST_PAGE_PARAMS = ("limit", "offset")


def parse_blacklist_page(params: dict[str, str]) -> tuple[int, int]:
    """``GET /v1/blacklist``: ``limit`` (1-500, default 50) and ``offset`` (default 0)."""
    return _int(params, "limit", 50, 1, MAX_PAGE), _int(params, "offset", 0, 0, MAX_OFFSET)


def parse_blacklist_entries(raw_body: bytes, max_bytes: int) -> list[tuple[str, str]]:
    """``{"blacklist": [{"phone_number", "description"}]}`` -> (phone_number, description)."""
    items = _blacklist_items(json_object(raw_body, max_bytes))
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("phone_number"), (str, int)) \
                or isinstance(item.get("phone_number"), bool):
            raise InvalidParams(f"blacklist[{i}]: an object with phone_number (a string) is expected")
        description = item.get("description") or ""
        if not isinstance(description, str) or len(description) > 255 or not description.isprintable():
            raise InvalidParams(f"blacklist[{i}].description: at most 255 printable characters")
        out.append((str(item["phone_number"]), description))
    return out


def parse_blacklist_phones(raw_body: bytes, max_bytes: int) -> list[str]:
    """``{"blacklist": ["0899990988", ...]}`` -> the numbers."""
    items = _blacklist_items(json_object(raw_body, max_bytes))
    if not all(isinstance(p, str) and len(p) <= 40 for p in items):
        raise InvalidParams("blacklist: a list of phone numbers (strings) is expected")
    return list(items)


def _blacklist_items(body: dict) -> list[Any]:
    items = body.get("blacklist")
    if not isinstance(items, list) or not items:
        raise InvalidParams("blacklist: a non-empty list is required")
    if len(items) > MAX_ENTRIES_PER_REQUEST:
        raise InvalidParams(f"blacklist: at most {MAX_ENTRIES_PER_REQUEST} numbers per request")
    return items


# -- webhooks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class HookRequest:
    url: str
    events: list[str]
    secret: str | None           # None: generate one
    api_key: str | None = None   # the receiver's key, sent as X-Api-Key and Authorization: Bearer
    carrier: bool = False        # the carrier's shape: answered in the carrier's keys

    @property
    def url_field(self) -> str:
        return "callback_url" if self.carrier else "url"


# The carrier's events this gateway never produces (it places click-to-call calls only).
UNSUPPORTED_CARRIER_EVENTS = ("missed", "cdr_autocall")


def parse_hook(raw_body: bytes) -> HookRequest:
    """``POST /v1/event`` body, in either shape, told apart by its URL key:

    * c2c-ami: ``{"url": ..., "events": [...], "secret": optional}``
    * the carrier's: ``{"callback_url": ..., "event": ..., "callback_apikey": optional,
      "secret": optional}`` -- one event per registration.

    Both URL keys, or a key of one shape with the other's URL key, is refused: which was
    meant cannot be guessed, and a credential silently dropped would be worse."""
    body = json_object(raw_body)
    secret = body.get("secret") or None
    if secret is not None and (not isinstance(secret, str) or not patterns.HOOK_SECRET.fullmatch(secret)):
        raise InvalidParams(f"secret: {patterns.HOOK_SECRET.rule}")
    if "callback_url" in body:
        if "url" in body:
            raise InvalidParams("callback_url: give either url (with events) or callback_url (with event), not both")
        if "events" in body:
            raise InvalidParams("events: not with callback_url; one registration is one event: "
                                f"event: one of {', '.join(EVENTS)}")
        return HookRequest(url=_hook_url(body["callback_url"], "callback_url"), events=[_carrier_event(body)],
                           secret=secret, api_key=_api_key(body.get("callback_apikey")), carrier=True)
    for key in ("event", "callback_apikey"):
        if key in body:
            raise InvalidParams(f"{key}: only with callback_url (with url, give events: [...])")
    return HookRequest(url=_hook_url(body.get("url")), events=_hook_events(body.get("events", [ALL_EVENTS])),
                       secret=secret)


def _carrier_event(body: dict) -> str:
    event = body.get("event")
    if isinstance(event, str) and event in EVENTS:
        return event
    rule = f"event: one of {', '.join(EVENTS)}"
    if event in UNSUPPORTED_CARRIER_EVENTS:
        rule += (f" ({' and '.join(UNSUPPORTED_CARRIER_EVENTS)} never happen here: "
                 "this gateway places click-to-call calls only)")
    raise InvalidParams(rule)


def _api_key(value: object) -> str | None:
    """``callback_apikey``: absent, null or "" is none. Never echoed in an error."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not patterns.HOOK_API_KEY.fullmatch(value):
        raise InvalidParams(f"callback_apikey: {patterns.HOOK_API_KEY.rule}")
    return value


def _without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object, unless a key repeats in it (at any depth): which value was meant cannot
    be guessed (parsers keep the first, the last, or either)."""
    body = dict(pairs)
    if len(body) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if key.isascii() and key.isprintable() and len(key) <= 64 else json.dumps(key[:64])
                raise InvalidParams(f"{shown}: given more than once in the body")
            seen.add(key)
    return body


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` (strings skipped), found in one pass
    without recursion -- the stdlib parser recurses, and overflows, on deep nesting."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _hook_url(url: object, field: str = "url") -> str:
    if not isinstance(url, str) or not patterns.HOOK_URL.fullmatch(url):
        raise InvalidParams(f"{field}: {patterns.HOOK_URL.rule}")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port                      # noqa: B018 -- raises on a port that is not a number
    except ValueError:                  # e.g. http://[::1/ (unbalanced IPv6 bracket)
        valid = False
    if not valid:
        raise InvalidParams(f"{field}: must be an absolute http:// or https:// URL")
    return url


def _hook_events(events: object) -> list[str]:
    if not isinstance(events, list) or not events or not all(
            isinstance(e, str) and (e in EVENTS or e == ALL_EVENTS) for e in events):
        raise InvalidParams(f"events: a non-empty list of {', '.join(EVENTS)} or {ALL_EVENTS}")
    return sorted(set(events))


# -- call control ------------------------------------------------------------------------------

LEGS = ("bleg", "aleg")
SUPERVISION_MODES = ("listen", "whisper", "barge")


@dataclass(frozen=True)
class ControlRequest:
    """A call-control body: ``{"ext", "legs", "auto_answer"}``, what each action takes of it."""
    ext: str | None = None
    legs: str | None = None
    auto_answer: bool = False


def parse_control(raw_body: bytes, *, ext: bool = False, legs: bool = False, legs_default: str | None = None,
                  auto_answer: bool = False) -> ControlRequest:
    """The JSON body of a call-control action, with what the action takes: ``ext`` (then
    required), ``legs`` (``bleg`` or ``aleg``; ``legs_default`` when absent, None: required),
    ``auto_answer`` (a JSON boolean or true/false/1/0/yes/no). An empty body is ``{}``, and a
    null the same as absent. Keys the action does not take are refused, never ignored."""
    body = json_object(raw_body) if raw_body.strip() else {}
    body = {key: value for key, value in body.items() if value is not None}     # null: absent, as in v2
    allowed = {name for name, taken in (("ext", ext), ("legs", legs), ("auto_answer", auto_answer)) if taken}
    unknown = sorted(set(body) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "no parameter"
        raise InvalidParams(f"{unknown[0]}: not a parameter of this action (it takes: {takes})")
    request_ext = None
    if ext:
        value = body.get("ext")
        if not isinstance(value, str) or not value:
            raise InvalidParams("ext: required, a string")
        request_ext = checked("ext", value, patterns.EXTENSION)
    chosen = None
    if legs:
        chosen = body.get("legs", legs_default)
        if chosen is None:
            raise InvalidParams("legs: required, bleg (the customer) or aleg (the agent)")
        if chosen not in LEGS:
            raise InvalidParams("legs: must be bleg (the customer) or aleg (the agent)")
    answer = body.get("auto_answer", False)
    if isinstance(answer, str):
        answer = parse_bool({"auto_answer": answer}, "auto_answer")
    if not isinstance(answer, bool):
        raise InvalidParams("auto_answer: must be true or false")
    return ControlRequest(ext=request_ext, legs=chosen, auto_answer=answer)
