"""Item 2: N concurrent GET /v1/click2call requests waiting on their extensions, then answered.

The gateway runs as its own process; this process runs the fake AMI (in-process
``FakeAmiServer``: extensions ring for an hour) *and* the HTTP clients, so the moment an
answer is written to the AMI socket and the moment its HTTP response arrives are read from
one clock (``time.perf_counter``). Once every call rings, the extensions are answered at a
fixed pace (``answer_rate``/s, random order): for each, ``Newstate Up`` + ``OriginateResponse
Success`` (what Asterisk sends when the phone picks up) in one write, its time recorded.
Reported: RSS of the gateway while all N wait (and its peak, VmHWM), answer->response
latency percentiles, non-200 answers. This process keeps its own garbage collector still while
it measures, so that only the gateway's pauses are counted.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import time

from c2c_ami.testing.fake_ami import Behaviour, FakeAmiServer

from .common import (
    TOKEN,
    Processes,
    cpu_seconds,
    cpu_used,
    free_port,
    gateway_yaml,
    percentile,
    raise_nofile,
    rss_mib,
    start_gateway,
    wait_ready,
)


class _Request(asyncio.Protocol):
    """One HTTP/1.1 GET on its own connection; records when the full response arrived."""

    def __init__(self, raw: bytes, done: asyncio.Future) -> None:
        self.raw, self.done = raw, done
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.raw)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0 or self.done.done():
            return
        head = bytes(self.buf[:head_end]).decode("latin-1").split("\r\n")
        length = next((int(h.split(":", 1)[1]) for h in head[1:] if h.lower().startswith("content-length:")), 0)
        body = bytes(self.buf[head_end + 4:])
        if len(body) < length:
            return
        self.done.set_result((now, int(head[0].split()[1]), body[:length]))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed before a full response: {exc}"))


def _answer_bytes(chan) -> bytes:
    """Newstate Up of the extension channel, then OriginateResponse Success (Reason 4)."""
    chan.state = 6
    cid = chan.uniqueid
    return (f"Event: Newstate\r\nPrivilege: call,all\r\n{chan.snapshot()}\r\n"
            f"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: {cid}\r\n"
            f"Response: Success\r\nChannel: {chan.name.rsplit('-', 1)[0]}\r\nContext: c2c-outbound\r\n"
            f"Exten: {chan.exten}\r\nApplication: \r\nData: \r\nReason: 4\r\nUniqueid: {cid}\r\n"
            f"CallerIDNum: {chan.cid_num}\r\nCallerIDName: {chan.cid_name}\r\n\r\n").encode()


async def _run(workdir: str, n: int, answer_rate: float, connect_concurrency: int,
               timeout: float) -> dict:
    loop = asyncio.get_running_loop()
    result: dict = {"requests": n, "answer_rate_per_s": answer_rate}
    fake = FakeAmiServer(default_behaviour=Behaviour("answer", ring_delay=3600, dial="none",
                                                     talk_time=None),
                         default_device_state="NOT_INUSE")
    await fake.start()
    try:
        with Processes(workdir) as procs:
            http_port = free_port()
            config = gateway_yaml(os.path.join(workdir, "gateway-sync.yaml"), http_port, fake.port,
                                  ring_timeout=600, sync_timeout=900)
            gateway = start_gateway(procs, config, "INFO", name="gateway-sync")
            await asyncio.to_thread(wait_ready, http_port, 20, gateway)
            result["rss_idle_mib"] = rss_mib(gateway.pid)
            cpu0 = cpu_seconds(gateway.pid)
            sem = asyncio.Semaphore(connect_concurrency)
            futures: dict[int, asyncio.Future] = {}

            async def open_one(i: int) -> None:
                ext = f"{7000000 + i}"
                raw = (f"GET /v1/click2call?ext={ext}&phone=09{i:08d} HTTP/1.1\r\n"
                       f"Host: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode()
                futures[i] = fut = loop.create_future()
                async with sem:
                    try:
                        await asyncio.wait_for(loop.create_connection(
                            lambda: _Request(raw, fut), "127.0.0.1", http_port), 30)
                    except (TimeoutError, OSError) as exc:
                        if not fut.done():
                            fut.set_exception(ConnectionError(f"connect failed: {exc!r}"))

            started = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(n))), timeout)
            result["connect_seconds"] = round(time.perf_counter() - started, 2)
            # every request must be waiting: its Originate was sent and its phone rings
            with contextlib.suppress(TimeoutError):
                await fake.wait_for(lambda: len(fake.live_channels) >= n, timeout)
            early = [f for f in futures.values() if f.done()]
            result["pending_before_answer"] = len(fake.live_channels)
            result["answered_before_answer"] = len(early)   # must be 0
            result["all_pending_seconds"] = round(time.perf_counter() - started, 2)
            # let the gateway digest the set-up backlog (Ringing events, CDR writes) first:
            # answers are measured against an idle gateway holding N waiting requests
            result["settle_seconds"] = await _wait_idle(gateway.pid, timeout=60)
            result["rss_all_pending_mib"] = rss_mib(gateway.pid)
            result["gateway_cpu_seconds_to_pending"] = cpu_used(gateway.pid, cpu0)

            channels = list(fake.live_channels.values())
            random.Random(1).shuffle(channels)
            answered_at: dict[str, float] = {}
            # the instrument must not pause itself: a full collection over this process's
            # 10,000 client connections takes ~0.5 s and would be charged to the gateway
            gc.freeze()
            gc.disable()
            t0 = time.perf_counter()
            i = 0
            while i < len(channels):
                due = min(len(channels), int((time.perf_counter() - t0) * answer_rate) + 1)
                while i < due:
                    chan = channels[i]
                    data = _answer_bytes(chan)
                    answered_at[chan.uniqueid] = time.perf_counter()
                    fake.emit_event(data)
                    i += 1
                await asyncio.sleep(0.0005)
            result["answer_seconds"] = round(time.perf_counter() - t0, 2)
            done, pending = await asyncio.wait(futures.values(), timeout=timeout)
            gc.enable()
            gc.unfreeze()
            latencies: list[float] = []
            statuses: dict[int, int] = {}
            errors: dict[str, int] = {}
            for fut in done:
                if fut.exception() is not None:
                    errors[str(fut.exception())[:80]] = errors.get(str(fut.exception())[:80], 0) + 1
                    continue
                when, status, body = fut.result()
                statuses[status] = statuses.get(status, 0) + 1
                try:
                    call_id = json.loads(body).get("call_id")
                except ValueError:
                    call_id = None
                if status == 200 and call_id in answered_at:
                    latencies.append(when - answered_at[call_id])
            for fut in pending:
                fut.cancel()
            result["rss_peak_mib"] = rss_mib(gateway.pid, "VmHWM")
            result["statuses"] = statuses
            result["non_200"] = sum(v for k, v in statuses.items() if k != 200) + len(pending) + sum(errors.values())
            result["no_response"] = len(pending)
            result["errors"] = errors
            result["answer_to_response_ms"] = {
                "count": len(latencies),
                "p50": _ms(percentile(latencies, 50) if latencies else None),
                "p90": _ms(percentile(latencies, 90) if latencies else None),
                "p99": _ms(percentile(latencies, 99) if latencies else None),
                "max": _ms(max(latencies) if latencies else None)}
            procs.stop(gateway, timeout=10)
    finally:
        await fake.stop()
    return result


async def _wait_idle(pid: int, timeout: float, step: float = 0.25, idle_cpu: float = 0.02) -> float:
    """Wait (bounded) until the process uses < ``idle_cpu`` CPU seconds per ``step``."""
    started = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        await asyncio.sleep(step)
        now = cpu_seconds(pid)
        if now is None or last is None or now - last < idle_cpu:
            break
        last = now
    return round(time.monotonic() - started, 2)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def run(workdir: str, n: int = 10_000, answer_rate: float = 2000.0, connect_concurrency: int = 100,
        timeout: float = 120.0) -> dict:
    limit = raise_nofile()
    if limit < n + 200:
        raise RuntimeError(f"RLIMIT_NOFILE hard limit {limit} is too low for {n} connections")
    return asyncio.run(_run(workdir, n, answer_rate, connect_concurrency, timeout))


if __name__ == "__main__":
    import sys
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(run(d, int(sys.argv[1]) if len(sys.argv) > 1 else 10_000), indent=1))
