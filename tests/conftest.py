import os
import sys

# ---- c2c-ami test rig (real Asterisk): fixtures `rig`, `rig_factory` ------------------
# They live in asterisk-test-config/rig_fixtures.py, next to the rig tool (rig.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "asterisk-test-config"))
from rig_fixtures import *  # noqa: E402,F401,F403
# ---- end of the rig block ---------------------------------------------------------------


# ---- gateway fixtures on the in-process fake AMI: fake_ami, make_gateway, gateway ----------
from tests.fixtures_gateway import fake_ami, gateway, make_gateway  # noqa: E402,F401

# ---- a local webhook receiver (tests/test_lifecycle.py, tests/e2e/test_lifecycle_rig.py) ----
import asyncio  # noqa: E402

import pytest  # noqa: E402
from aiohttp import web  # noqa: E402


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
