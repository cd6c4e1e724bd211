"""Application factory: config in, a ready-to-run aiohttp app out; all the wiring is here.

Long-lived resources are opened and closed in ``cleanup_ctx`` generators, inside the running
loop as panoramisk requires: the store and webhook worker first (closed last, so every call
that ends during shutdown is still recorded), then the AMI link and the calls that depend on
it. On shutdown (SIGTERM under ``run_app``) new calls are refused, waiting synchronous
requests get ``limits.shutdown_grace`` to finish, the rest are answered, then AMI logs off.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .api import error_middleware, setup_routes
from .api.auth import TokenAuthority
from .api.keys import AMI, AUTH, CONFIG, METRICS, RATE_LIMITER, REGISTRY, SERVICE, STORAGE, SUBSCRIPTIONS, WEBHOOKS
from .calls.guards import RateLimiter, SingleFlight
from .calls.registry import CallRegistry
from .calls.service import OUTCOME_GRACE_SECONDS, CallService
from .config import Config
from .errors import PbxUnavailable
from .metrics import Metrics
from .notify.reporter import CallReporter
from .notify.subscriptions import Subscriptions
from .notify.webhooks import WebhookNotifier
from .pbx import AmiClient, Pbx
from .pbx.events import CallEvents
from .store import SqliteStorage


def create_app(config: Config) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[CONFIG] = config
    app[AUTH] = TokenAuthority(config.tenants)
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(config.limits.rate_per_minute, config.limits.rate_burst)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(pbx_ctx)
    app.on_shutdown.append(drain_calls)
    setup_routes(app)
    return app


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """CDR store and webhook outbox: opened before the AMI link, closed after it."""
    config = app[CONFIG]
    storage = SqliteStorage(config.storage.path)
    hooks = config.webhooks
    webhooks = WebhookNotifier(storage, timeout=hooks.timeout, max_attempts=hooks.max_attempts,
                               backoff_base=hooks.backoff_base, backoff_max=hooks.backoff_max,
                               concurrency=hooks.concurrency)
    app[STORAGE] = storage
    app[WEBHOOKS] = webhooks
    app[SUBSCRIPTIONS] = Subscriptions(storage)
    await webhooks.start()
    yield
    await webhooks.close()
    storage.close()


async def pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    """The AMI link and the calls that depend on it live exactly as long as the app."""
    config, limits = app[CONFIG], app[CONFIG].limits
    ami = AmiClient(config.ami)
    registry = CallRegistry(CallReporter(app[STORAGE], app[WEBHOOKS]),
                            outcome_wait=config.calls.ring_timeout + OUTCOME_GRACE_SECONDS,
                            max_call_seconds=config.calls.max_call_seconds)
    service = CallService(Pbx(ami), registry, app[STORAGE], config.calls,
                          duplicates=SingleFlight(limits.duplicate_window, remember_failures=False),
                          idempotency=SingleFlight(limits.idempotency_ttl, remember_failures=True))
    ami.subscribe(CallEvents(registry, service))
    ami.on_down(service.pbx_lost)
    app[AMI], app[REGISTRY], app[SERVICE] = ami, registry, service
    app[METRICS].watch(ami, registry)
    ami.start()
    yield
    await service.close()
    await ami.close()
    registry.finish_all(lambda: PbxUnavailable("the gateway is shutting down"))


async def drain_calls(app: web.Application) -> None:
    """Stop accepting; give waiting sync requests a bounded grace, then answer them."""
    await app[SERVICE].drain(app[CONFIG].limits.shutdown_grace)
