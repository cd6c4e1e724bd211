"""Shared fixtures.

* ``rig``, ``rig_factory``: the real Asterisk rig (package ``c2c_rig`` in asterisk-test-config/);
  ``rig_chan_sip`` (Asterisk 16, chan_sip) and ``driver_rig`` (each driver in turn).
* ``fake_ami``, ``make_gateway``, ``gateway``: the gateway on the in-process fake AMI.
* ``postgres``: a private PostgreSQL server for the session; ``storage_url``: a fresh
  database per test, on each backend (``sqlite`` and ``postgresql``).
* ``receiver``: a local webhook receiver.
* ``chromium``: Debian's headless chromium through Selenium (``tests/browser.py``), per module.
"""
import asyncio

import pytest
from aiohttp import web

from c2c_rig.fixtures import driver_rig, rig, rig_chan_sip, rig_factory, rig_pjsip  # noqa: F401
from c2c_rig.postgres import PrivatePostgres
from tests.browser import chromium  # noqa: F401
from tests.fixtures_gateway import fake_ami, gateway, make_gateway  # noqa: F401


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of the session's own; if it cannot start, the tests using it fail."""
    server = PrivatePostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A ``storage.url`` for a new, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/c2c.sqlite3"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
async def receiver(aiohttp_server):
    """An aiohttp server recording (headers, body) of every webhook delivery in ``.got``."""
    got: asyncio.Queue = asyncio.Queue()

    async def hook(request):
        await got.put((dict(request.headers), await request.read()))
        return web.Response(status=204)
    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    server.got, server.hook_url = got, str(server.make_url("/hook"))
    return server
