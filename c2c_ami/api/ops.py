"""For operators and tools: liveness, readiness, Prometheus metrics, the check of the
Asterisk side, the OpenAPI document."""
from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..app_keys import CONFIG, METRICS, SERVICE
from ..auth import bearer_token, check_bearer
from ..errors import Forbidden, Unauthorized
from .common import authenticated, authorization_of, principal_of
from .openapi import build_openapi

routes = web.RouteTableDef()
_OPENAPI = build_openapi()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 when calls can be placed on at least one PBX and the store answers (503 else), with
    every PBX's AMI link state and, when it is not ready, why; and the store's state (never
    its address). ``ami``/``detail`` are the first PBX's."""
    readiness = request.app[SERVICE].readiness()
    pbxs = [{"name": p.name, "ami": p.ami, **({"detail": p.detail} if p.detail else {}),
             **({"findings": list(p.findings)} if p.findings else {})} for p in readiness.pbxs]
    store = readiness.store
    body = {"status": "ready" if readiness.ready else "not_ready", "ami": pbxs[0]["ami"], "pbxs": pbxs,
            "store": {"backend": store.backend, "state": store.state,
                      **({"down_seconds": store.down_seconds} if store.state != "ready" else {})}}
    if "detail" in pbxs[0]:
        body["detail"] = pbxs[0]["detail"]
    return web.json_response(body, status=200 if readiness.ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Open, unless ``metrics.token`` is set: then ``Authorization: Bearer <that token>``
    (a wrong one counts against the address's failed authentications, as any credential)."""
    digest = request.app[CONFIG].metrics.token_digest
    if digest is not None:
        authorization = authorization_of(request)
        authenticated(request, authorization, lambda given: check_bearer(given, digest))
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/v1/pbx/check")
async def pbx_check(request: web.Request) -> web.Response:
    """The check of every PBX's Asterisk side, now. The operator's: ``metrics.token``, as
    ``/metrics`` takes it (a tenant's token is no such token); closed while it is not set (the
    check runs AMI actions and shows the PBX's configuration)."""
    digest = request.app[CONFIG].metrics.token_digest
    authorization = authorization_of(request)
    if digest is None:
        bearer_token(authorization)                     # no header: say so first
        raise Unauthorized("invalid token (GET /v1/pbx/check takes metrics.token, which is not set)")
    authenticated(request, authorization, lambda given: check_bearer(given, digest))
    results = await request.app[SERVICE].check_pbxs()
    pbxs = [{"name": name, "findings": [f.as_dict() for f in r.findings], "skipped": list(r.skipped),
             "blocking": r.blocking} for name, r in results.items()]
    return web.json_response({"status": "findings" if any(p["findings"] for p in pbxs) else "ok", "pbxs": pbxs})


@routes.get("/v1/pbx/status")
async def pbx_status(request: web.Request) -> web.Response:
    """The tenant's own PBX: its AMI link and the last check's findings that concern the tenant
    (the console's view; the operator's ``GET /v1/pbx/check`` runs the check of every PBX)."""
    principal = await principal_of(request)
    if principal.ext is not None:
        raise Forbidden("token: a token for one extension may not read the PBX's configuration")
    return web.json_response({"status": "success", "pbx": request.app[SERVICE].pbx_status(principal.tenant)})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(_OPENAPI)
