"""The HTTP listener as the CLI runs it (``http_server.start``, not the test server): what a
client may hold of it (connections, slow heads and bodies, idle keep-alives, sizes), the
access log, and a client that hangs up mid-body."""
import asyncio
import logging
import socket

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, RATE_LIMITER
from c2c_ami.http_server import bind, start

from .fixtures_gateway import AUTH, TOKEN, gateway_config


@pytest.fixture
async def served(fake_ami):
    """Start the gateway on the fake AMI as ``serve`` does; returns (app, port)."""
    runners = []

    async def serve(**sections):
        config = gateway_config(fake_ami.port, **sections)
        app = create_app(config)
        [sock] = bind("127.0.0.1", 0, 16)
        listener = await start(app, [sock], config, 1.0, handle_signals=False)
        runners.append(listener)
        assert await app[AMI].wait_ready(3)
        return app, sock.getsockname()[1]
    yield serve
    for listener in runners:
        await listener.close()


def request(target="/healthz", *, method="GET", headers=(), body=b"", close=True, length=None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: gateway", *headers]
    if close:
        lines.append("Connection: close")
    if body or length is not None:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def connect(port):
    return await asyncio.open_connection("127.0.0.1", port)


async def answer(reader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a Content-Length: its status and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    length = next(int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length:"))
    return int(lines[0].split()[1]), await asyncio.wait_for(reader.readexactly(length), 5)


async def closed(reader) -> bool:
    """True once the server closed the connection (EOF), within a bounded wait."""
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_connections_beyond_the_cap_are_closed_at_once(served):
    _, port = await served(http={"max_connections": 2})
    kept = [await connect(port) for _ in range(2)]
    for reader, writer in kept:                 # both accepted and served (keep-alive)
        writer.write(request(close=False))
        assert (await answer(reader))[0] == 200
    reader, writer = await connect(port)
    assert await closed(reader)
    writer.close()
    reader, writer = kept[0]
    writer.write(request(close=False))
    assert (await answer(reader))[0] == 200    # the others are untouched
    for _, w in kept:
        w.close()
        await w.wait_closed()
    for _ in range(50):                         # their slots are free again
        reader, writer = await connect(port)
        writer.write(request())
        if (await reader.read()).startswith(b"HTTP/1.1 200"):
            break
        writer.close()
    else:
        raise AssertionError("a closed connection's slot was never freed")


async def test_a_request_head_trickling_in_is_cut_off(served):
    _, port = await served(http={"header_timeout": 0.3})
    reader, writer = await connect(port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gat")        # and nothing more
    assert await closed(reader)
    reader, writer = await connect(port)                          # a silent connection too
    assert await closed(reader)
    reader, writer = await connect(port)
    writer.write(request(close=False))
    assert (await answer(reader))[0] == 200                       # a whole head is served


async def test_a_body_not_received_within_body_timeout_is_400(served):
    _, port = await served(http={"body_timeout": 0.3})
    reader, writer = await connect(port)
    writer.write(request("/v1/event", method="POST", headers=[f"Authorization: Bearer {TOKEN}"],
                         body=b'{"url": ', length=100))
    status, body = await answer(reader)
    assert status == 400 and b'"body: not received within 0.3 s"' in body


async def test_an_idle_keepalive_connection_is_closed(served):
    _, port = await served(http={"keepalive_timeout": 0.3})
    reader, writer = await connect(port)
    writer.write(request(close=False))
    assert (await answer(reader))[0] == 200
    assert await closed(reader)


@pytest.mark.parametrize("http, data, status", [
    ({"client_max_size": 1000}, request("/v1/event", method="POST", headers=[f"Authorization: Bearer {TOKEN}"],
                                        body=b"x" * 2000), 413),
    ({"max_headers": 10}, request(headers=[f"X-{i}: y" for i in range(20)]), 400),
    ({"max_field_size": 100}, request(headers=["X-Big: " + "y" * 200]), 400),
    ({"max_line_size": 100}, request("/healthz?" + "a" * 200), 400),
])
async def test_request_sizes_are_bounded(served, caplog, http, data, status):
    """Refused by aiohttp itself; its log line is one line (log_filters.py), not a traceback."""
    caplog.set_level("DEBUG")
    _, port = await served(http=http)
    reader, writer = await connect(port)
    writer.write(data)
    assert (await asyncio.wait_for(reader.read(), 5)).split(b" ", 2)[1] == str(status).encode()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("access_query", [False, True])
async def test_the_access_log_shows_query_strings_only_when_asked(served, caplog, access_query):
    caplog.set_level("INFO", logger="aiohttp.access")
    _, port = await served(**({"log": {"access_query": True}} if access_query else {}))
    reader, writer = await connect(port)
    writer.write(request("/v1/cdr?phone=0899123456", headers=[f"Authorization: Bearer {TOKEN}"]))
    assert (await answer(reader))[0] == 200
    await closed(reader)              # the access line is written before the connection closes
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 1 and '"GET /v1/cdr' in lines[0] and " 200 " in lines[0]
    assert ("0899123456" in lines[0]) is access_query


async def test_a_client_gone_mid_body_is_one_info_line(served, caplog, monkeypatch):
    caplog.set_level("DEBUG")
    app, port = await served()
    logged, reading = asyncio.Event(), asyncio.Event()
    limiter = app[RATE_LIMITER]
    admit = limiter.admit

    async def admitted(scope, key):   # the handler's next step is reading the body
        await admit(scope, key)
        reading.set()
    monkeypatch.setattr(limiter, "admit", admitted)

    class Seen(logging.Handler):
        def emit(self, record):
            if record.name == "aiohttp.access" or record.exc_info or record.levelno >= logging.ERROR:
                logged.set()          # the request is over (or went wrong)
    seen = Seen()
    for name in ("aiohttp", "c2c_ami.api"):
        logging.getLogger(name).addHandler(seen)
    try:
        reader, writer = await connect(port)
        writer.write(request("/v1/event", method="POST", headers=[AUTH_HEADER], body=b'{"url": ', length=1000))
        await writer.drain()
        await asyncio.wait_for(reading.wait(), 5)
        writer.close()
        await asyncio.wait_for(logged.wait(), 5)
    finally:
        for name in ("aiohttp", "c2c_ami.api"):
            logging.getLogger(name).removeHandler(seen)
    mine = [r for r in caplog.records if r.name.startswith(("c2c_ami.api", "aiohttp"))]
    assert not [r for r in mine if r.exc_info or r.levelno >= logging.WARNING], mine
    assert [r.levelname for r in mine if "mid-body" in r.getMessage()] == ["INFO"]


AUTH_HEADER = f"Authorization: {AUTH['Authorization']}"


def test_a_host_name_is_listened_on_at_every_address_it_resolves_to():
    """``listen.host: localhost`` is 127.0.0.1 and ::1 where both exist, not whichever comes first."""
    [probe] = bind("127.0.0.1", 0, 1)
    port = probe.getsockname()[1]
    probe.close()
    socks = bind("localhost", port, 8)
    try:
        expected = {info[4][0] for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)}
        assert {sock.getsockname()[0] for sock in socks} == expected
        assert {sock.getsockname()[1] for sock in socks} == {port}
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("pieces", [
    [b"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n"],
    [b"GET /healthz HTTP/1.1\r\nHost: g\r\n", b"\r", b"\n"],        # the blank line in 1-byte pieces
    [b"GET /healthz HTTP/1.1\r\nHost: g\r", b"\n\r", b"\n"],
    [b"GET /healthz HTTP/1.1\r\nHost: g", b"\r", b"\n", b"\r", b"\n"],
])
async def test_the_end_of_a_head_is_seen_however_it_is_cut(pieces):
    """Else the head deadline would close a connection whose sync request is still waiting."""
    from c2c_ami.config import HttpConfig
    from c2c_ami.http_server import Connections, _Guard

    class Inner(asyncio.Protocol):
        def __init__(self):
            self.got = b""

        def data_received(self, data):
            self.got += data

    class Transport(asyncio.Transport):
        def close(self):
            raise AssertionError("closed")

    inner = Inner()
    guard = _Guard(inner, Connections(HttpConfig()))
    guard.connection_made(Transport())
    for piece in pieces[:-1]:
        guard.data_received(piece)
        assert not guard._in_request
    guard.data_received(pieces[-1])
    assert guard._in_request and guard._deadline is None and inner.got == b"".join(pieces)
    guard.connection_lost(None)
