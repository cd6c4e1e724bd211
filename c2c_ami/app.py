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
                       REGISTRY, SERVICE, STORAGE, WEBHOOKS)
from .auth import TokenAuthority
from .calls import CallRegistry
from .config import Config
from .errors import PbxUnavailable
from .events import CallEventRouter
from .guards import RateLimiter, SingleFlight
from .http import error_middleware, setup_routes
from .metrics import Metrics
from .notifier import CallReporter
from .records_http import setup_record_routes
from .service import CallService
from .storage import SqliteStorage
from .webhooks import WebhookNotifier


def create_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    limits = config.limits
    app[CONFIG] = config
    app[AUTH] = TokenAuthority(config.tenants)
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(limits.rate_per_minute, limits.rate_burst)
    app[DUPLICATES] = SingleFlight(limits.duplicate_window, remember_failures=False)
    app[IDEMPOTENCY] = SingleFlight(limits.idempotency_ttl, remember_failures=True)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(pbx_ctx)
    app.on_shutdown.append(drain_calls)
    setup_routes(app)
    setup_record_routes(app)
    return app


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """CDR store and webhook outbox: opened before the AMI link, closed after it, so every
    call that ends during shutdown is still recorded and its webhooks queued."""
    config = app[CONFIG]
    storage = SqliteStorage(config.storage.path)
    hooks = config.webhooks
    webhooks = WebhookNotifier(storage, timeout=hooks.timeout, max_attempts=hooks.max_attempts,
                               backoff_base=hooks.backoff_base, backoff_max=hooks.backoff_max,
                               concurrency=hooks.concurrency)
    app[STORAGE] = storage
    app[WEBHOOKS] = webhooks
    await webhooks.start()
    yield
    await webhooks.close()
    storage.close()


async def pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    """The AMI link and the calls that depend on it live exactly as long as the app."""
    config = app[CONFIG]
    registry = CallRegistry(CallReporter(app[STORAGE], app[WEBHOOKS]))
    router = CallEventRouter(registry, config.calls.max_call_seconds)
    ami = AmiClient(config.ami, on_event=router)
    ami.on_down(lambda: registry.finish_all(
        lambda: PbxUnavailable("the PBX link was lost while the call was in progress")))
    app[REGISTRY] = registry
    app[AMI] = ami
    service = CallService(ami, registry, config.calls)
    router.actions = service
    app[SERVICE] = service
    app[METRICS].watch(ami, registry)
    ami.start()
    yield
    await service.close()
    await ami.close()
    registry.finish_all(lambda: PbxUnavailable("the gateway is shutting down"))


async def drain_calls(app: web.Application) -> None:
    """Stop accepting; give waiting sync requests a bounded grace, then answer them."""
    service = app[SERVICE]
    service.stop_accepting()
    await service.wait_no_waiters(app[CONFIG].limits.shutdown_grace)
    app[REGISTRY].finish_all(lambda: PbxUnavailable("the gateway is shutting down"))
