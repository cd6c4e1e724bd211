"""``/v1/event`` bounds: a per-tenant cap on hooks, and paging."""
from tests.fixtures_gateway import AUTH, OTHER_TOKEN

OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}


async def test_the_hook_after_the_cap_is_refused_and_paging_returns_them_all(make_gateway):
    client = await make_gateway(webhooks={"max_hooks_per_tenant": 100})
    made = []
    for i in range(100):
        resp = await client.post("/v1/event", json={"url": f"https://crm.example.com/h{i}"}, headers=AUTH)
        assert resp.status == 200
        made.append((await resp.json())["hook"]["id"])
    resp = await client.post("/v1/event", json={"url": "https://crm.example.com/h100"}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 409 and body["status"] == "fail" and body["error"] == "TOO_MANY_HOOKS"
    assert "at most 100 webhooks" in body["message"]
    # another tenant has its own cap
    assert (await client.post("/v1/event", json={"url": "https://o.example.com/"}, headers=OTHER)).status == 200

    seen, page = [], 1
    while True:
        listed = await (await client.get("/v1/event", params={"limit": "30", "page": str(page)}, headers=AUTH)).json()
        assert (listed["total"], listed["limit"], listed["page"]) == (100, 30, page)
        if not listed["hooks"]:
            break
        seen += [h["id"] for h in listed["hooks"]]
        page += 1
    assert seen == made and page == 5                   # oldest first, each once
    first = await (await client.get("/v1/event", headers=AUTH)).json()
    assert first["limit"] == 50 and len(first["hooks"]) == 50
    bad = await client.get("/v1/event", params={"limit": "501"}, headers=AUTH)
    assert bad.status == 400 and (await bad.json())["message"].startswith("limit: ")

    # deleting one makes room again
    assert (await client.delete(f"/v1/event/{made[0]}", headers=AUTH)).status == 200
    assert (await client.post("/v1/event", json={"url": "https://crm.example.com/again"}, headers=AUTH)).status == 200
