"""Item 4: latency of one click-to-call, request by request (no load).

``fake`` (always): gateway process + in-process fake AMI (answers at once). Time from
sending GET /v1/click2call/async to the Originate arriving at the fake AMI — "time in the
gateway" (HTTP parse, auth, Getvar round trip to the fake, Originate written), one clock.

``rig`` (``--rig``): the real Asterisk rig (the c2c_rig package). The gateway talks
AMI through a relay in this process that timestamps the Originate bytes on their way to
Asterisk; the INVITE's arrival time is read from the phone's (sipp) trace. Reported:
HTTP->Originate (in the gateway), Originate->INVITE (Asterisk), HTTP->INVITE (total). The
two clocks (perf_counter for HTTP/relay, epoch for sipp) are tied by one time.time() read
next to the perf_counter one at each request.
"""
from __future__ import annotations

import asyncio
import os
import time

from c2c_ami.testing.fake_ami import Behaviour, FakeAmiServer

from .common import TOKEN, Processes, free_port, gateway_yaml, percentile, start_gateway, wait_ready


async def _http_get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(-1), 30)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _stats(values: list[float]) -> dict:
    return {"count": len(values), **{f"p{p}": (None if not values else round(percentile(values, p) * 1000, 3))
                                      for p in (50, 90, 99)}}


async def _fake(workdir: str, samples: int) -> dict:
    fake = FakeAmiServer(default_behaviour=Behaviour("answer", dial="none", talk_time=0),
                         default_device_state="NOT_INUSE")
    await fake.start()
    try:
        with Processes(workdir) as procs:
            http_port = free_port()
            gateway = start_gateway(procs, gateway_yaml(os.path.join(workdir, "gw-lat.yaml"),
                                                        http_port, fake.port), "INFO", name="gateway-latency")
            await asyncio.to_thread(wait_ready, http_port, 20, gateway)
            in_gateway: list[float] = []
            total: list[float] = []
            statuses: dict[int, int] = {}
            for i in range(samples + 5):           # the first 5 warm up
                seen = len(fake.actions_named("Originate"))
                started = time.perf_counter()
                request = asyncio.ensure_future(_http_get(
                    http_port, f"/v1/click2call/async?ext={8000000 + i}&phone=09{i:08d}"))
                def originated(seen: int = seen) -> float | bool:
                    return len(fake.actions_named("Originate")) > seen and time.perf_counter()
                arrived = await fake.wait_for(originated, 10)
                status, _ = await request
                finished = time.perf_counter()
                statuses[status] = statuses.get(status, 0) + 1
                if i >= 5:
                    in_gateway.append(arrived - started)
                    total.append(finished - started)
            procs.stop(gateway)
    finally:
        await fake.stop()
    return {"http_to_originate_ms": _stats(in_gateway), "http_response_ms": _stats(total),
            "statuses": statuses}


class _Relay:
    """TCP relay gateway <-> Asterisk AMI that notes when each Originate passes."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.originates: list[float] = []
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src, dst, watch: bool) -> None:
            try:
                while data := await src.read(65536):
                    if watch and b"Action: Originate" in data:
                        self.originates.append(time.perf_counter())
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()
        tasks = [asyncio.ensure_future(pipe(reader, up_writer, True)),
                 asyncio.ensure_future(pipe(up_reader, writer, False))]
        self.tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def rig_module():
    """The rig API (package c2c_rig), or None if it is not installed in this environment."""
    try:
        import c2c_rig
    except ImportError:
        return None
    return c2c_rig


async def _rig(workdir: str, samples: int) -> dict:
    rig = rig_module()
    if rig is None:
        return {"skipped": "the c2c_rig package is not installed (pip install -e ./asterisk-test-config)"}
    try:
        runtime = await asyncio.to_thread(rig.install, False)
        instance = await asyncio.to_thread(rig.Rig.up, None, runtime)
    except Exception as exc:   # RigError, or a rig still being built
        return {"skipped": f"the Asterisk rig is not available: {exc}"}
    relay = None
    try:
        ami = instance.ami
        relay = _Relay((ami["host"], ami["port"]))
        relay_port = await relay.start()
        exts = [e for e in rig.PHONE_GROUPS["answer"] if e.startswith("2")] or rig.PHONE_GROUPS["answer"]
        with Processes(workdir) as procs:
            http_port = free_port()
            config = gateway_yaml(os.path.join(workdir, "gw-rig.yaml"), http_port, relay_port,
                                  ami_user=ami["username"], ami_secret=ami["secret"], ring_timeout=10,
                                  sync_timeout=20)
            gateway = start_gateway(procs, config, "INFO", name="gateway-rig")
            await asyncio.to_thread(wait_ready, http_port, 20, gateway)
            in_gateway, in_asterisk, total, failures = [], [], [], []
            for i in range(samples + 1):          # the first one warms up
                ext = exts[i % len(exts)]
                if i >= len(exts):
                    await asyncio.to_thread(instance.wait_device_state, ext, "NOT_INUSE", 10)
                seen = len(relay.originates)
                epoch, started = time.time(), time.perf_counter()
                status, body = await _http_get(http_port, f"/v1/click2call/async?ext={ext}&phone=0899098{i:03d}")
                if status != 200:
                    failures.append(f"{ext}: HTTP {status} {body[:120]!r}")
                    continue
                try:
                    invite = await asyncio.to_thread(instance.wait_for_invite, ext, epoch - 0.001, 10)
                except Exception as exc:
                    failures.append(f"{ext}: no INVITE ({exc})")
                    continue
                import json
                call_id = json.loads(body)["call_id"]
                await _http_get(http_port, f"/v1/calls/{call_id}", "DELETE")   # hang up / cancel
                if len(relay.originates) <= seen:
                    failures.append(f"{ext}: Originate not seen by the relay")
                    continue
                originate = relay.originates[seen] - started
                to_invite = invite.time - epoch
                if i >= 1:
                    in_gateway.append(originate)
                    total.append(to_invite)
                    in_asterisk.append(to_invite - originate)
            procs.stop(gateway)
        return {"asterisk": runtime.get("version"),
                "http_to_originate_ms": _stats(in_gateway), "originate_to_invite_ms": _stats(in_asterisk),
                "http_to_invite_ms": _stats(total), "failures": failures[:10],
                "note": "sipp trace times have microsecond resolution; relay adds ~0.1 ms"}
    finally:
        if relay is not None:
            await relay.close()
        await asyncio.to_thread(instance.down)


def run(workdir: str, samples: int = 200, rig: bool = False, rig_samples: int = 30) -> dict:
    out = {"fake": asyncio.run(_fake(workdir, samples))}
    if rig:
        out["rig"] = asyncio.run(_rig(workdir, rig_samples))
    return out
