"""Typed application keys: what the app factory (``app.py``) puts in the app, for the
handlers (``api/``) to take out. They live beside the factory, not in ``api/``: the app is
wired here, the handlers only read it."""
from __future__ import annotations

from aiohttp import web

from .auth import TokenAuthority
from .calls.cluster import Membership
from .calls.control import CallControl
from .calls.guards import Limiter, RateLimiter
from .calls.monitor import AgentMonitor
from .calls.phones import PhoneBook
from .calls.recordings import RecordingLinks
from .calls.registry import CallRegistry
from .calls.service import CallService
from .config import Config
from .metrics import Metrics
from .notify.agents import AgentFeed
from .notify.reporter import CallReporter
from .notify.stream import EventHub
from .notify.subscriptions import Subscriptions
from .notify.webhooks import WebhookNotifier
from .pbx import AmiClient
from .pbx.reconcile import Reconciler
from .scroll import ScrollCodec
from .store import Storage

CONFIG = web.AppKey("config", Config)
INSTANCE_ID = web.AppKey("instance_id", str)     # this gateway instance, among others on one store
AUTH = web.AppKey("auth", TokenAuthority)
SCROLL = web.AppKey("scroll", ScrollCodec)       # signs and checks GET /v1/cdr scroll ids
METRICS = web.AppKey("metrics", Metrics)
RATE_LIMITER = web.AppKey("rate_limiter", Limiter)
AUTH_FAILURES = web.AppKey("auth_failures", RateLimiter)   # failed credentials (every kind) per client address
STORAGE = web.AppKey("storage", Storage)
WEBHOOKS = web.AppKey("webhooks", WebhookNotifier)
SUBSCRIPTIONS = web.AppKey("subscriptions", Subscriptions)
REPORTER = web.AppKey("reporter", CallReporter)
AMIS = web.AppKey("amis", dict[str, AmiClient])     # PBX name -> its AMI link
AMI = web.AppKey("ami", AmiClient)                  # the first PBX's
REGISTRY = web.AppKey("registry", CallRegistry)
RECONCILER = web.AppKey("reconciler", Reconciler)
MEMBERSHIP = web.AppKey("membership", Membership)
SERVICE = web.AppKey("service", CallService)
CONTROL = web.AppKey("control", CallControl)      # transfer, park, supervise, recording masks
RECORDINGS = web.AppKey("recordings", RecordingLinks)   # signed recording links
PHONES = web.AppKey("phones", PhoneBook)            # every PBX's registered phones, kept from AMI events
MONITOR = web.AppKey("monitor", AgentMonitor)        # GET /v1/monitor/agent
EVENTS = web.AppKey("events", EventHub)              # GET /v1/events/stream: the fan-out of the event log
AGENT_FEEDS = web.AppKey("agent_feeds", dict[str, AgentFeed])   # PBX name -> its agent events' writer
