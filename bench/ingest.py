"""Item 3: AMI events/s parsed and routed in-process, with N live calls in the registry.

The same bytes go through (a) ``panoramisk.message.Message.from_line`` alone, on blocks
already split; (b) the gateway's pipeline as it would be with panoramisk's parser for every
block: ``Message.from_line`` -> ``handle_message`` -> ``AmiSession.dispatch`` ->
``AmiClient._route`` -> ``CallEvents`` with a ``CallRegistry`` of N live calls; (c) the
gateway's own ``c2c_ami.pbx.protocol.AmiProtocol``, whose events take ``c2c_ami.pbx.parser``'s
fast path.
Half the events belong to live calls (half of those have a handler: Newstate, DialState; the
other half, Newexten and VarSet, are dropped before any lookup), half to other channels.
"""
from __future__ import annotations

import asyncio
import gc
import random
import time
from typing import Any

from panoramisk.message import Message

from c2c_ami.calls.call import Call
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.config import AmiConfig
from c2c_ami.pbx import AmiClient
from c2c_ami.pbx import parser as ami_parser
from c2c_ami.pbx.events import CallEvents
from c2c_ami.pbx.protocol import AmiProtocol, AmiSession
from c2c_ami.testing.fake_ami import FakeChannel

CHUNK = 65536   # bytes per data_received call (a full socket read under load)


def _ext_channel(call_id: str, n: int) -> FakeChannel:
    return FakeChannel(f"PJSIP/{n}-{n:08x}", call_id, call_id, "c2c-outbound", "0899098899",
                       state=5, cid_num=str(n), cid_name="Click2Call", conn_num=str(n),
                       conn_name="Click2Call")


def _trunk_channel(call_id: str, n: int) -> FakeChannel:
    return FakeChannel(f"PJSIP/hotline-trunk-{n:08x}", f"1700000001.{n}", call_id, "c2c-outbound",
                       "0899098899", state=5, cid_num="0899098899", conn_num=str(n))


def build_corpus(live_ids: list[str], events: int, seed: int = 7) -> tuple[bytes, int, int]:
    """~400-byte channel events, half about live calls (never ending them), half unrelated.
    Returns (bytes, event count, mean event size)."""
    rnd = random.Random(seed)
    parts = []
    for i in range(events):
        if i % 2 == 0:
            n = rnd.randrange(len(live_ids))
            cid = live_ids[n]
            kind = i // 2 % 4
            if kind == 0:   # the extension rings (state already there: idempotent)
                parts.append(f"Event: Newstate\r\nPrivilege: call,all\r\n{_ext_channel(cid, n).snapshot()}\r\n")
            elif kind == 1:  # dialplan progress: routed, no handler
                parts.append(f"Event: Newexten\r\nPrivilege: dialplan,all\r\n{_ext_channel(cid, n).snapshot()}"
                             "Extension: 0899098899\r\nApplication: Dial\r\n"
                             "AppData: PJSIP/0899098899@hotline-trunk,60\r\n\r\n")
            elif kind == 2:  # the trunk leg rings
                parts.append(f"Event: DialState\r\nPrivilege: call,all\r\n{_ext_channel(cid, n).snapshot()}"
                             f"{_trunk_channel(cid, n).snapshot('Dest')}DialStatus: RINGING\r\n\r\n")
            else:
                parts.append(f"Event: VarSet\r\nPrivilege: dialplan,all\r\n{_ext_channel(cid, n).snapshot()}"
                             f"Variable: C2C_PHONE\r\nValue: 0899098899\r\n\r\n")
        else:  # another channel on the PBX, not ours
            other = f"1600000000.{i}"
            chan = FakeChannel(f"PJSIP/9{i % 1000:03d}-{i:08x}", other, other, "from-internal", "s",
                               state=5, cid_num="0612345678", cid_name="Other")
            name = ("Newstate", "Newexten", "VarSet", "Hangup")[i // 2 % 4]
            parts.append(f"Event: {name}\r\nPrivilege: call,all\r\n{chan.snapshot()}\r\n")
    data = "".join(parts).encode()
    return data, events, len(data) // events


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class _NoActions:
    def hangup_later(self, call_id: str) -> None:
        pass

    def fetch_sip_call_id_later(self, call_id: str) -> None:
        pass

    def record_later(self, call_id: str) -> None:
        pass

    def hangup_channel_later(self, call_id: str, channel: str) -> None:
        pass


class _PanoramiskProtocol(AmiProtocol):
    """The baseline: every block through panoramisk's ``Message.from_line``."""

    def data_received(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        *blocks, self._pending = text.split("\r\n\r\n")
        for block in blocks:
            message = Message.from_line(block.strip())
            if message is not None:
                self.handle_message(message)


def _pipeline(registry: CallRegistry, protocol_cls: type) -> tuple[Any, CallEvents]:
    loop = asyncio.get_running_loop()
    router = CallEvents("default", registry, _NoActions())
    client = AmiClient(AmiConfig())
    client.subscribe(router, CallEvents.EVENTS)
    session = AmiSession(client._route, loop=loop, host="127.0.0.1", port=1, username="u",
                       secret="s", events="on", encoding="utf-8", protocol_factory=protocol_cls,
                       ping_delay=10**6)
    session.wanted = client.wanted_events      # as the gateway's link: unread events stay unparsed
    protocol = protocol_cls()
    protocol.connection_made(_NullTransport())
    protocol.factory = session
    protocol.encoding = "utf-8"
    session.protocol = protocol
    return protocol, router


def _time_feed(protocol: Any, chunks: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for chunk in chunks:
            protocol.data_received(chunk)
        best = min(best, time.perf_counter() - started)
    return best


def _time_parse_only(parse: Any, blocks: list[str], repeat: int) -> float:
    """Best time to parse every block with ``parse`` alone (no framing, no routing)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        for block in blocks:
            parse(block)
        best = min(best, time.perf_counter() - started)
    return best


async def _run(live_counts: list[int], events: int, repeat: int) -> dict:
    results: dict[str, Any] = {"events": events, "chunk_bytes": CHUNK, "repeat_best_of": repeat,
                               "by_live_calls": []}
    for live in live_counts:
        registry = CallRegistry()
        calls = [Call(tenant="bench", ext=str(100000 + n), device=f"PJSIP/{100000 + n}",
                      phone="0899098899", hotline="02873001234", trunk="hotline-trunk",
                      call_id=f"c2c-{n:06d}-{random.Random(n).getrandbits(64):016x}")
                 for n in range(live)]
        for call in calls:
            assert registry.claim(call)
        data, count, size = build_corpus([c.call_id for c in calls], events)
        chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        blocks = [b.strip() for b in data.decode().split("\r\n\r\n") if b.strip()]
        assert len(blocks) == count
        row: dict[str, Any] = {"live_calls": live, "event_bytes_mean": size}
        row["panoramisk_parse_only_eps"] = round(count / _time_parse_only(Message.from_line, blocks, repeat))
        protocol, router = _pipeline(registry, _PanoramiskProtocol)
        elapsed = _time_feed(protocol, chunks, repeat)
        assert router.events_routed == count // 4 * repeat, (router.events_routed, count, repeat)
        row["gateway_panoramisk_parser_eps"] = round(count / elapsed)
        row["fast_parse_only_eps"] = round(count / _time_parse_only(ami_parser.parse_event_fast, blocks, repeat))
        protocol, router = _pipeline(registry, AmiProtocol)
        elapsed = _time_feed(protocol, chunks, repeat)
        assert router.events_routed == count // 4 * repeat, (router.events_routed, count)
        row["gateway_eps"] = round(count / elapsed)
        assert len(registry) == live
        results["by_live_calls"].append(row)
    return results


def run(live_counts: list[int], events: int, repeat: int = 3) -> dict:
    return asyncio.run(_run(live_counts, events, repeat))


if __name__ == "__main__":
    import json
    print(json.dumps(run([100, 1000, 10000], 100_000), indent=1))
