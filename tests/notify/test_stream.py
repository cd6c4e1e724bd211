"""The event stream's fan-out (``notify/stream.py``) on a real store: one read of the log per
instance for every stream, frames encoded once, a resume from the store, scoping, a slow
stream dropped without holding the others, and the wire format aiohttp-sse writes."""
import asyncio

import pytest
from aiohttp_sse import EventSourceResponse

from c2c_ami.notify.stream import Dropped, EventHub, frame
from c2c_ami.store import LogEvent, SqliteStorage


@pytest.fixture
async def store():
    s = SqliteStorage(":memory:")
    yield s
    await s.close()


@pytest.fixture
async def hub(store):
    h = EventHub(store, buffer=10)
    await h.start()
    yield h
    await h.close()


def event(n, ext="101", tenant="acme"):
    return LogEvent(tenant, "state", f'{{"n":{n}}}', ext, f"call-{n}")


class Client:
    """A stream's receiving end: the frames written to it, and a way to wait for them."""

    def __init__(self, hub, sub, last_event_id=None, *, stall: asyncio.Event | None = None):
        self.received: list[bytes] = []
        self.changed = asyncio.Event()
        self.stall = stall
        self.task = asyncio.ensure_future(hub.run(sub, last_event_id, self.write))
        self.task.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def write(self, data: bytes) -> None:
        if self.stall is not None:
            await self.stall.wait()
        self.received.append(data)
        self.changed.set()

    @property
    def ids(self) -> list[int]:
        return [int(line[4:]) for chunk in self.received for line in chunk.decode().split("\r\n")
                if line.startswith("id: ")]

    async def until(self, count: int, timeout: float = 3.0) -> list[int]:
        async def wait():
            while len(self.ids) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)
        return self.ids


def test_a_frame_is_what_aiohttp_sse_sends():
    """The hub encodes each event once for all streams; the bytes are aiohttp-sse's own."""
    written = []
    response = EventSourceResponse()

    async def capture(data):
        written.append(data)
    response.write = capture        # type: ignore[method-assign]
    asyncio.run(response.send('{"call_id":"x","to_number":"0899"}', id="42", event="state"))
    assert written == [frame(42, "state", '{"call_id":"x","to_number":"0899"}')]


async def test_every_stream_gets_every_event_from_one_read(store, hub):
    reads = []
    read_events = store.read_events

    async def counted(cursors, limit):
        reads.append(dict(cursors))
        return await read_events(cursors, limit)
    store.read_events = counted
    subs = [await hub.subscribe("acme", None) for _ in range(50)]
    clients = [Client(hub, sub) for sub in subs]
    await store.log_events([event(1), event(2), event(3)])
    for client in clients:
        assert await client.until(3) == [1, 2, 3]
    assert len(reads) == 1 and reads[0] == {"acme": 0}
    assert hub.frames_read == 3 and hub.streams == 50
    for client, sub in zip(clients, subs, strict=True):
        client.task.cancel()
        hub.unsubscribe(sub)
    assert hub.streams == 0 and hub._feeds == {}


async def test_a_resume_reads_the_store_then_joins_the_ring(store, hub):
    await store.log_events([event(n) for n in range(1, 26)])        # more than the ring (10) holds
    client = Client(hub, await hub.subscribe("acme", None), "3")
    assert await client.until(22) == list(range(4, 26))
    await store.log_events([event(26)])
    assert (await client.until(23))[-1] == 26


async def test_an_extension_stream_skips_the_others(store, hub):
    scoped = Client(hub, await hub.subscribe("acme", "102"))
    everything = Client(hub, await hub.subscribe("acme", None))
    await store.log_events([event(1, "101"), event(2, "102"), event(3, "101"), event(4, "102")])
    assert await everything.until(4) == [1, 2, 3, 4]
    assert await scoped.until(2) == [2, 4]
    await store.log_events([event(n, "101") for n in range(5, 30)])     # 25 of others': past the ring
    await store.log_events([event(30, "102")])
    assert (await scoped.until(3))[-1] == 30                           # not dropped for others' traffic


async def test_a_slow_stream_is_dropped_and_holds_up_nobody(store, hub):
    stall = asyncio.Event()
    slow = Client(hub, await hub.subscribe("acme", None), stall=stall)
    fast = Client(hub, await hub.subscribe("acme", None))
    await store.log_events([event(1)])
    assert await fast.until(1) == [1]
    for n in range(2, 41, 3):                   # the slow one is stuck writing frame 1
        await store.log_events([event(n), event(n + 1), event(n + 2)])
    assert await fast.until(40) == list(range(1, 41))
    stall.set()
    with pytest.raises(Dropped):
        await asyncio.wait_for(slow.task, 3)
    assert slow.ids == [1] and hub.dropped == 1


async def test_a_missed_notification_is_read_by_the_poll(store, hub, monkeypatch):
    import c2c_ami.notify.stream as stream
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.1)
    client = Client(hub, await hub.subscribe("acme", None))
    hub._notified = lambda payload: None              # type: ignore[method-assign]
    store._listeners[stream.EVENTS_CHANNEL] = []      # the notification is lost
    await store.log_events([event(1)])
    assert await client.until(1, timeout=5) == [1]


async def test_closing_the_hub_ends_every_stream(store, hub):
    client = Client(hub, await hub.subscribe("acme", None))
    await asyncio.sleep(0)
    await hub.close()
    with pytest.raises(Dropped):
        await asyncio.wait_for(client.task, 2)
