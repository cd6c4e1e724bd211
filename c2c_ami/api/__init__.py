"""The HTTP API: one module per resource; handlers parse, ask a service, serialise."""
from aiohttp import web

from . import blacklist, calls, cdr, click2call, console, control, events, monitor, ops, recordings, token, webhooks
from .errors import error_middleware

__all__ = ["error_middleware", "setup_routes"]


def setup_routes(app: web.Application) -> None:
    for module in (token, click2call, calls, control, recordings, cdr, webhooks, blacklist, monitor, events, ops,
                   console):
        app.router.add_routes(module.routes)
