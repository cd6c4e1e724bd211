"""Item 6: the event stream (GET /v1/events/stream) with 1,000 open streams on one instance.

A gateway process (SQLite store, the default) on an in-process fake AMI whose calls answer at
once (both legs; ~13 events each). The bench opens ``streams`` SSE connections to it (one
tenant, real TCP), then places ``calls`` click-to-calls at ``rate`` per second, and measures:

- **memory per stream**: the gateway's RSS with every stream open minus before any was
  opened, divided by the streams (after one call warmed every path up);
- **events/s fanned out**: SSE events written to all streams together, per second, from the
  first click to the last frame received (the gateway's own counter, ``c2c_event_frames_sent``,
  checked against what the clients counted);
- **delay, AMI event -> SSE frame**: for each call, the fake AMI's ``Newstate Ringing`` of
  the agent's channel (when it was written to the socket) to the ``state`` event
  ``ext_ringing`` of that call reaching each stream (read by the client: its own reading
  delay is included), p50 / p99 over every (call, stream).

Besides, in process: what one event costs per stream to write, formatted by aiohttp-sse's
``send()`` for each stream, or encoded once (``notify/stream.frame``) and written as bytes to
each (what the gateway does) -- the reason the hub hands aiohttp-sse's response ready frames.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time

import aiohttp
import yaml

from c2c_ami.testing.fake_ami import Behaviour, FakeAmiServer

from .common import (
    TOKEN,
    Processes,
    free_port,
    gateway_yaml,
    percentile,
    raise_nofile,
    rss_mib,
    start_gateway,
    wait_ready,
)

_CALL_ID = re.compile(rb'"call_id":"([0-9a-f-]{36})"')


class Client:
    """One stream: counts the events it gets; notes when each call's ext_ringing came."""

    def __init__(self) -> None:
        self.events = 0
        self.rings: dict[str, float] = {}
        self.cdrs = 0
        self.opened = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession, url: str) -> None:
        async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=None) as resp:
            assert resp.status == 200, resp.status
            tail = b""
            while True:
                chunk = await resp.content.readany()
                if not chunk:
                    return
                now = time.time()
                if not self.opened.is_set():
                    self.opened.set()
                frames = (tail + chunk).split(b"\r\n\r\n")
                tail = frames.pop()
                for f in frames:
                    if not f.startswith(b"id: "):
                        continue
                    self.events += 1
                    if b"event: state" in f and b'"call_state":"ext_ringing"' in f:
                        m = _CALL_ID.search(f)
                        if m:
                            self.rings.setdefault(m.group(1).decode(), now)
                    elif b"event: cdr" in f:
                        self.cdrs += 1


def _write_cost(streams: int = 1000, events: int = 20) -> dict:
    """µs per stream per event: aiohttp-sse's send() for each stream vs one frame() for all."""
    from aiohttp_sse import EventSourceResponse

    from c2c_ami.notify.stream import frame
    payload = json.dumps({"call_id": "50038035-0717-40f1-b7af-eb92021b012e", "to_number": "0899098899",
                          **{f"k{n}": "v" * 20 for n in range(40)}}, separators=(",", ":"))

    async def measure() -> dict:
        responses = [EventSourceResponse() for _ in range(streams)]

        async def sink(data: bytes) -> None:
            return None
        for r in responses:
            r.write = sink            # type: ignore[method-assign,assignment]
        started = time.perf_counter()
        for n in range(events):
            for r in responses:
                await r.send(payload, id=str(n), event="state")
        per_send = (time.perf_counter() - started) / (streams * events)
        started = time.perf_counter()
        for n in range(events):
            wire = frame(n, "state", payload)
            for r in responses:
                await r.write(wire)
        per_frame = (time.perf_counter() - started) / (streams * events)
        return {"payload_bytes": len(payload), "send_us": round(per_send * 1e6, 2),
                "encoded_once_us": round(per_frame * 1e6, 2)}
    return asyncio.run(measure())


async def _run(wd: str, streams: int, calls: int, rate: float) -> dict:
    raise_nofile()
    fake = FakeAmiServer(default_behaviour=Behaviour("answer", dial="trunk", talk_time=0.2),
                         default_device_state="NOT_INUSE")
    rang: dict[str, float] = {}
    broadcast = fake._broadcast

    def noted(data: bytes) -> None:
        broadcast(data)
        if b"Event: Newstate" in data and b"ChannelStateDesc: Ringing" in data:
            uid = re.search(rb"\r\nUniqueid: ([^\r]+)", data)
            if uid:
                rang.setdefault(uid.group(1).decode(), time.time())
    fake._broadcast = noted          # type: ignore[method-assign]
    await fake.start()
    port = free_port()
    config = gateway_yaml(os.path.join(wd, "stream.yaml"), port, fake.port)
    with open(config, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    raw["events"] = {"max_streams_per_tenant": streams + 10, "buffer": 5000}
    raw["http"] = {"max_connections": streams + 100}
    with open(config, "w", encoding="utf-8") as fh:
        yaml.safe_dump(raw, fh)
    base = f"http://127.0.0.1:{port}"
    try:
        with Processes(wd) as procs:
            gateway = start_gateway(procs, config, log_level="WARNING")
            await asyncio.to_thread(wait_ready, port, 20, gateway)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                async def click(n: int) -> None:
                    async with session.get(f"{base}/v1/click2call/async", params={"ext": f"{1000 + n % 900}",
                                           "phone": f"0899{n:06d}"},
                                           headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                        assert resp.status == 200, await resp.text()
                warm = Client()
                warm_task = asyncio.ensure_future(warm.run(session, f"{base}/v1/events/stream"))
                await asyncio.wait_for(warm.opened.wait(), 10)
                await click(10**6)
                while warm.cdrs < 1:
                    await asyncio.sleep(0.05)
                warm_task.cancel()
                await asyncio.sleep(1.0)
                rss_before = rss_mib(gateway.pid)
                clients = [Client() for _ in range(streams)]
                tasks = [asyncio.ensure_future(c.run(session, f"{base}/v1/events/stream")) for c in clients]
                opened_at = time.monotonic()
                await asyncio.wait_for(asyncio.gather(*(c.opened.wait() for c in clients)), 60)
                open_seconds = time.monotonic() - opened_at
                await asyncio.sleep(1.0)
                rss_open = rss_mib(gateway.pid)
                sent_before = await _frames_sent(session, base)
                started = time.time()
                for n in range(calls):
                    await click(n)
                    await asyncio.sleep(1 / rate)
                deadline = time.monotonic() + 120
                while any(c.cdrs < calls for c in clients) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                last = time.time()
                sent = await _frames_sent(session, base) - sent_before
                rss_after = rss_mib(gateway.pid)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        delays = [got - rang[call_id] for c in clients for call_id, got in c.rings.items() if call_id in rang]
        received = sum(c.events for c in clients)
        complete = sum(1 for c in clients if c.cdrs >= calls)
        return {
            "streams": streams, "calls": calls, "calls_per_second": rate,
            "open_all_seconds": round(open_seconds, 2),
            "rss_before_mib": round(rss_before, 1), "rss_open_mib": round(rss_open, 1),
            "rss_after_mib": round(rss_after, 1),
            "kib_per_stream": round((rss_open - rss_before) * 1024 / streams, 1),
            "events_received": received, "events_sent_by_gateway": sent,
            "streams_complete": complete,
            "fanned_out_per_second": round(received / max(last - started, 1e-9)),
            "events_per_call": round(received / max(streams * calls, 1), 1),
            "ami_to_frame_ms": {"p50": round(percentile(delays, 50) * 1000, 1),
                                "p99": round(percentile(delays, 99) * 1000, 1),
                                "max": round(max(delays) * 1000, 1) if delays else None, "samples": len(delays)},
        }
    finally:
        await fake.stop()


async def _frames_sent(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    line = next(ln for ln in text.splitlines() if ln.startswith("c2c_event_frames_sent_total"))
    return int(float(line.split()[-1]))


def run(wd: str, *, streams: int = 1000, calls: int = 100, rate: float = 10.0) -> dict:
    result = asyncio.run(_run(wd, streams, calls, rate))
    result["write_cost"] = _write_cost(min(streams, 1000))
    return result
