"""Application factory: config in, a ready-to-run aiohttp app out.

Long-lived resources (the AMI link, the call registry) are opened and closed in one
``cleanup_ctx`` generator, inside the running loop as panoramisk requires. On shutdown
(SIGTERM under ``run_app``) new requests are refused, waiting synchronous requests get
``limits.shutdown_grace`` to finish, the rest are answered, then AMI logs off.
"""
from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from .ami import AmiClient
from .app_keys import (AMI, AUTH, CONFIG, DUPLICATES, IDEMPOTENCY, METRICS, RATE_LIMITER,
                       REGISTRY, SERVICE)
from .auth import TokenAuthority
from .calls import CallRegistry
from .config import Config
from .errors import PbxUnavailable
from .events import CallEventRouter
from .guards import RateLimiter, SingleFlight
from .http import error_middleware, setup_routes
from .metrics import Metrics
from .service import CallService


def create_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    limits = config.limits
    app[CONFIG] = config
    app[AUTH] = TokenAuthority(config.tenants)
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(limits.rate_per_minute, limits.rate_burst)
    app[DUPLICATES] = SingleFlight(limits.duplicate_window, remember_failures=False)
    app[IDEMPOTENCY] = SingleFlight(limits.idempotency_ttl, remember_failures=True)
    app.cleanup_ctx.append(pbx_ctx)
    app.on_shutdown.append(drain_calls)
    setup_routes(app)
    return app


async def pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    """The AMI link and the calls that depend on it live exactly as long as the app."""
    config = app[CONFIG]
    registry = CallRegistry()
    router = CallEventRouter(registry, config.calls.max_call_seconds)
    ami = AmiClient(config.ami, on_event=router)
    ami.on_down(lambda: registry.finish_all(
        lambda: PbxUnavailable("the PBX link was lost while the call was in progress")))
    app[REGISTRY] = registry
    app[AMI] = ami
    app[SERVICE] = CallService(ami, registry, config.calls)
    app[METRICS].watch(ami, registry)
    ami.start()
    yield
    await ami.close()
    registry.finish_all(lambda: PbxUnavailable("the gateway is shutting down"))


async def drain_calls(app: web.Application) -> None:
    """Stop accepting; give waiting sync requests a bounded grace, then answer them."""
    service = app[SERVICE]
    service.stop_accepting()
    await service.wait_no_waiters(app[CONFIG].limits.shutdown_grace)
    app[REGISTRY].finish_all(lambda: PbxUnavailable("the gateway is shutting down"))
