"""A store outage says so, on both backends: PostgreSQL's server is killed for real (SIGKILL,
then started again on its data); a SQLite file fails (its I/O errors are injected: a file
cannot be killed). ``/readyz`` answers 503 naming the store; every request that needs it
answers 503 ``STORE_UNAVAILABLE``, never the database's address or the driver's words; the
log says it once, then that it is back; the shutdown says once how many writes were lost."""
import asyncio
import dataclasses
import logging
import sqlite3

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, STORAGE
from c2c_ami.calls.call import Call
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.config import StorageConfig
from c2c_ami.notify.reporter import CallReporter
from c2c_ami.notify.webhooks import WebhookNotifier
from c2c_ami.store import open_storage
from c2c_rig.postgres import PrivatePostgres

from ..fixtures_gateway import AUTH, gateway_config

TELLTALES = ("127.0.0.1", "errno", "Errno", "PostgreSQL", "postgres", "SQLite", "sqlite", "asyncpg", "disk I/O",
             "Connect call", "refused")


@pytest.fixture(scope="module")
def killable_postgres():
    """A PostgreSQL server of this module's own: its tests kill it."""
    server = PrivatePostgres(crash_safe=True).start()
    try:
        yield server
    finally:
        server.stop()


class _FailingFile:
    """A SQLite connection whose file fails: every statement is an I/O error."""
    total_changes = 0
    in_transaction = False

    def execute(self, *args):
        raise sqlite3.OperationalError("disk I/O error")


class Outage:
    """The store of ``url`` goes away (``begin``) and comes back (``end``)."""

    def __init__(self, backend, url, server=None):
        self.backend, self.url, self.server = backend, url, server
        self._saved = None

    def begin(self, storage):
        if self.server is not None:
            self.server.kill()
            return
        self._saved = (storage, storage._db, storage._connection._db, storage._reader.run)
        storage._db = storage._connection._db = _FailingFile()
        storage._reader.run = lambda sql, args: _FailingFile().execute(sql, args)

    def end(self):
        if self.server is not None:
            self.server.restart()
            return
        storage, storage._db, storage._connection._db, storage._reader.run = self._saved
        self._saved = None

    def over(self):
        """After the test, whatever it did: the store is back."""
        if self.server is not None and (self.server.proc is None or self.server.proc.poll() is not None):
            self.server.restart()
        if self._saved is not None:
            self.end()


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request, tmp_path):
    if request.param == "sqlite":
        out = Outage("sqlite", f"sqlite:///{tmp_path}/c2c.sqlite3")
    else:
        server = request.getfixturevalue("killable_postgres")
        out = Outage("postgresql", server.create_database(), server)
    try:
        yield out
    finally:
        out.over()                      # the next test finds it running


async def gateway_on(outage, aiohttp_client, fake_ami):
    config = gateway_config(fake_ami.port)
    app = create_app(dataclasses.replace(config, storage=StorageConfig(url=outage.url)))
    client = await aiohttp_client(app)
    assert await app[AMI].wait_ready(3)
    return client


async def answer(resp):
    return resp.status, await resp.json(), resp.headers


async def until_ready(client, timeout=20.0):
    async with asyncio.timeout(timeout):
        while (resp := await client.get("/readyz")).status != 200:
            await asyncio.sleep(0.1)
    return await resp.json()


def store_lines(caplog):
    return [r for r in caplog.records if r.name == "c2c_ami.store"]


async def test_an_outage_is_said_by_readyz_and_every_request_that_needs_the_store(outage, aiohttp_client,
                                                                                   fake_ami, caplog):
    caplog.set_level(logging.INFO)
    client = await gateway_on(outage, aiohttp_client, fake_ami)
    hook = (await (await client.post("/v1/event", json={"url": "http://127.0.0.1:9/h"}, headers=AUTH)).json())["hook"]
    assert (await client.get("/readyz")).status == 200

    outage.begin(client.app[STORAGE])
    needs_store = [
        client.get("/v1/cdr", headers=AUTH), client.get("/v1/cdr", params={"limit": "5"}, headers=AUTH),
        client.get("/v1/cdr/some-call", headers=AUTH), client.get("/v1/calls/some-call", headers=AUTH),
        client.delete("/v1/calls/some-call", headers=AUTH), client.get("/v1/call", headers=AUTH),
        client.get("/v1/event", headers=AUTH), client.post("/v1/event", json={"url": "http://127.0.0.1:9/x"},
                                                           headers=AUTH),
        client.delete(f"/v1/event/{hook['id']}", headers=AUTH),
        client.get("/v1/event/deliveries", headers=AUTH), client.post(f"/v1/event/{hook['id']}/retry", headers=AUTH),
        client.get("/v1/events/stream", headers=AUTH),
        client.get("/v1/click2call", params={"ext": "101", "phone": "0899"}, headers=AUTH),
        client.get("/v1/click2call/async", params={"ext": "101", "phone": "0899"}, headers=AUTH),
        client.post("/v2/click2call", json={"id": "KH1", "mobile": "0899", "agent": "101"}, headers=AUTH),
    ]
    for request in needs_store:
        status, body, headers = await answer(await request)
        assert (status, body["status"], body["error"]) == (503, "fail", "STORE_UNAVAILABLE"), body
        assert int(headers["Retry-After"]) >= 1
        assert not [word for word in TELLTALES if word in str(body)], body
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["status"] == "not_ready"
    assert body["store"]["backend"] == outage.backend and body["store"]["state"] == "unavailable"
    assert body["pbxs"][0]["ami"] == "ready"                       # each PBX as before
    assert not [word for word in ("127.0.0.1", "rrno", "disk", "refused") if word in str(body)], body
    assert (await client.get("/healthz")).status == 200

    down = [r for r in store_lines(caplog) if "unavailable" in r.getMessage()]
    assert [r.levelname for r in down] == ["ERROR"]                # said once, however many failed
    outage.end()
    assert (await until_ready(client))["store"] == {"backend": outage.backend, "state": "ready"}
    back = [r for r in store_lines(caplog) if "is back" in r.getMessage()]
    assert len(back) == 1 and len([r for r in store_lines(caplog) if "unavailable" in r.getMessage()]) == 1
    assert (await client.get("/v1/cdr", headers=AUTH)).status == 200
    ours = [r for r in caplog.records if r.name.startswith("c2c_ami")]
    assert not [r for r in ours if r.exc_info], "no traceback for an outage"
    assert len([r for r in ours if r.levelno >= logging.WARNING]) <= 4, [r.getMessage() for r in ours]


async def test_the_shutdown_says_once_how_many_call_writes_were_lost(outage, caplog):
    storage = await open_storage(StorageConfig(url=outage.url))
    reporter = CallReporter(storage, WebhookNotifier(storage), retry_min=0.01)
    reporter.start()
    try:
        outage.begin(storage)
        writes = []
        put = reporter._put
        reporter._put = lambda write: writes.append(write) or put(write)
        registry = CallRegistry(reporter)
        call = Call(tenant="acme", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="t")
        assert registry.claim(call)
        call.ext_ringing()
        registry.settle(call)                                  # its facts and its ringing webhooks
        other = Call(tenant="acme", ext="102", device="PJSIP/102", phone="0899", hotline="028", trunk="t")
        assert registry.claim(other)
        registry.finish(other)                                 # a CDR
        caplog.set_level(logging.INFO)
        assert not await reporter.flush(1)                     # held, retried meanwhile
        await reporter.close(timeout=0.5)
    finally:
        outage.end()
        await storage.close()
    said = [r.getMessage() for r in caplog.records if r.name == "c2c_ami.notify.reporter"]
    assert len(writes) >= 2
    assert said == [f"{len(writes)} call write(s) not stored at shutdown (the store is unavailable): they are lost"]
