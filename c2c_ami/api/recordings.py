"""``GET /v1/recording/{call_id}``: a call's recording (WAV), with HTTP Range.

Two ways in: the signed link the CDR and the ``cdr`` webhook carry (``?exp=…&sig=…``, no token:
a CRM puts it in an audio player; an expired or altered link is 403), or a Bearer token of
the call's tenant (an extension-scoped token: its own calls only). A bad link counts as a
failed authentication of the client's address, as a bad token does (429 once too many). The
file is read from the tenant's ``recording.local_dir``; no file is 404 CALL_NOT_FOUND."""
from __future__ import annotations

import os

from aiohttp import web

from ..addresses import client_key
from ..app_keys import AUTH_FAILURES, CONFIG, RECORDINGS, SERVICE
from ..calls.recordings import local_file
from ..errors import CallNotFound, Forbidden
from .common import FAILURE_SCOPE, call_id_of, principal_of, query_of

routes = web.RouteTableDef()
PARAMS = ("exp", "sig")


@routes.get("/v1/recording/{call_id}")
async def recording(request: web.Request) -> web.StreamResponse:
    call_id = call_id_of(request)
    params = query_of(request, PARAMS)
    if "sig" in params or "exp" in params:
        failures, client = request.app[AUTH_FAILURES], client_key(request.remote)
        failures.peek(FAILURE_SCOPE, client)      # an address that guessed too often: 429 first
        refusal = request.app[RECORDINGS].verify(call_id, params.get("exp", ""), params.get("sig", ""))
        if refusal is not None:
            failures.check(FAILURE_SCOPE, client)     # a bad link is a guess, as a bad token is
            raise Forbidden(f"recording link: {refusal}")
        dirs = dict.fromkeys(t.recording.reads_from for t in request.app[CONFIG].tenants)   # the link names the call
    else:
        principal = await principal_of(request)
        record = await request.app[SERVICE].call(principal.tenant, call_id, principal.ext)
        if not record.get("recorded"):
            raise CallNotFound("this call has no recording")
        dirs = {principal.tenant.recording.reads_from: None}
    for directory in dirs:
        path = local_file(directory, call_id)
        if os.path.isfile(path):
            return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private"})
    raise CallNotFound("no recording file for this call_id")
