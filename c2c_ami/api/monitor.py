"""The agent monitor, the carrier's way (``docs/monitor.md`` of its API): ``GET
/v1/monitor/agent`` -> ``{"data": [{extension, agent_name, call_state, call_id, call_time,
destination, direction, user_agent, network_ip, server_host}], "total"}``. An
extension-scoped token sees its own extension only. No AMI round trip: it is read from what
the gateway keeps from AMI events (``calls/monitor.py``)."""
from __future__ import annotations

from aiohttp import web

from ..app_keys import MONITOR
from .common import principal_of

routes = web.RouteTableDef()


@routes.get("/v1/monitor/agent")
async def monitor_agents(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    agents = await request.app[MONITOR].agents(principal.tenant, principal.ext)
    return web.json_response({"data": agents, "total": len(agents)})
