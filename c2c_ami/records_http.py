"""HTTP resources for what is stored: CDRs and webhook registrations (tenant-scoped)."""
from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from aiohttp import web

from .app_keys import REGISTRY, STORAGE
from .errors import CallNotFound, HookNotFound, InvalidParams
from .http import call_id_of, principal_of
from .schemas import optional_match, parse_query
from .webhooks import ALL_EVENTS, EVENTS

CDR_STATUSES = ("ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CANCEL")
_EXT = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_DIGITS = re.compile(r"\+?[0-9]{1,20}")
_HOOK_ID = re.compile(r"[0-9a-f-]{36}")
_SECRET = re.compile(r"[\x21-\x7e]{16,256}")
MAX_URL = 2000


async def get_call(request: web.Request) -> web.Response:
    """GET /v1/calls/{call_id}: the live state, or the CDR once the call has ended."""
    tenant = principal_of(request).tenant
    call_id = call_id_of(request)
    call = request.app[REGISTRY].get(call_id)
    if call is not None and call.tenant == tenant.domain:
        return web.json_response({"status": "success", "call": call.record()})
    record = request.app[STORAGE].get_call(tenant.domain, call_id)
    if record is None:
        raise CallNotFound("no call with this call_id")
    return web.json_response({"status": "success", "call": record})


async def get_cdr(request: web.Request) -> web.Response:
    """GET /v1/cdr/{call_id}"""
    tenant = principal_of(request).tenant
    record = request.app[STORAGE].get_call(tenant.domain, call_id_of(request))
    if record is None:
        raise CallNotFound("no CDR with this call_id")
    return web.json_response({"status": "success", "call": record})


async def list_cdrs(request: web.Request) -> web.Response:
    """GET /v1/cdr?start_date&end_date&extension&phone&status&limit&page"""
    tenant = principal_of(request).tenant
    params = parse_query(request.rel_url.raw_query_string)
    limit = _int(params, "limit", 50, 1, 500)
    page = _int(params, "page", 1, 1, 10**6)
    records, total = request.app[STORAGE].list_calls(
        tenant.domain, start_date=_date(params, "start_date"), end_date=_date(params, "end_date"),
        extension=optional_match(params, "extension", _EXT, "1-32 letters, digits, '.', '_' or '-'"),
        phone=optional_match(params, "phone", _DIGITS, "1-20 digits with an optional leading +"),
        status=_status(params), limit=limit, page=page)
    return web.json_response({"status": "success", "total": total, "page": page, "limit": limit,
                              "cdrs": records})


async def list_hooks(request: web.Request) -> web.Response:
    """GET /v1/event: this tenant's webhooks (secrets are never shown again)."""
    tenant = principal_of(request).tenant
    return web.json_response({"status": "success", "hooks": request.app[STORAGE].list_hooks(tenant.domain)})


async def add_hook(request: web.Request) -> web.Response:
    """POST /v1/event {"url": ..., "events": [...], "secret": optional}"""
    tenant = principal_of(request).tenant
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise InvalidParams("body: must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidParams("body: must be a JSON object")
    url = _hook_url(body.get("url"))
    events = _hook_events(body.get("events", [ALL_EVENTS]))
    secret = body.get("secret") or secrets.token_urlsafe(32)
    if not isinstance(secret, str) or not _SECRET.fullmatch(secret):
        raise InvalidParams("secret: 16-256 printable ASCII characters without spaces")
    hook = request.app[STORAGE].add_hook(tenant.domain, url, events, secret)
    return web.json_response({"status": "success", "hook": {**hook, "secret": secret}})


async def delete_hook(request: web.Request) -> web.Response:
    """DELETE /v1/event/{hook_id} (or DELETE /v1/event?id=...)"""
    tenant = principal_of(request).tenant
    hook_id = request.match_info.get("hook_id") or parse_query(request.rel_url.raw_query_string).get("id", "")
    if not _HOOK_ID.fullmatch(hook_id):
        raise InvalidParams("id: a webhook id")
    if not request.app[STORAGE].delete_hook(tenant.domain, hook_id):
        raise HookNotFound("no webhook with this id")
    return web.json_response({"status": "success"})


def _hook_url(url: object) -> str:
    if not isinstance(url, str) or len(url) > MAX_URL or not re.fullmatch(r"[\x21-\x7e]+", url):
        raise InvalidParams("url: an http(s) URL without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParams("url: must be an absolute http:// or https:// URL")
    return url


def _hook_events(events: object) -> list[str]:
    if not isinstance(events, list) or not events or not all(
            isinstance(e, str) and (e in EVENTS or e == ALL_EVENTS) for e in events):
        raise InvalidParams(f"events: a non-empty list of {', '.join(EVENTS)} or {ALL_EVENTS}")
    return sorted(set(events))


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise InvalidParams(f"{name}: a whole number from {low} to {high}")
    return int(value)


def _date(params: dict[str, str], name: str) -> str | None:
    value = params.get(name, "")
    if value == "":
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParams(f"{name}: an ISO-8601 date or date-time") from None
    if not value.isascii() or len(value) > 40:
        raise InvalidParams(f"{name}: an ISO-8601 date or date-time")
    return value


def _status(params: dict[str, str]) -> str | None:
    value = params.get("status", "")
    if value == "":
        return None
    if value not in CDR_STATUSES:
        raise InvalidParams(f"status: one of {', '.join(CDR_STATUSES)}")
    return value


def setup_record_routes(app: web.Application) -> None:
    app.router.add_get("/v1/calls/{call_id}", get_call)
    app.router.add_get("/v1/cdr", list_cdrs)
    app.router.add_get("/v1/cdr/{call_id}", get_cdr)
    app.router.add_get("/v1/event", list_hooks)
    app.router.add_post("/v1/event", add_hook)
    app.router.add_delete("/v1/event", delete_hook)
    app.router.add_delete("/v1/event/{hook_id}", delete_hook)
