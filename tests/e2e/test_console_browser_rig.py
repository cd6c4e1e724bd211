"""The console, the CRM widget and the event stream in a real browser (Debian's headless
chromium through Selenium) on the real rig, on both channel drivers.

The console signs in with an api key and shows a call placed from its test dialer appear,
ring, talk and end (a recorder in the page notes every state a row showed); its hang-up button
cancels a ringing call (the sipp phone gets CANCEL); its transfer button moves a talking
customer to another extension (the target gets the INVITE, the first agent the BYE). The widget,
on a CRM page of another origin with an extension-scoped token, turns a ``tel:`` link into a
call that reaches the trunk, and says "busy" for an extension that rejects. A page streaming from
one instance of a two-instance cluster on PostgreSQL, cut when that instance is killed, resumes
on the other with ``Last-Event-ID`` and loses nothing. The tests take the screenshots in
docs/images/ (on PJSIP).
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import yaml
from aiohttp import web

from c2c_ami.app_keys import REGISTRY
from tests.browser import in_browser, screenshot, wait_until
from tests.sse import SseReader

from .conftest import AUTH, TOKEN, in_thread, now, rig_config
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)
from .gateways import GatewayProcess, free_port, write_config

pytestmark = [pytest.mark.rig, pytest.mark.browser]

API_KEY = "console-key-0123456789abcdef"
TALKS = "0909000700"          # the trunk answers, then talks until hung up
NEVER_ANSWERS = "107"         # rings until cancelled
REJECTS = "102"               # 486 Busy Here

# What a row of the live calls showed, every time it changed (the console replaces a row as a
# call changes): window.__shown[call_id] = [state, ...], and the agent column's text.
RECORDER = """
window.__shown = {}; window.__who = {};
const note = (tr) => {
  if (!tr.dataset || !tr.dataset.id) return;
  const seen = window.__shown[tr.dataset.id] = window.__shown[tr.dataset.id] || [];
  if (seen[seen.length - 1] !== tr.dataset.state) seen.push(tr.dataset.state);
  window.__who[tr.dataset.id] = tr.cells[0].textContent;
};
document.querySelectorAll('#calls tbody tr').forEach(note);
new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach(note)))
  .observe(document.querySelector('#calls tbody'), {childList: true});
"""


@pytest.fixture
async def console_gw(rig, aiohttp_client, tmp_path, request):
    """The gateway on the rig, with an api key to sign in with and room to click (ring 15 s);
    a test with a CRM site (``crm``) has its origin listed in api.cors_origins."""
    from c2c_ami.app import create_app
    from c2c_ami.app_keys import AMI
    from c2c_rig import HOTLINES
    origins = [request.getfixturevalue("crm").origin] if "crm" in request.fixturenames else []
    tenant = {"domain": "default", "tokens": [TOKEN], "api_keys": [API_KEY], "endpoint": f"{rig.tech}/{{ext}}",
              "context": "c2c-outbound", "extensions": "^[0-9]{3}$", "hotlines": dict(HOTLINES),
              "agents": {"221": "Nguyễn Văn An", "222": "Trần Thị Bích", "223": "Lê Hoàng Cường"}}
    config = rig_config(rig, tmp_path, api={"cors_origins": origins}, tenants=[tenant],
                        calls={"ring_timeout": 15, "dial_timeout": 5, "sync_timeout": 20},
                        auth={"signing_secret": "e2e-signing-secret-0123456789abcdef"})
    app = create_app(config)
    client = await aiohttp_client(app)
    assert await app[AMI].wait_ready(5), f"gateway did not log in to the rig: {app[AMI].last_error}"
    client.base = f"http://127.0.0.1:{client.server.port}"
    yield client
    registry = client.app[REGISTRY]
    for call in registry.live():
        await client.delete(f"/v1/calls/{call.call_id}", headers=AUTH)
    assert await registry.wait_empty(15)


async def sign_in(driver, gw):
    from selenium.webdriver.common.by import By

    def run():
        driver.get(f"{gw.base}/console")
        driver.execute_script("sessionStorage.clear(); localStorage.setItem('c2c.lang', 'en');")
        driver.get(f"{gw.base}/console")
        driver.find_element(By.ID, "api-key").send_keys(API_KEY)
        driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
        wait_until(driver, lambda d: d.find_element(By.ID, "link").get_attribute("data-state") == "live",
                   message="the console's event stream did not open")
        driver.execute_script(RECORDER)
    await in_browser(run)


def shown(driver, call_id):
    return driver.execute_script("return window.__shown[arguments[0]] || []", call_id)


async def until_shown(driver, call_id, state, timeout=15.0):
    await in_browser(wait_until, driver, lambda d: state in shown(d, call_id), timeout,
                     f"the console never showed {call_id} as {state}")


def row_button(driver, call_id, action):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, f'#calls tr[data-id="{call_id}"] button[data-action="{action}"]')


async def test_the_console_shows_a_call_appear_ring_talk_and_end(chromium, console_gw, rig):
    from selenium.webdriver.common.by import By
    await sign_in(chromium, console_gw)

    def dial():
        chromium.find_element(By.CSS_SELECTOR, '[data-tab="dialer"]').click()
        form = chromium.find_element(By.ID, "dialer")
        form.find_element(By.NAME, "ext").send_keys("221")
        form.find_element(By.NAME, "phone").send_keys(TALKS)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        result = wait_until(chromium, lambda d: d.find_element(By.ID, "dialer-result").get_attribute("data-call-id"))
        chromium.find_element(By.CSS_SELECTOR, '[data-tab="live"]').click()
        return result
    call_id = await in_browser(dial)
    await until_shown(chromium, call_id, "number_answered")
    await in_browser(wait_until, chromium, lambda d: d.find_element(
        By.CSS_SELECTOR, '#agents tr[data-id="221"]').get_attribute("data-state") == "ONCALL")
    if rig.tech == "PJSIP":
        def screenshots():
            screenshot(chromium, "console-live")
            chromium.find_element(By.ID, "lang").send_keys("Tiếng Việt")      # the same page in Vietnamese
            wait_until(chromium, lambda d: d.find_element(By.CSS_SELECTOR, '#agents tr[data-id="221"]').text
                       .startswith("221 Nguyễn Văn An Đang gọi"))
            screenshot(chromium, "console-live-vi")
            chromium.find_element(By.ID, "lang").send_keys("English")
        await in_browser(screenshots)
    assert (await console_gw.delete(f"/v1/calls/{call_id}", headers=AUTH)).status == 200   # ended elsewhere
    await until_shown(chromium, call_id, "ended")
    states = shown(chromium, call_id)
    assert states.index("ext_ringing") < states.index("number_answered") < states.index("ended"), states
    assert states[0] in ("originating", "ext_ringing"), states
    ended_row = await in_browser(lambda: chromium.find_element(By.CSS_SELECTOR, f'#calls tr[data-id="{call_id}"]').text)
    assert "ANSWERED" in ended_row and TALKS in ended_row
    if rig.tech == "PJSIP":                 # the call history, in Vietnamese
        def vietnamese():
            chromium.find_element(By.ID, "lang").send_keys("Tiếng Việt")
            cdr_tab = (By.CSS_SELECTOR, '[data-tab="cdr"]')
            wait_until(chromium, lambda d: d.find_element(*cdr_tab).text == "Lịch sử cuộc gọi")
            chromium.find_element(By.CSS_SELECTOR, '[data-tab="cdr"]').click()
            wait_until(chromium, lambda d: d.find_elements(By.CSS_SELECTOR, f'#cdrs tr[data-id="{call_id}"]'))
            screenshot(chromium, "console-cdr-vi")
            chromium.find_element(By.CSS_SELECTOR, '[data-tab="live"]').click()
            chromium.find_element(By.ID, "lang").send_keys("English")
        await in_browser(vietnamese)


async def test_the_hang_up_button_cancels_a_ringing_call(chromium, console_gw, rig):
    await sign_in(chromium, console_gw)
    t0 = now()
    resp = await console_gw.get("/v1/click2call/async", params={"ext": NEVER_ANSWERS, "phone": TALKS}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    invite = await in_thread(rig.wait_for_invite, NEVER_ANSWERS, after=t0)
    await until_shown(chromium, call_id, "ext_ringing")
    await in_browser(lambda: row_button(chromium, call_id, "hangup").click())
    await in_thread(rig.wait_for_message, NEVER_ANSWERS, "CANCEL", call_id=invite.call_id, after=t0)
    await until_shown(chromium, call_id, "ended")
    record = (await (await console_gw.get(f"/v1/calls/{call_id}", headers=AUTH)).json())["call"]
    assert (record["status"], record["hangup_by"]) == ("CANCEL", "api")


async def test_the_transfer_button_moves_a_talking_customer(chromium, console_gw, rig):
    from selenium.webdriver.common.by import By
    await sign_in(chromium, console_gw)
    t0 = now()
    resp = await console_gw.get("/v1/click2call/async", params={"ext": "222", "phone": TALKS}, headers=AUTH)
    call_id = (await resp.json())["call_id"]
    agent_invite = await in_thread(rig.wait_for_invite, "222", after=t0)
    await until_shown(chromium, call_id, "number_answered")
    t1 = now()

    def transfer():
        chromium.find_element(By.ID, "target-ext").send_keys("223")
        row_button(chromium, call_id, "transfer").click()
    await in_browser(transfer)
    await in_thread(rig.wait_for_invite, "223", after=t1, timeout=10)
    await in_thread(rig.wait_for_message, "222", "BYE", call_id=agent_invite.call_id, after=t1, timeout=10)
    await in_browser(wait_until, chromium, lambda d: d.execute_script(
        "return window.__who[arguments[0]]", call_id) == "222 → 223", 15, "the console never showed 222 → 223")
    notice = await in_browser(lambda: chromium.find_element(By.ID, "notice").text)
    assert notice == "Transfer: Done", notice
    assert not [m for m in rig.messages("hotline-trunk") if m.method == "BYE" and m.time >= t1]   # the customer stayed
    await in_browser(lambda: row_button(chromium, call_id, "hangup").click())
    await until_shown(chromium, call_id, "ended")
    record = (await (await console_gw.get(f"/v1/cdr/{call_id}", headers=AUTH)).json())["call"]
    assert (record["final_ext"], record["extension"], record["status"]) == ("223", "222", "ANSWERED")


# -- the widget -------------------------------------------------------------------------------

CRM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CRM — Nguyễn Thị Hồng</title>
<style>body {{ font: 16px system-ui, sans-serif; margin: 2rem; }} td {{ padding: .3rem 1rem .3rem 0; }}</style>
</head><body>
<h1>Nguyễn Thị Hồng</h1>
<table><tr><td>Mobile</td><td><a id="tel" href="tel:{phone}">{phone}</a></td></tr>
<tr><td>Office</td><td><span id="office" data-c2c-phone="{phone}">{phone}</span></td></tr></table>
<script src="{gateway}/widget.js" data-token="{token}" defer></script>
</body></html>
"""


@pytest.fixture
async def crm(aiohttp_server):
    """The CRM's site, on an origin of its own; its backend mints the extension's token."""
    pages: dict[str, str] = {}

    async def page(request):
        name = request.match_info["name"]
        if name not in pages:           # the browser's favicon.ico, say
            raise web.HTTPNotFound()
        return web.Response(text=pages[name], content_type="text/html")
    app = web.Application()
    app.router.add_get("/{name}", page)
    server = await aiohttp_server(app)
    server.origin = f"http://127.0.0.1:{server.port}"
    server.pages = pages
    return server


async def widget_page(crm, gw, name: str, ext: str, phone: str) -> str:
    resp = await gw.post("/v1/auth/token", json={"api_key": API_KEY, "ext": ext})   # the CRM's backend
    assert resp.status == 200
    token = (await resp.json())["data"]["token"]
    crm.pages[name] = CRM_PAGE.format(phone=phone, gateway=gw.base, token=token)
    return f"{crm.origin}/{name}"


def toast_text(driver) -> str:
    return driver.execute_script("const t = document.querySelector('.c2c-toast .c2c-text'); "
                                 "return t ? t.textContent : ''")


async def test_the_widget_places_a_call_from_a_tel_link_and_says_busy(chromium, crm, console_gw, rig):
    from selenium.webdriver.common.by import By
    url = await widget_page(crm, console_gw, "customer", "224", TALKS)
    t0 = now()

    def click_tel():
        chromium.get(url)
        wait_until(chromium, lambda d: d.find_element(By.ID, "tel").get_attribute("data-c2c-ready") == "1")
        assert "c2c-call" in chromium.find_element(By.ID, "office").get_attribute("class")
        chromium.find_element(By.ID, "tel").click()
        wait_until(chromium, lambda d: toast_text(d) == "Talking", 20, "the toast never said Talking")
    await in_browser(click_tel)
    trunk = [m for m in rig.messages("hotline-trunk") if m.method == "INVITE" and m.time > t0]
    assert [m.request_user for m in trunk] == [TALKS]                  # it reached the trunk
    assert rig.invites_to("224", after=t0)
    if rig.tech == "PJSIP":
        await in_browser(screenshot, chromium, "widget-call")

    def hang_up():
        chromium.find_element(By.CSS_SELECTOR, ".c2c-toast .c2c-hangup").click()
        wait_until(chromium, lambda d: toast_text(d) == "Call ended", 15)
    await in_browser(hang_up)
    await in_thread(rig.wait_for_message, "hotline-trunk", "BYE", after=t0)

    url = await widget_page(crm, console_gw, "rejecting", REJECTS, TALKS)

    def click_busy():
        chromium.get(url)
        wait_until(chromium, lambda d: d.find_element(By.ID, "office").get_attribute("data-c2c-ready") == "1")
        chromium.find_element(By.ID, "office").click()                  # a data-c2c-phone element this time
        wait_until(chromium, lambda d: toast_text(d).startswith("Busy"), 20, "the toast never said Busy")
        return toast_text(chromium)
    assert await in_browser(click_busy) == "Busy: your phone is busy or rejected the call"
    if rig.tech == "PJSIP":
        await in_browser(screenshot, chromium, "widget-busy")


# -- a cluster: the stream cut on one instance, resumed on the other -----------------------------

STREAM_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><script>
const urls = {urls};
window.__events = []; window.__instance = -1; window.__open = false;
let last = null;
function open(i) {{
  const es = new EventSource(urls[i] + "/v1/events/stream?token={token}" + (last ? "&last_event_id=" + last : ""));
  window.__instance = i;
  es.onopen = () => {{ window.__open = true; }};
  for (const name of ["state", "ringing", "answered", "hangup", "cdr", "agent", "reset"]) {{
    es.addEventListener(name, (m) => {{ window.__events.push({{id: Number(m.lastEventId), event: name,
      data: JSON.parse(m.data)}}); last = m.lastEventId; }});
  }}
  es.onerror = () => {{ if (i === 0) {{ es.close(); window.__open = false; open(1); }} }};
}}
open(0);
</script></body></html>"""


def events_of(driver) -> list[dict]:
    return driver.execute_script("return window.__events")


async def test_a_stream_cut_on_one_instance_resumes_on_the_other_and_loses_nothing(chromium, rig, postgres,
                                                                                  tmp_path, aiohttp_server):
    pages: dict[str, str] = {}
    async def page(request):
        return web.Response(text=pages["stream"], content_type="text/html")
    app = web.Application()
    app.router.add_get("/", page)
    site = await aiohttp_server(app)
    origin = f"http://127.0.0.1:{site.port}"
    path = write_config(rig, tmp_path, 1, postgres.create_database(), lease=3.0)
    config = yaml.safe_load(path.read_text())
    config["api"] = {"cors_origins": [origin]}
    path.write_text(yaml.safe_dump(config))
    a, b = (GatewayProcess(path, port=free_port(), instance_id=name) for name in ("gw-a", "gw-b"))
    async with aiohttp.ClientSession(headers=AUTH) as http:
        try:
            await a.start()
            await b.start()
            pages["stream"] = STREAM_PAGE.format(urls=json.dumps([a.base, b.base]), token=TOKEN)
            await in_browser(chromium.get, f"{origin}/")
            await in_browser(wait_until, chromium, lambda d: d.execute_script("return window.__open"))

            async def call(phone):
                async with http.get(b.base + "/v1/click2call/async", params={"ext": "225", "phone": phone}) as resp:
                    assert resp.status == 200
                    return (await resp.json())["call_id"]

            def seen(call_id, event, state=None):
                return lambda d: any(e["event"] == event and e["data"].get("call_id") == call_id
                                     and (state is None or e["data"].get("call_state") == state)
                                     for e in events_of(d))
            first = await call("0909000700")          # tracked by b; the page streams from a
            await in_browser(wait_until, chromium, seen(first, "state", "number_answered"), 20)
            assert chromium.execute_script("return window.__instance") == 0
            await a.kill()                            # the stream is cut...
            async with http.delete(f"{b.base}/v1/calls/{first}") as resp:     # ...while the call ends
                assert resp.status == 200
            await in_browser(wait_until, chromium, lambda d: d.execute_script("return window.__instance") == 1)
            await in_browser(wait_until, chromium, seen(first, "cdr"), 20)   # its end, resumed on b (and
            second = await call("0909001700")         # 225 free again); another number: not a double click
            await in_browser(wait_until, chromium, seen(second, "state", "number_answered"), 20)
            async with http.delete(f"{b.base}/v1/calls/{second}") as resp:
                assert resp.status == 200
            await in_browser(wait_until, chromium, seen(second, "cdr"), 20)
            got = events_of(chromium)
            ids = [e["id"] for e in got]
            assert ids == list(range(ids[0], ids[0] + len(ids))), ids         # every event once, in order
            assert not [e for e in got if e["event"] == "reset"]
            for call_id in (first, second):
                names = [e["event"] for e in got if e["data"].get("call_id") == call_id   # (its webhook
                         and e["event"] not in ("state", "agent")]                        # events)
                assert names[-4:] == ["ringing", "answered", "hangup", "cdr"], names
            # the oracle: the log itself, read from b from just before the first event the page had
            async with http.get(b.base + "/v1/events/stream", headers={"Last-Event-ID": str(ids[0] - 1)}) as resp:
                reader = SseReader(resp)
                logged = [await reader.next() for _ in ids]
            assert [(int(e.id), e.event) for e in logged] == [(e["id"], e["event"]) for e in got]
            assert [e.json for e in logged] == [e["data"] for e in got]
        finally:
            await asyncio.gather(a.stop(), b.stop())
