"""Application factory: config in, a ready-to-run aiohttp app out; all the wiring is here.

Long-lived resources are opened and closed in ``cleanup_ctx`` generators, inside the running
loop as panoramisk requires: the store, webhook worker and call reporter first (closed last,
so every fact a call gets during shutdown is still stored), then one AMI link per PBX and
the calls that depend on them. On shutdown (SIGTERM under ``run_app``) new calls are refused,
waiting synchronous requests get ``limits.shutdown_grace`` to finish, the rest are answered,
then AMI logs off; live calls stay in the store for the next start to track again.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

from aiohttp import web

from .api import error_middleware, setup_routes
from .api.cors import cors_middleware
from .app_keys import (
    AMI,
    AMIS,
    AUTH,
    AUTH_FAILURES,
    CONFIG,
    INSTANCE_ID,
    MEMBERSHIP,
    METRICS,
    RATE_LIMITER,
    RECONCILER,
    REGISTRY,
    REPORTER,
    SCROLL,
    SERVICE,
    STORAGE,
    SUBSCRIPTIONS,
    WEBHOOKS,
)
from .auth import TokenAuthority
from .calls.cluster import Membership
from .calls.guards import Limiter, RateLimiter, SingleFlight
from .calls.registry import CallRegistry
from .calls.service import OUTCOME_GRACE_SECONDS, CallService
from .calls.shared_guards import SharedFlight, SharedRateLimiter
from .carrier import zone
from .config import Config, LimitsConfig
from .http_server import CONNECTIONS, Connections, handler_args, request_over
from .log_filters import throttle_tracebacks
from .metrics import Metrics
from .notify.egress import EgressPolicy
from .notify.reporter import CallReporter
from .notify.subscriptions import Subscriptions
from .notify.webhooks import WebhookNotifier
from .pbx import AmiClient, Pbx
from .pbx.events import CallEvents
from .pbx.journal import EventJournal
from .pbx.reconcile import Reconciler
from .scroll import ScrollCodec
from .store import Storage, open_storage


def create_app(config: Config) -> web.Application:
    # outermost first: CORS headers go on every answer error_middleware makes, and on
    # aiohttp's own (404, 405, 413); a preflight is answered before auth and rate limits
    cors = [cors_middleware(config.api.cors_origins)] if config.api.cors_origins else []
    app = web.Application(middlewares=[*cors, error_middleware],
                          client_max_size=config.http.client_max_size, handler_args=handler_args(config.http))
    app[CONNECTIONS] = Connections(config.http)
    app.on_response_prepare.append(request_over)
    throttle_tracebacks()
    app[CONFIG] = config
    app[INSTANCE_ID] = config.cluster.resolved_instance_id()
    app[AUTH] = TokenAuthority(config.tenants, config.auth)
    app[SCROLL] = ScrollCodec.for_config(config)
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(config.limits.rate_per_minute, config.limits.rate_burst,
                                    capacity=config.limits.remembered_per_tenant)
    app[AUTH_FAILURES] = RateLimiter(config.auth.failures_per_minute, config.auth.failure_burst,
                                     what="failed token requests from this address",
                                     capacity=config.limits.remembered_per_tenant)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(pbx_ctx)
    app.on_shutdown.append(drain_calls)
    setup_routes(app)
    return app


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store, the webhook worker and the call reporter: opened before the AMI links,
    closed after them, so every fact a call gets during shutdown is still stored."""
    config = app[CONFIG]
    storage = await open_storage(config.storage)
    hooks = config.webhooks
    egress = EgressPolicy(allow=hooks.allow_networks, deny=hooks.deny_networks)
    webhooks = WebhookNotifier(storage, timeout=hooks.timeout, max_attempts=hooks.max_attempts,
                               backoff_base=hooks.backoff_base, backoff_max=hooks.backoff_max,
                               concurrency=hooks.concurrency, per_tenant=hooks.per_tenant_concurrency,
                               per_hook=hooks.per_hook_concurrency, retention_days=hooks.retention_days,
                               egress=egress, owner=app[INSTANCE_ID])
    reporter = CallReporter(storage, webhooks, zone=zone(config.api.timezone))
    app[STORAGE], app[WEBHOOKS], app[REPORTER] = storage, webhooks, reporter
    app[SUBSCRIPTIONS] = Subscriptions(storage, max_hooks=hooks.max_hooks_per_tenant, egress=egress)
    app[METRICS].watch_webhooks(webhooks)
    if storage.backend != "sqlite":       # several instances may share it: so do the limits
        app[RATE_LIMITER] = SharedRateLimiter(storage, config.limits.rate_per_minute, config.limits.rate_burst)
    await webhooks.start()
    reporter.start()
    yield
    await reporter.close()
    await webhooks.close()
    await storage.close()


async def pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    """One AMI link per PBX, and the calls that depend on them, live exactly as long as the
    app. Calls still live at the end are left to the next start (``calls/reconcile.py``)."""
    config, limits = app[CONFIG], app[CONFIG].limits
    registry = CallRegistry(app[REPORTER], outcome_wait=config.calls.ring_timeout + OUTCOME_GRACE_SECONDS,
                            max_call_seconds=config.calls.max_call_seconds)
    amis = {pbx.name: AmiClient(pbx.ami, name=pbx.name) for pbx in config.pbxs}
    pbxs = {name: Pbx(ami, name) for name, ami in amis.items()}
    instance_id = app[INSTANCE_ID]
    sole_owner = app[STORAGE].backend == "sqlite"        # one process owns a SQLite file
    hold = config.calls.sync_timeout + OUTCOME_GRACE_SECONDS
    service = CallService(
        pbxs, registry, app[STORAGE], config.calls, instance_id=instance_id, shared_claims=not sole_owner,
        clicks=click_limiter(limits, app[STORAGE], sole_owner),
        duplicates=SingleFlight(limits.duplicate_window, remember_failures=False,
                                capacity=limits.remembered_per_tenant),
        idempotency=SingleFlight(limits.idempotency_ttl, remember_failures=True,
                                 capacity=limits.remembered_per_tenant),
        shared_duplicates=None if sole_owner else SharedFlight(
            app[STORAGE], instance_id, ttl=limits.duplicate_window, remember_failures=False, hold_seconds=hold),
        shared_idempotency=None if sole_owner else SharedFlight(
            app[STORAGE], instance_id, ttl=limits.idempotency_ttl, remember_failures=True, hold_seconds=hold))
    journal = EventJournal(keep_seconds=config.cluster.lease_seconds * 3)   # others' calls, and our own before adoption
    events = {name: CallEvents(name, registry, service, journal) for name in amis}
    reconciler = Reconciler(pbxs, registry, app[STORAGE], events, hangup=service.hangup_later)
    membership = Membership(app[STORAGE], registry, reconciler, instance_id, config.cluster.lease_seconds,
                            sole_owner=sole_owner)
    for name, ami in amis.items():
        ami.subscribe(events[name], CallEvents.EVENTS)
        ami.on_down(functools.partial(reconciler.link_lost, name))
        ami.on_ready(functools.partial(reconciler.link_ready, name))
        app[METRICS].watch(name, ami, registry)
    app[AMIS], app[AMI], app[REGISTRY] = amis, amis[config.pbxs[0].name], registry
    app[SERVICE], app[RECONCILER], app[MEMBERSHIP] = service, reconciler, membership
    for ami in amis.values():                       # events are journaled before anything is adopted
        ami.start()
    await membership.join()
    await service.listen()
    yield
    await app[REPORTER].flush(5)                    # the facts of the calls left live, then...
    await membership.leave()                        # ...others may adopt them at once
    await reconciler.close()
    await service.close()
    await asyncio.gather(*(ami.close() for ami in amis.values()))


def click_limiter(limits: LimitsConfig, storage: Storage, sole_owner: bool) -> Limiter | None:
    """``limits.per_extension_per_minute`` clicks per tenant + ext (as many at once), shared
    by every instance when several share the store; None when it is 0 (off)."""
    per_minute = limits.per_extension_per_minute
    if per_minute == 0:
        return None
    what = f"click limit of this extension ({per_minute} per minute)"
    if sole_owner:
        return RateLimiter(per_minute, per_minute, what=what, capacity=limits.remembered_per_tenant)
    return SharedRateLimiter(storage, per_minute, per_minute, what=what, namespace="ext")


async def drain_calls(app: web.Application) -> None:
    """Stop accepting; give waiting sync requests a bounded grace, then answer them."""
    await app[SERVICE].drain(app[CONFIG].limits.shutdown_grace)
