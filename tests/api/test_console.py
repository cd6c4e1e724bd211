"""What the console and the widget need of the gateway, on the fake AMI: the static files
(served from the package, with their types and the console's security headers), webhooks'
deliveries and retrying the dead ones, and a tenant's view of its own PBX (its link and the
last check's findings about itself, never another tenant's)."""
import asyncio

from c2c_ami.app_keys import STORAGE, WEBHOOKS
from tests.fixtures_gateway import AUTH, OTHER_TOKEN, TOKEN

OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
TENANTS = [
    {"domain": "default", "tokens": [TOKEN], "api_keys": ["key-default-0123456789"], "endpoint": "PJSIP/{ext}",
     "context": "c2c-outbound", "extensions": "^1[0-9]{2}$", "hotlines": {"02873001234": "hotline-trunk"}},
    {"domain": "other", "tokens": [OTHER_TOKEN], "endpoint": "PJSIP/{ext}", "context": "other-outbound",
     "extensions": "^2[0-9]{2}$", "hotlines": {"02439990000": "other-trunk"}},
]


async def scoped_token(client, ext="101"):
    resp = await client.post("/v1/auth/token", json={"api_key": "key-default-0123456789", "ext": ext})
    return {"Authorization": f"Bearer {(await resp.json())['data']['token']}"}


async def test_the_console_and_the_widget_are_served_from_the_package(gateway):
    page = await gateway.get("/console")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    html = await page.text()
    assert 'src="console/console.js"' in html and "Bảng điều khiển" in html
    for asset, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        resp = await gateway.get(f"/console/{asset}")
        assert resp.status == 200 and resp.headers["Content-Type"] == f"{kind}; charset=utf-8"
    assert (await gateway.get("/console/console.html")).status == 404       # only the console's assets
    assert (await gateway.get("/console/..%2Fapp.py")).status == 404
    widget = await gateway.get("/widget.js")
    assert widget.status == 200 and widget.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "data-c2c-phone" in await widget.text()


async def test_webhook_deliveries_and_retrying_the_dead_ones(make_gateway, fake_ami):
    client = await make_gateway(tenants=TENANTS)
    created = await (await client.post("/v1/event", json={"url": "https://crm.example.com/hook", "events": ["cdr"]},
                                       headers=AUTH)).json()
    hook_id = created["hook"]["id"]
    store = client.app[STORAGE]
    dead = await store.enqueue(hook_id, "call-1", "cdr", b"{}", now=10**12)   # not due: the worker leaves it
    await store.mark_dead(dead, "HTTP 404")
    body = await (await client.get("/v1/event/deliveries", headers=AUTH)).json()
    assert body["total"] == 1
    assert {k: body["data"][0][k] for k in ("id", "url", "event", "pending", "delivered", "dead", "last_error")} == {
        "id": hook_id, "url": "https://crm.example.com/hook", "event": "cdr", "pending": 0, "delivered": 0,
        "dead": 1, "last_error": "HTTP 404"}
    assert (await (await client.get("/v1/event/deliveries", headers=OTHER)).json())["data"] == []
    woken = asyncio.Event()
    wake = client.app[WEBHOOKS].wake
    client.app[WEBHOOKS].wake = lambda: (woken.set(), wake())
    assert (await client.post(f"/v1/event/{hook_id}/retry", headers=OTHER)).status == 404   # not its hook
    resp = await client.post(f"/v1/event/{hook_id}/retry", headers=AUTH)
    assert resp.status == 200 and await resp.json() == {"status": "success", "id": hook_id, "retried": 1}
    assert woken.is_set()
    scoped = await scoped_token(client)
    assert (await client.get("/v1/event/deliveries", headers=scoped)).status == 403
    assert (await client.post(f"/v1/event/{hook_id}/retry", headers=scoped)).status == 403


async def test_a_tenant_sees_its_own_pbx_and_the_findings_about_itself(make_gateway, fake_ami):
    fake_ami.dialplan = {"c2c-outbound": [("_X.", 1, "Dial", "PJSIP/${EXTEN}@${C2C_TRUNK}")]}   # other-outbound: none
    client = await make_gateway(tenants=TENANTS)
    mine = (await (await client.get("/v1/pbx/status", headers=AUTH)).json())["pbx"]
    assert (mine["name"], mine["ami"], mine["usable"], mine["detail"]) == ("default", "ready", True, None)
    assert mine["checked_at"] is not None
    assert "context_missing" not in [f["code"] for f in mine["findings"]]       # the other tenant's context
    theirs = (await (await client.get("/v1/pbx/status", headers=OTHER)).json())["pbx"]
    missing = [f for f in theirs["findings"] if f["code"] == "context_missing"]
    assert len(missing) == 1 and "other-outbound" in missing[0]["what"]
    assert (await client.get("/v1/pbx/status", headers=await scoped_token(client))).status == 403
    assert (await client.get("/v1/pbx/status")).status == 401
