# ---- c2c-ami test rig (real Asterisk): fixtures `rig`, `rig_factory` ------------------
# From the c2c-rig package (asterisk-test-config/, installed editable by scripts/setup).
# ---- a local webhook receiver (tests/test_lifecycle.py, tests/e2e/test_lifecycle_rig.py) ----
import asyncio  # noqa: E402

import pytest  # noqa: E402
from aiohttp import web  # noqa: E402

from c2c_rig.fixtures import rig, rig_factory  # noqa: F401

# ---- gateway fixtures on the in-process fake AMI: fake_ami, make_gateway, gateway ----------
from tests.fixtures_gateway import fake_ami, gateway, make_gateway  # noqa: E402,F401


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
