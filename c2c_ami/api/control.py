"""Call control, the carrier's way (``POST /v1/call/{call_id}/...``): transfer, park, listen,
whisper, barge, and masking the recording (pause/resume). Parse the body, ask the call
control service, answer ``{"status": "success", "call_id": ..., ...}``. An extension-scoped
token acts only on its extension's calls."""
from __future__ import annotations

from aiohttp import web

from ..app_keys import CONTROL
from .common import body_of, call_id_of, principal_of, success
from .schemas import parse_control

routes = web.RouteTableDef()


@routes.post("/v1/call/{call_id}/transfer")
async def transfer(request: web.Request) -> web.Response:
    """``{"ext", "legs": "bleg"|"aleg"}`` (bleg by default): answers once ``ext`` answered
    (the party moved) or did not (nothing moved: NO_ANSWER, USER_BUSY)."""
    principal = await principal_of(request)
    body = parse_control(await body_of(request), ext=True, legs=True, legs_default="bleg")
    result = await request.app[CONTROL].transfer(principal.tenant, call_id_of(request), body.ext or "",
                                                 "aleg" if body.legs == "aleg" else "bleg", principal.ext)
    return success(**result)


@routes.post("/v1/call/{call_id}/park")
async def park(request: web.Request) -> web.Response:
    """``{"legs": "bleg"|"aleg"}``: that party waits for a transfer (``calls.park_timeout``)."""
    principal = await principal_of(request)
    body = parse_control(await body_of(request), legs=True)
    result = await request.app[CONTROL].park(principal.tenant, call_id_of(request),
                                             "aleg" if body.legs == "aleg" else "bleg", principal.ext)
    return success(**result)


async def _supervise(request: web.Request, mode: str) -> web.Response:
    principal = await principal_of(request)
    body = parse_control(await body_of(request), ext=True, auto_answer=True)
    result = await request.app[CONTROL].supervise(
        principal.tenant, call_id_of(request), body.ext or "",
        "whisper" if mode == "whisper" else "barge" if mode == "barge" else "listen", body.auto_answer, principal.ext)
    return success(**result)


@routes.post("/v1/call/{call_id}/listen")
async def listen(request: web.Request) -> web.Response:
    """``{"ext", "auto_answer"}``: ``ext`` hears the call, silently."""
    return await _supervise(request, "listen")


@routes.post("/v1/call/{call_id}/whisper")
async def whisper(request: web.Request) -> web.Response:
    """``{"ext", "auto_answer"}``: ``ext`` hears the call and speaks to the agent only."""
    return await _supervise(request, "whisper")


@routes.post("/v1/call/{call_id}/barge")
async def barge(request: web.Request) -> web.Response:
    """``{"ext", "auto_answer"}``: ``ext`` hears the call and speaks to both parties."""
    return await _supervise(request, "barge")


@routes.post("/v1/call/{call_id}/recording/pause")
async def pause_recording(request: web.Request) -> web.Response:
    """The recording goes on in silence (a card number is being said)."""
    principal = await principal_of(request)
    parse_control(await body_of(request))            # no parameter: a body with one is refused
    result = await request.app[CONTROL].mask_recording(principal.tenant, call_id_of(request), True, principal.ext)
    return success(**result)


@routes.post("/v1/call/{call_id}/recording/resume")
async def resume_recording(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    parse_control(await body_of(request))
    result = await request.app[CONTROL].mask_recording(principal.tenant, call_id_of(request), False, principal.ext)
    return success(**result)
