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
from typing import Any

from aiohttp import web

from .api import error_middleware, setup_routes
from .api.cors import cors_middleware
from .app_keys import (
    AGENT_FEEDS,
    AMI,
    AMIS,
    AUTH,
    AUTH_FAILURES,
    CONFIG,
    CONTROL,
    EVENTS,
    INSTANCE_ID,
    MEMBERSHIP,
    METRICS,
    MONITOR,
    PHONES,
    RATE_LIMITER,
    RECONCILER,
    RECORDINGS,
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
from .calls.control import CallControl
from .calls.guards import Limiter, RateLimiter, SingleFlight
from .calls.monitor import AgentMonitor
from .calls.phones import DeviceMap, PhoneBook
from .calls.recordings import RecordingLinks
from .calls.registry import CallRegistry
from .calls.service import OUTCOME_GRACE_SECONDS, CallService
from .calls.shared_guards import SharedFlight, SharedRateLimiter
from .carrier import zone
from .config import Config, LimitsConfig, Tenant
from .http_server import CONNECTIONS, Connections, handler_args, request_over
from .log_filters import throttle_tracebacks
from .metrics import Metrics
from .notify.agents import AgentFeed
from .notify.egress import EgressPolicy
from .notify.reporter import CallReporter
from .notify.stream import EventHub
from .notify.subscriptions import Subscriptions
from .notify.webhooks import WebhookNotifier
from .pbx import AmiClient, Pbx
from .pbx.check import PbxCheck, enabled_features
from .pbx.events import CallEvents
from .pbx.journal import EventJournal
from .pbx.presence import PRESENCE_EVENTS, PhoneWatch
from .pbx.reconcile import Reconciler
from .scroll import ScrollCodec
from .store import Storage, keep_watch, open_storage


def create_app(config: Config) -> web.Application:
    # outermost first: CORS headers go on every answer error_middleware makes, and on
    # aiohttp's own (404, 405, 413); a preflight is answered before auth and rate limits
    cors = [cors_middleware(config.api.cors_origins)] if config.api.cors_origins else []
    app = web.Application(middlewares=[*cors, error_middleware],
                          client_max_size=config.http.client_max_size, handler_args=handler_args(config.http))
    app[CONNECTIONS] = Connections(config.http, frozenset(config.api.cors_origins))
    app.on_response_prepare.append(request_over)
    throttle_tracebacks()
    app[CONFIG] = config
    app[INSTANCE_ID] = config.cluster.resolved_instance_id()
    app[AUTH] = TokenAuthority(config.tenants, config.auth)
    app[SCROLL] = ScrollCodec.for_config(config)
    app[RECORDINGS] = RecordingLinks.for_config(config)
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(config.limits.rate_per_minute, config.limits.rate_burst,
                                    capacity=config.limits.remembered_per_tenant)
    app[AUTH_FAILURES] = RateLimiter(config.auth.failures_per_minute, config.auth.failure_burst,
                                     what="failed authentications from this address",
                                     capacity=config.limits.remembered_per_tenant)
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(pbx_ctx)
    app.on_shutdown.append(end_streams)
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
    links, tenants = app[RECORDINGS], {t.domain: t for t in config.tenants}
    reporter = CallReporter(storage, webhooks, zone=zone(config.api.timezone),
                            recording_url=lambda record: recording_link(links, tenants, record))
    app[STORAGE], app[WEBHOOKS], app[REPORTER] = storage, webhooks, reporter
    app[SUBSCRIPTIONS] = Subscriptions(storage, max_hooks=hooks.max_hooks_per_tenant, egress=egress)
    app[METRICS].watch_webhooks(webhooks)
    if storage.backend != "sqlite":       # several instances may share it: so do the limits
        app[RATE_LIMITER] = SharedRateLimiter(storage, config.limits.rate_per_minute, config.limits.rate_burst)
    events = config.events
    app[EVENTS] = EventHub(storage, buffer=events.buffer, retention=events.retention,
                           max_streams=events.max_streams, max_streams_per_tenant=events.max_streams_per_tenant)
    app[METRICS].watch_streams(app[EVENTS])
    await webhooks.start()
    reporter.start()
    watch = asyncio.get_running_loop().create_task(keep_watch(storage.health, storage.ping), name="store-watch")
    await app[EVENTS].start()
    yield
    await app[EVENTS].close()
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    await reporter.close()
    await webhooks.close()
    await storage.close()


async def pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    """One AMI link per PBX, and the calls that depend on them, live exactly as long as the
    app. Calls still live at the end are left to the next start (``calls/reconcile.py``)."""
    config, limits = app[CONFIG], app[CONFIG].limits
    registry = CallRegistry(app[REPORTER], outcome_wait=config.calls.ring_timeout + OUTCOME_GRACE_SECONDS,
                            max_call_seconds=config.calls.max_call_seconds)
    devices = DeviceMap(config.tenants)
    phones = PhoneBook(devices.wanted)
    amis = {pbx.name: AmiClient(pbx.ami, name=pbx.name) for pbx in config.pbxs}
    features = enabled_features(config)
    pbxs = {name: Pbx(ami, name, PbxCheck(name, ami, config.tenants, features)) for name, ami in amis.items()}
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
            app[STORAGE], instance_id, ttl=limits.idempotency_ttl, remember_failures=True, hold_seconds=hold),
        phones=phones)
    journal = EventJournal(keep_seconds=config.cluster.lease_seconds * 3)   # others' calls, and our own before adoption
    control = CallControl(pbxs, registry, app[STORAGE], config.calls, {t.domain: t for t in config.tenants},
                          instance_id=instance_id, hangup_later=service.hangup_later,
                          fetch_sip_call_id_later=service.fetch_sip_call_id_later)
    events = {name: CallEvents(name, registry, control, journal) for name in amis}
    reconciler = Reconciler(pbxs, registry, app[STORAGE], events, hangup=service.hangup_later)
    membership = Membership(app[STORAGE], registry, reconciler, instance_id, config.cluster.lease_seconds,
                            sole_owner=sole_owner)
    watches = {name: PhoneWatch(name, ami, phones) for name, ami in amis.items()}
    for name, ami in amis.items():
        ami.subscribe(events[name], CallEvents.EVENTS)
        ami.subscribe(watches[name], PRESENCE_EVENTS)
        ami.on_down(functools.partial(reconciler.link_lost, name))
        ami.on_ready(functools.partial(reconciler.link_ready, name))
        ami.on_ready(watches[name].link_ready)
        ami.on_ready(pbxs[name].check_later)           # the Asterisk side, at start and each reconnect
        app[METRICS].watch(name, ami, registry)
    app[METRICS].watch_auto_answer(registry.auto_answer)
    app[PHONES] = phones
    app[MONITOR] = AgentMonitor(phones, devices, registry, app[STORAGE],
                                {pbx.name: pbx.ami.host for pbx in config.pbxs}, zone(config.api.timezone),
                                shared_store=not sole_owner)
    tenants = {t.domain: t for t in config.tenants}
    app[AGENT_FEEDS] = {name: AgentFeed(name, tenants, app[MONITOR], phones, devices, app[STORAGE], instance_id,
                                        lease_seconds=config.cluster.lease_seconds) for name in amis}
    app[AMIS], app[AMI], app[REGISTRY] = amis, amis[config.pbxs[0].name], registry
    app[SERVICE], app[RECONCILER], app[MEMBERSHIP] = service, reconciler, membership
    app[CONTROL] = control
    for ami in amis.values():                       # events are journaled before anything is adopted
        ami.start()
    await membership.join()
    await service.listen()
    await control.listen()
    for feed in app[AGENT_FEEDS].values():
        feed.start()
    yield
    await asyncio.gather(*(feed.close() for feed in app[AGENT_FEEDS].values()))
    await app[REPORTER].flush(5 if app[STORAGE].health.available else 1)   # the live calls' facts, then...
    await membership.leave()                        # ...others may adopt them at once
    await reconciler.close()
    await control.close()
    await service.close()
    await asyncio.gather(*(watch.close() for watch in watches.values()), *(pbx.close() for pbx in pbxs.values()))
    await asyncio.gather(*(ami.close() for ami in amis.values()))


def recording_link(links: RecordingLinks, tenants: dict[str, Tenant], record: dict[str, Any]) -> str:
    """An ended call's recording link, by its tenant's recording settings ("" if none)."""
    tenant = tenants.get(str(record.get("tenant")))
    return links.url(record, tenant.recording) if tenant is not None else ""


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


async def end_streams(app: web.Application) -> None:
    """Shutdown: end every event stream (its client resumes on another instance)."""
    await app[EVENTS].close()


async def drain_calls(app: web.Application) -> None:
    """Stop accepting; give waiting sync requests a bounded grace, then answer them."""
    await app[SERVICE].drain(app[CONFIG].limits.shutdown_grace)
