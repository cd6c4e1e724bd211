"""1,000 concurrent requests against the fake AMI: only declared outcomes, no leak."""
import asyncio
from collections import Counter

from c2c_ami.app_keys import AMI, REGISTRY, SERVICE
from c2c_ami.testing.fake_ami import Behaviour
from tests.fixtures_gateway import TOKEN

DECLARED = {"success", "USER_BUSY", "NO_ANSWER", "USER_NOT_REGISTERED", "CALL_FAILED"}


async def test_thousand_concurrent_requests(make_gateway, fake_ami):
    tenants = [{"domain": "load", "tokens": [TOKEN], "endpoint": "PJSIP/{ext}", "context": "c2c-outbound",
                "extensions": "^[0-9]{4}$", "hotlines": {"02873001234": "hotline-trunk"}}]
    client = await make_gateway(tenants=tenants, limits={"rate_burst": 5000, "rate_per_minute": 60000})
    kinds = [Behaviour("answer", ring_delay=0.01, dial="none", talk_time=0.05),
             Behaviour("reject"), Behaviour("no_answer", ring_timeout=0.05), Behaviour("unregistered"),
             Behaviour("congestion")]
    for n in range(1000):
        fake_ami.behaviours[f"PJSIP/{n:04d}"] = kinds[n % len(kinds)]

    async def one(n, path):
        resp = await client.get(path, params={"ext": f"{n:04d}", "phone": "0899098899"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status in (200, 404, 409, 502), resp.status
        return (await resp.json()).get("error", "success")

    paths = ["/v1/click2call", "/v1/click2call/async"]
    outcomes = await asyncio.wait_for(asyncio.gather(*(one(n, paths[n % 2]) for n in range(1000))), 60)
    counts = Counter(outcomes)
    assert set(counts) <= DECLARED, counts
    # sync requests (even n) get each behaviour's outcome; async ones succeed once queued
    assert counts == {"success": 100 + 500, "USER_BUSY": 100, "NO_ANSWER": 100,
                      "USER_NOT_REGISTERED": 100, "CALL_FAILED": 100}
    assert len(fake_ami.actions_named("Originate")) == 1000
    registry = client.app[REGISTRY]
    assert await registry.wait_empty(10), f"{len(registry)} calls left"
    assert registry.claimed_devices == 0 and client.app[SERVICE].waiters == 0
    assert client.app[AMI].ready
    assert not [f for f in client.app[AMI]._inflight if not f.done()]   # no action left unanswered
