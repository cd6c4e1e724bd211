"""Item 5: what the do-not-call list costs a click, with 100,000 listed numbers vs none.

For each store (SQLite, the default; PostgreSQL, a private server), two gateway processes on
one in-process fake AMI (answers at once): one whose tenant's list is empty, one whose list
holds ``listed`` numbers (filled through the store's own API before the gateway starts).
Requests alternate between the two (so a drifting machine slows both alike) and each is timed
as item 4 times one: HTTP request sent -> Originate received by the fake AMI ("time in the
gateway", one clock). The numbers dialled are not listed, so every click is placed and pays
the lookup; refusals are timed too (a listed number -> its 403). Besides, the lookup alone,
in process (``DialPolicy.check_number``), per store and list size.
"""
from __future__ import annotations

import asyncio
import os
import time

from c2c_ami.calls.policy import DialPolicy
from c2c_ami.config import StorageConfig, parse_config
from c2c_ami.store import open_storage
from c2c_ami.testing.fake_ami import Behaviour, FakeAmiServer

from .common import Processes, free_port, gateway_yaml, percentile, start_gateway, wait_ready
from .latency_bench import _http_get

TENANT = {"default_region": "VN"}


def _listed(n: int) -> list[tuple[str, str, str]]:
    return [(f"+8490{i:07d}", f"090{i:07d}", "bench") for i in range(n)]


async def _fill(url: str, listed: int) -> None:
    store = await open_storage(StorageConfig(url=url))
    try:
        entries = _listed(listed)
        for start in range(0, len(entries), 1000):
            await store.add_blacklisted("bench", entries[start:start + 1000])
    finally:
        await store.close()


async def _lookups(url: str, samples: int) -> dict:
    """The lookup alone: DialPolicy.check_number of unlisted numbers, microseconds each."""
    store = await open_storage(StorageConfig(url=url))
    tenant = parse_config({"tenants": [{"domain": "bench", "tokens": ["t-0123456789abcdef"], "hotlines": {"028": "t"},
                                        **TENANT}]}, {}).tenants[0]
    policy = DialPolicy(store)
    try:
        times = []
        for i in range(samples):
            started = time.perf_counter()
            await policy.check_number(tenant, f"091{i:07d}")
            times.append(time.perf_counter() - started)
    finally:
        await store.close()
    return {f"p{p}_us": round(percentile(times, p) * 1e6, 1) for p in (50, 99)}


def _stats(values: list[float]) -> dict:
    return {f"p{p}_ms": round(percentile(values, p) * 1000, 3) for p in (50, 90, 99)} | {"count": len(values)}


async def _clicks(workdir: str, urls: dict[str, str], samples: int) -> dict:
    fake = FakeAmiServer(default_behaviour=Behaviour("answer", dial="none", talk_time=0),
                         default_device_state="NOT_INUSE")
    await fake.start()
    out: dict = {}
    try:
        with Processes(workdir) as procs:
            ports = {}
            for name, url in urls.items():
                port = free_port()
                config = gateway_yaml(os.path.join(workdir, f"gw-dnc-{name}.yaml"), port, fake.port,
                                      storage_url=url, tenant=TENANT)
                ports[name] = (port, start_gateway(procs, config, "WARNING", name=f"gw-dnc-{name}"))
            for port, proc in ports.values():
                await asyncio.to_thread(wait_ready, port, 30, proc)
            placed: dict[str, list[float]] = {name: [] for name in urls}
            refused: dict[str, list[float]] = {name: [] for name in urls}
            for i in range(samples + 5):              # the first 5 warm up
                for name, (port, _) in ports.items():
                    seen = len(fake.actions_named("Originate"))
                    started = time.perf_counter()
                    request = asyncio.ensure_future(_http_get(
                        port, f"/v1/click2call/async?ext={7000000 + i}&phone=091{i:07d}"))

                    def originated(seen: int = seen) -> float | bool:
                        return len(fake.actions_named("Originate")) > seen and time.perf_counter()
                    arrived = await fake.wait_for(originated, 10)
                    status, _ = await request
                    assert status == 200, status
                    if i >= 5:
                        placed[name].append(arrived - started)
                    if name == "listed":       # a listed number, in another form than it was listed in
                        started = time.perf_counter()
                        status, _ = await _http_get(port, f"/v1/click2call/async?ext={7000000 + i}&phone=8490{i:07d}")
                        assert status == 403, status
                        if i >= 5:
                            refused[name].append(time.perf_counter() - started)
            for name, (_, proc) in ports.items():
                procs.stop(proc)
                out[name] = {"http_to_originate": _stats(placed[name]),
                             "refusal_response": _stats(refused[name]) if refused[name] else None}
    finally:
        await fake.stop()
    return out


def run(workdir: str, *, listed: int = 100_000, samples: int = 300, postgres: bool = True) -> dict:
    """{store: {"none": ..., "listed": ..., "lookup": {...}}}."""
    results: dict = {"listed": listed, "samples": samples, "stores": {}}
    stores = {"sqlite": lambda tag: f"sqlite:///{os.path.join(workdir, f'dnc-{tag}.sqlite3')}"}
    pg = None
    if postgres:
        from c2c_rig.postgres import PrivatePostgres
        pg = PrivatePostgres().start()
        stores["postgresql"] = lambda tag: pg.create_database()
    try:
        for store, make_url in stores.items():
            urls = {"none": make_url("none"), "listed": make_url("listed")}
            asyncio.run(_fill(urls["none"], 0))
            started = time.monotonic()
            asyncio.run(_fill(urls["listed"], listed))
            fill_s = round(time.monotonic() - started, 1)
            clicks = asyncio.run(_clicks(workdir, urls, samples))
            results["stores"][store] = {
                "fill_seconds": fill_s, "clicks": clicks,
                "lookup": {name: asyncio.run(_lookups(url, 2000 if samples > 50 else 200))
                           for name, url in urls.items()},
            }
    finally:
        if pg is not None:
            pg.stop()
    return results
