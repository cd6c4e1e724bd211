"""Webhook egress policy (no SSRF): hostile URLs refused at registration, and a
name resolving to a refused address refused at delivery, with no connection made."""
import asyncio
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from c2c_ami.config import ConfigError, StorageConfig
from c2c_ami.notify.egress import EgressPolicy
from c2c_ami.notify.webhooks import WebhookNotifier
from c2c_ami.store import open_storage
from tests.fixtures_gateway import AUTH, gateway_config

HOSTILE = [
    "http://127.0.0.1:8080/v1/event",           # the gateway's own API
    "http://127.0.0.1:5038/",                   # the AMI port
    "http://[::1]/",
    "http://localhost/",
    "http://LOCALHOST./x",
    "http://api.localhost/",
    "http://0.0.0.0/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://017700000001/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",                    # IPv4-compatible
    "http://[2002:7f00:1::]/",                  # 6to4
    "http://[64:ff9b::7f00:1]/",                # NAT64
    "http://[64:ff9b::a9fe:a9fe]/",             # NAT64 of 169.254.169.254
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/",
    "http://100.64.0.1/",                       # CGNAT
    "http://[fc00::1]/", "http://[fd12:3456::1]/",
    "http://224.0.0.1/", "http://[ff02::1]/",
    "http://255.255.255.255/", "http://240.0.0.1/",
    "http://[::]/",
    "http://user:pass@example.com/",
    "http://user@example.com/",
    "http://:@example.com/",
    "http://exa_mple.com/", "http://-bad.example.com/", "http://example.123/",
]
FINE = ["https://crm.example.com/hooks/c2c", "http://example.com:8443/x?y=1", "http://8.8.8.8/",
        "http://[2606:4700:4700::1111]/", "https://xn--bcher-kva.example/"]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_urls_are_refused_by_default(url):
    assert EgressPolicy().url_refusal(url) is not None


@pytest.mark.parametrize("url", FINE)
def test_public_urls_pass(url):
    assert EgressPolicy().url_refusal(url) is None


def test_allow_lifts_the_default_refusal_and_deny_always_wins():
    local = EgressPolicy(allow=["127.0.0.0/8"])
    assert local.url_refusal("http://127.0.0.1:9/") is None
    assert local.url_refusal("http://localhost:9/") is None
    assert local.url_refusal("http://[::ffff:127.0.0.1]/") is None
    assert local.url_refusal("http://10.0.0.1/") is not None
    assert local.url_refusal("http://u:p@127.0.0.1/") is not None       # userinfo: never
    assert local.url_refusal("http://2130706433/") is not None          # odd forms: never
    both = EgressPolicy(allow=["10.0.0.0/8"], deny=["10.1.0.0/16", "8.8.8.0/24"])
    assert both.url_refusal("http://10.2.0.1/") is None
    assert "deny_networks" in both.url_refusal("http://10.1.2.3/")
    assert "deny_networks" in both.url_refusal("http://8.8.8.8/")
    assert "deny_networks" in both.url_refusal("http://[::ffff:10.1.2.3]/")


async def test_registration_refuses_hostile_urls_with_url_errors(make_gateway):
    client = await make_gateway(webhooks={"allow_networks": []})       # the default policy
    for url in HOSTILE:
        resp = await client.post("/v1/event", json={"url": url}, headers=AUTH)
        body = await resp.json()
        assert resp.status == 400 and body["error"] == "INVALID_PARAMS", url
        assert body["message"].startswith("url: "), (url, body)
    resp = await client.post("/v1/event", json={"url": "https://crm.example.com/hook"}, headers=AUTH)
    assert resp.status == 200


def test_config_parses_network_lists_and_names_the_bad_one():
    config = gateway_config(1, webhooks={"allow_networks": ["10.0.0.0/8", "fd00::/8"],
                                         "deny_networks": ["10.9.0.0/16"]})
    assert config.webhooks.allow_networks == ("10.0.0.0/8", "fd00::/8")
    assert config.webhooks.deny_networks == ("10.9.0.0/16",)
    with pytest.raises(ConfigError, match=r"^webhooks\.allow_networks\[1\]: "):
        gateway_config(1, webhooks={"allow_networks": ["10.0.0.0/8", "10.0.0.1/8"]})
    with pytest.raises(ConfigError, match=r"^webhooks\.deny_networks: "):
        gateway_config(1, webhooks={"deny_networks": "10.0.0.0/8"})


# ---- at delivery: after DNS resolution --------------------------------------------------------

class Rebinding(AbstractResolver):
    """Resolves every name to 127.0.0.1 (a name that passed registration, then rebinds)."""

    def __init__(self):
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


@pytest.fixture
async def local_receiver(aiohttp_server):
    hits: asyncio.Queue = asyncio.Queue()

    async def hook(request):
        await hits.put(await request.read())
        return web.Response(status=204)
    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.hits = hits
    return server


@pytest.fixture
async def store(tmp_path):
    s = await open_storage(StorageConfig(url=f"sqlite:///{tmp_path}/egress.sqlite3"))
    yield s
    await s.close()


async def _deliver_once(store, url, egress, resolver):
    await store.add_hook("acme", url, ["*"], "k")
    n = WebhookNotifier(store, egress=egress, resolver=resolver, max_attempts=1, backoff_base=0.01)
    await n.start()
    try:
        await n.publish("acme", "cdr", {"call_id": "c1"})
        assert await n.wait_idle(5)
    finally:
        await n.close(grace=0)
    return n


async def test_a_name_resolving_to_loopback_is_refused_at_delivery_without_a_connection(store, local_receiver):
    resolver = Rebinding()
    url = f"http://hooks.example.com:{local_receiver.port}/hook"
    assert EgressPolicy().url_refusal(url) is None                      # registration cannot tell
    n = await _deliver_once(store, url, EgressPolicy(), resolver)
    assert resolver.asked == ["hooks.example.com"]
    assert local_receiver.hits.empty()                                   # no connection made
    assert n.dead_count == 1 and (await store.outbox_counts())["dead"] == 1
    last_error = await _last_error(store)
    assert last_error.startswith("egress refused: hooks.example.com resolves only to refused addresses")
    assert "127.0.0.1 is loopback" in last_error


async def test_the_same_name_is_delivered_when_allow_networks_covers_it(store, local_receiver):
    url = f"http://hooks.example.com:{local_receiver.port}/hook"
    n = await _deliver_once(store, url, EgressPolicy(allow=["127.0.0.0/8"]), Rebinding())
    assert n.delivered_count == 1 and await asyncio.wait_for(local_receiver.hits.get(), 1)


async def test_localhost_with_the_system_resolver(store, local_receiver):
    url = f"http://localhost:{local_receiver.port}/hook"
    n = await _deliver_once(store, url, EgressPolicy(), None)
    assert n.dead_count == 1 and local_receiver.hits.empty()
    assert (await _last_error(store)).startswith("egress refused: 127.0.0.1 is loopback")


async def test_a_literal_address_refused_at_delivery(store, local_receiver):
    """A hook stored before the policy (or under a wider one) is checked again at each attempt."""
    n = await _deliver_once(store, f"http://127.0.0.1:{local_receiver.port}/hook", EgressPolicy(), None)
    assert n.dead_count == 1 and local_receiver.hits.empty()
    assert (await _last_error(store)) == "egress refused: 127.0.0.1 is loopback"


async def _last_error(store):
    async with store._session() as db:
        return (await db.fetch("SELECT last_error FROM outbox"))[0]["last_error"]
