"""A gateway (in-process aiohttp app) logged in to the session's real Asterisk rig."""
from __future__ import annotations

import asyncio
import time

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, REGISTRY, SERVICE
from c2c_ami.calls.record import call_record
from c2c_ami.config import parse_config
from c2c_rig import HOTLINES

TOKEN = "e2e-token-default"
OTHER_TOKEN = "e2e-token-other-tenant"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
RING_TIMEOUT = 4
DIAL_TIMEOUT = 3


def rig_config(rig, tmp_path, **overrides):
    raw = {
        "listen": {"host": "127.0.0.1", "port": 8080},
        "ami": {**rig.ami, "reconnect_min": 0.05, "reconnect_max": 0.5, "ping_interval": 1.0,
                "ping_timeout": 1.0},
        "calls": {"ring_timeout": RING_TIMEOUT, "dial_timeout": DIAL_TIMEOUT, "sync_timeout": RING_TIMEOUT + 4},
        "limits": {"rate_per_minute": 100000, "rate_burst": 10000, "duplicate_window": 1,
                   "per_extension_per_minute": 0},
        "storage": {"path": str(tmp_path / "c2c.sqlite3")},
        "webhooks": {"timeout": 2.0, "backoff_base": 0.05, "backoff_max": 0.5,
                     "allow_networks": ["127.0.0.0/8"]},   # the test receiver is local
        "tenants": [
            {"domain": "default", "tokens": [TOKEN], "endpoint": f"{rig.tech}/{{ext}}", "context": "c2c-outbound",
             "extensions": "^[0-9]{3}$", "hotlines": dict(HOTLINES)},
            {"domain": "other", "tokens": [OTHER_TOKEN], "endpoint": f"{rig.tech}/{{ext}}", "context": "c2c-outbound",
             "extensions": "^9[0-9]{2}$", "hotlines": {"02439990000": "hotline-trunk"}},
        ],
    }
    raw.update(overrides)
    return parse_config(raw, {})


@pytest.fixture
def make_rig_gateway(rig, aiohttp_client, tmp_path):
    async def make(config=None):
        app = create_app(config or rig_config(rig, tmp_path))
        client = await aiohttp_client(app)
        assert await app[AMI].wait_ready(5), f"gateway did not log in to the rig: {app[AMI].last_error}"
        return client
    return make


@pytest.fixture
async def gw(make_rig_gateway, rig):
    """The gateway; at the end every call it placed must be over (phones free for the next test)."""
    client = await make_rig_gateway()
    yield client
    registry = client.app[REGISTRY]
    for call in registry.live():
        await client.app[SERVICE].hangup_quietly(call)
    assert await registry.wait_empty(10), f"calls left: {[call_record(c) for c in registry.live()]}"


async def in_thread(fn, *args, **kwargs):
    """The rig's helpers block (they poll files and sockets): keep the event loop running."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def click(client, path="/v1/click2call", headers=AUTH, **params):
    resp = await client.get(path, params=params, headers=headers)
    return resp.status, await resp.json()


def now():
    return time.time()
