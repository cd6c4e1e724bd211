"""Fixtures for gateway tests against the in-process fake AMI (unit and fault tests)."""
from __future__ import annotations

import asyncio
import copy

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, PHONES, REPORTER, SERVICE, STORAGE
from c2c_ami.config import parse_config
from c2c_ami.testing.fake_ami import FakeAmiServer

TOKEN = "dev-token-change-me"
OTHER_TOKEN = "other-tenant-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def gateway_config(ami_port: int, **sections):
    """The issue's example config pointed at ``ami_port``, with two tenants and fast timers."""
    raw = {
        "listen": {"host": "127.0.0.1", "port": 8080},
        "ami": {"host": "127.0.0.1", "port": ami_port, "username": "c2c", "secret": "change-me",
                "reconnect_min": 0.05, "reconnect_max": 0.2, "ping_interval": 0.5,
                "ping_timeout": 0.3, "boot_wait": 0.5, "connect_timeout": 1.0, "action_timeout": 1.0},
        "calls": {"ring_timeout": 2, "dial_timeout": 60, "sync_timeout": 4},
        "limits": {"rate_per_minute": 6000, "rate_burst": 1000, "duplicate_window": 5,
                   "per_extension_per_minute": 0},     # tests of the click limit set their own
        "storage": {"path": ":memory:"},
        "webhooks": {"timeout": 1.0, "backoff_base": 0.05, "backoff_max": 0.5,
                     "allow_networks": ["127.0.0.0/8"]},   # the test receivers are local
        "tenants": [
            {"domain": "default", "tokens": [TOKEN], "endpoint": "PJSIP/{ext}",
             "context": "c2c-outbound", "extensions": "^1[0-9]{2}$",
             "hotlines": {"02873001234": "hotline-trunk", "02873005678": "hotline-trunk-2"}},
            {"domain": "other", "tokens": [OTHER_TOKEN], "endpoint": "PJSIP/{ext}",
             "context": "c2c-outbound", "extensions": "^2[0-9]{2}$",
             "hotlines": {"02439990000": "other-trunk"}},
        ],
    }
    for name, values in sections.items():
        if values is None:
            raw.pop(name, None)                    # e.g. ami=None with pbxs=[...]
        elif isinstance(values, list) or name == "storage":
            raw[name] = values                     # tenants, pbxs, storage (path or url): replaced whole
        else:
            raw[name] = {**copy.deepcopy(raw.get(name, {})), **values}
    return parse_config(raw, {})


@pytest.fixture
async def fake_ami():
    async with FakeAmiServer(username="c2c", secret="change-me", default_device_state="NOT_INUSE") as server:
        yield server


@pytest.fixture
def make_gateway(aiohttp_client, fake_ami):
    """Start a gateway app on the fake AMI and wait until its AMI link is ready."""
    async def make(**sections):
        app = create_app(gateway_config(fake_ami.port, **sections))
        client = await aiohttp_client(app)
        assert await app[AMI].wait_ready(3), "gateway did not log in to the fake AMI"
        await started(app)
        fake_ami.forget_received()          # what a test's requests send is recorded from here
        return client
    return make


async def started(app, timeout: float = 5.0) -> None:
    """Until the gateway's start-up work on each ready PBX is done: the check of the Asterisk
    side and the phones' snapshot."""
    service, phones = app[SERVICE], app[PHONES]
    for pbx in service.pbxs.values():
        if pbx.ready:
            assert await phones.wait_synced(pbx.name, timeout), f"no phone snapshot of PBX {pbx.name}"
            await asyncio.wait_for(pbx.checked.wait(), timeout)


@pytest.fixture
async def gateway(make_gateway):
    return await make_gateway()


class Steps:
    """Every step the gateway reports about its calls, to wait on (no polling, no sleeps)."""

    def __init__(self, app):
        self._seen: set[tuple[str, str]] = set()
        self._changed = asyncio.Event()
        reporter = app[REPORTER]
        changed, ended = reporter.call_changed, reporter.call_ended

        def call_changed(call, steps):
            changed(call, steps)
            self._seen.update((call.call_id, state.value) for _, state in steps)
            self._changed.set()

        def call_ended(call):
            ended(call)
            self._seen.add((call.call_id, call.state.value))
            self._changed.set()
        reporter.call_changed, reporter.call_ended = call_changed, call_ended

    def seen(self, call_id: str, state: str) -> bool:
        return (call_id, state) in self._seen

    async def until(self, call_id: str, state: str, timeout: float = 3.0) -> None:
        async def seen():
            while (call_id, state) not in self._seen:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(seen(), timeout)


class _Stored:
    """The app's store, read once every call fact queued so far is written (the reporter
    writes in the background: a call that has left the registry may still be on its way)."""

    def __init__(self, app):
        self._app = app

    def __getattr__(self, name):
        method = getattr(self._app[STORAGE], name)

        async def read(*args, **kwargs):
            assert await self._app[REPORTER].flush(5), "call writes still queued after 5 s"
            return await method(*args, **kwargs)
        return read


def stored(app) -> _Stored:
    return _Stored(app)
