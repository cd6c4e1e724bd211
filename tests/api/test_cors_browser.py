"""CORS in a real browser: Debian's chromium, headless, driven by Selenium.

A page on one local origin places a click-to-call on the gateway (another origin, on the
fake AMI) with ``fetch`` and a Bearer token: listed in ``api.cors_origins``, it gets the
answer and the PBX gets the Originate; a page on an origin not listed gets a CORS failure
(``fetch`` rejects with TypeError) and no call is placed. The page writes its result into
``#result``; the test waits for it there. Selenium blocks, so it runs in a thread while the
servers keep serving in the test's loop. Nothing is downloaded: the browser and its driver
are Debian's (``apt-get install chromium chromium-driver``, done by scripts/setup); if
chromium cannot start, these tests fail, they are never skipped.
"""
import asyncio
import json

import pytest
from aiohttp import web

from tests.fixtures_gateway import TOKEN

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>CRM</title></head><body>
<pre id="result"></pre>
<script>
const api = new URLSearchParams(location.search).get("api");
const show = (result) => {
  const out = document.getElementById("result");
  out.textContent = JSON.stringify(result);
  out.setAttribute("data-done", "1");
};
fetch(api + "/v1/click2call/async?ext=101&phone=0899098899", {headers: {Authorization: "Bearer %TOKEN%"}})
  .then(async (r) => show({status: r.status, body: await r.json()}))
  .catch((e) => show({error: e.name, message: String(e.message)}));
</script></body></html>
""".replace("%TOKEN%", TOKEN)


@pytest.fixture
async def page_server(aiohttp_server):
    """A site serving the CRM page, on an origin of its own (127.0.0.1:<its port>)."""
    async def page(request):
        return web.Response(text=PAGE, content_type="text/html")

    async def make():
        app = web.Application()
        app.router.add_get("/", page)
        server = await aiohttp_server(app)
        server.origin = f"http://127.0.0.1:{server.port}"
        return server
    return make


async def open_page(driver, page_url: str) -> dict:
    """Load the page and wait (no sleeps) until it has written its fetch's result."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    def run() -> dict:
        driver.get(page_url)
        located = (By.CSS_SELECTOR, "#result[data-done]")
        element = WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located(located))
        return json.loads(element.text)
    return await asyncio.to_thread(run)


def gateway_origin(gateway) -> str:
    return f"http://127.0.0.1:{gateway.server.port}"


async def test_a_page_on_a_listed_origin_places_a_call(chromium, page_server, make_gateway, fake_ami):
    crm = await page_server()
    gateway = await make_gateway(api={"cors_origins": [crm.origin]})
    result = await open_page(chromium, f"{crm.origin}/?api={gateway_origin(gateway)}")
    assert result.get("status") == 200, result
    assert result["body"]["status"] == "success" and result["body"]["call_id"]
    originate = await fake_ami.wait_for_action("Originate")
    assert originate["ActionID"] == result["body"]["call_id"]
    assert originate["Channel"] == "PJSIP/101" and originate["Exten"] == "0899098899"


async def test_a_page_on_another_origin_is_refused_by_the_browser(chromium, page_server, make_gateway, fake_ami):
    crm, other = await page_server(), await page_server()
    gateway = await make_gateway(api={"cors_origins": [crm.origin]})
    result = await open_page(chromium, f"{other.origin}/?api={gateway_origin(gateway)}")
    assert result.get("error") == "TypeError", result       # "Failed to fetch": CORS blocked it
    assert fake_ami.actions_named("Originate") == []
    result = await open_page(chromium, f"{crm.origin}/?api={gateway_origin(gateway)}")
    assert result.get("status") == 200, result              # the same gateway, from the listed page
    assert (await fake_ami.wait_for_action("Originate"))["ActionID"] == result["body"]["call_id"]
    assert len(fake_ami.actions_named("Originate")) == 1
