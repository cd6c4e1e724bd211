"""The HTTP listener as the CLI runs it (``http_server.start``, not the test server): what a
client may hold of it (connections, slow heads and bodies, idle keep-alives, sizes), the
access log, and a client that hangs up mid-body."""
import asyncio
import json
import logging
import resource
import socket
import sys
import time

import pytest

from c2c_ami.app import create_app
from c2c_ami.app_keys import AMI, RATE_LIMITER
from c2c_ami.http_server import CONNECTIONS, bind, start

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


async def connect(port, source="127.0.0.1"):
    """A connection from ``source`` (any 127.x.y.z is this host too: another client address)."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


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


async def test_one_address_gets_its_share_of_connections_and_no_more(served):
    app, port = await served(http={"max_connections_per_address": 3, "header_timeout": 60,
                                   "keepalive_timeout": 60})
    held = [await connect(port, "127.0.0.2") for _ in range(3)]
    for _, writer in held:
        writer.write(b"GET /healthz HTTP/1.1\r\n")          # a request line, and nothing more
    reader, writer = await connect(port, "127.0.0.2")
    assert await closed(reader)                                # its fourth
    assert app[CONNECTIONS].held_by("127.0.0.2") == 3
    reader, writer = await connect(port)                       # another address is served
    writer.write(request())
    assert (await answer(reader))[0] == 200
    held[0][1].write(b"Host: g\r\nConnection: close\r\n\r\n")   # and the held ones still are
    assert (await answer(held[0][0]))[0] == 200


async def test_at_the_cap_the_connections_never_answered_of_the_address_holding_most_are_shed_first(served):
    app, port = await served(http={"max_connections": 5, "max_connections_per_address": 5, "header_timeout": 60,
                                   "keepalive_timeout": 60})
    connections = app[CONNECTIONS]
    busy_reader, busy_writer = await connect(port, "127.0.0.2")   # a request in progress (its body)
    busy_writer.write(request("/v1/event", method="POST", headers=[AUTH_HEADER], body=b'{"url": ', length=100))
    async with asyncio.timeout(5):
        while not any(guard.in_request for guard in connections.open.values()):
            await asyncio.sleep(0.01)
    idle = [await connect(port, "127.0.0.2") for _ in range(2)]
    for reader, writer in idle:                                # answered once, idle (keep-alive)
        writer.write(request(close=False))
        assert (await answer(reader))[0] == 200
    fresh = [await connect(port, "127.0.0.2") for _ in range(2)]
    for _, writer in fresh:
        writer.write(b"GET /healthz HTTP/1.1\r\n")          # a request line, and nothing more
    async with asyncio.timeout(5):                             # all five accepted
        while connections.held_by("127.0.0.2") < 5:
            await asyncio.sleep(0.01)

    others = [await served_from(port), await served_from(port)]     # the two never answered are shed...
    for reader, _ in fresh:
        assert await closed(reader)
    others.append(await served_from(port))                          # ...then the oldest idle one
    assert await closed(idle[0][0])
    assert connections.held_by("127.0.0.2") == 2 and connections.held_by("127.0.0.1") == 3
    reader, _ = await connect(port)        # 127.0.0.1 now holds the most: its own next is refused
    assert await closed(reader)
    busy_writer.write(b"x" * 92)                                    # the request in progress was never shed
    assert (await answer(busy_reader))[0] == 400


async def test_a_connection_never_answered_is_shed_before_an_idle_one_of_a_bigger_holder(served):
    app, port = await served(http={"max_connections": 5, "max_connections_per_address": 5, "header_timeout": 60,
                                   "keepalive_timeout": 60})
    crm = [await served_from(port, "127.0.0.2") for _ in range(3)]          # answered, idle between requests
    silent = [await connect(port, "127.0.0.3") for _ in range(2)]          # never a whole request
    for _, writer in silent:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    connections = app[CONNECTIONS]
    async with asyncio.timeout(5):
        while len(connections.open) < 5:
            await asyncio.sleep(0.01)
    await served_from(port)                                                 # takes a silent one's place
    assert await closed(silent[0][0])
    assert connections.held_by("127.0.0.2") == 3 and connections.held_by("127.0.0.3") == 1
    reader, writer = crm[0]
    writer.write(request(close=False))                                     # the CRM's are all still there
    assert (await answer(reader))[0] == 200


async def served_from(port, source="127.0.0.1"):
    """A keep-alive connection from ``source`` that had one request answered."""
    reader, writer = await connect(port, source)
    writer.write(request(close=False))
    assert (await answer(reader))[0] == 200
    return reader, writer


FLOOD = """
import resource, socket, sys
port, source = int(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for line in sys.stdin:                      # one batch per line: its size
    for _ in range(int(line)):
        sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        sock.sendall(b"GET /readyz HTTP/1.1\\r\\n")     # a request line, and nothing more
        held.append(sock)
    print(len(held), flush=True)
"""


async def test_ten_thousand_connections_from_one_address_leave_another_served(served):
    """The issue's flood: 10,100 connections from 127.0.0.2 (another process: the attacker),
    each sending only a request line and held open (a client reopening them as their head
    deadline closes them holds as many: the deadlines are long here, so a slow machine does
    not close them either), on the default connection limits. A request from 127.0.0.1 is
    still answered."""
    flood = 10_100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= flood + 512, f"ulimit -Hn is {hard}: the flood needs more"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 12_000)), hard))
    app, port = await served(http={"header_timeout": 600, "keepalive_timeout": 600})    # held, however slow
    connections = app[CONNECTIONS]
    attacker = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOOD, str(port), "127.0.0.2",
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert attacker.stdin is not None and attacker.stdout is not None
    try:
        async with asyncio.timeout(120):
            for opened in range(100, flood + 100, 100):     # batches within the listen backlog (128)
                attacker.stdin.write(b"%d\n" % (min(opened, flood) - (opened - 100)))
                assert int(await attacker.stdout.readline()) == min(opened, flood)
                while len(connections.open) + connections.refused < min(opened, flood):
                    await asyncio.sleep(0.005)          # accepted by the gateway, not only queued by the kernel
        started = time.monotonic()
        reader, writer = await connect(port)
        writer.write(request("/readyz"))
        status, _ = await answer(reader)
        took = time.monotonic() - started
        print(f"\n127.0.0.1's /readyz beside {flood} connections from 127.0.0.2: {status} in {took * 1000:.1f} ms")
        assert status == 200
        assert connections.held_by("127.0.0.2") == 2500 and connections.refused == flood - 2500
    finally:
        attacker.kill()
        await attacker.wait()


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


CRM = "https://crm.example.com"


@pytest.mark.parametrize("http, data, status, message", [
    ({"client_max_size": 1000}, request("/v1/event", method="POST", headers=[f"Authorization: Bearer {TOKEN}"],
                                        body=b"y" * 2000), 413, "body: larger than 1000 bytes"),
    ({"max_headers": 10}, request(headers=[f"X-{i}: y" for i in range(20)]), 400,
     "request: more than 10 headers (http.max_headers)"),
    ({"max_field_size": 100}, request(headers=["X-Big: " + "y" * 200]), 400, "request: its line or a header is"),
    ({"max_line_size": 100}, request("/healthz?" + "y" * 200), 400, "request: its line or a header is"),
    ({}, request(headers=["X-Big: " + "y" * 9 * 1024]), 400, "request: its line or a header is too long"),
    ({}, b"GET /healthz HTTP/1.1\r\nHost: g\r\nBad Header\x01: y\r\n\r\n", 400, "request: "),
    ({}, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03yyyy\r\n\r\n", 400, "request: "),
])
@pytest.mark.parametrize("origin", [None, CRM])
async def test_what_aiohttp_refuses_itself_is_the_json_failure_body_with_cors(served, caplog, http, data, status,
                                                                              message, origin):
    """Refused by aiohttp itself (sizes, a head it cannot parse, a TLS hello): the API's
    failure body, never an echo of the request, with CORS headers for a listed origin; its
    log line is one line (log_filters.py), not a traceback."""
    caplog.set_level("DEBUG")
    _, port = await served(http=http, api={"cors_origins": [CRM]})
    if origin:
        head, _, rest = data.partition(b"\r\n")
        data = head + f"\r\nOrigin: {origin}".encode() + (b"\r\n" + rest if rest else b"")
    reader, writer = await connect(port)
    writer.write(data)
    status_got, headers, body = await whole_answer(reader)
    assert status_got == status
    answer = json.loads(body)
    assert answer["status"] == "fail" and answer["error"] == "INVALID_PARAMS", answer
    assert answer["message"].startswith(message), answer
    assert b"yyy" not in body and headers["content-type"].startswith("application/json")
    assert headers.get("access-control-allow-origin") == origin and headers["vary"] == "Origin"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_without_cors_origins_a_refused_head_has_no_cors_headers(served):
    _, port = await served()
    reader, writer = await connect(port)
    writer.write(request(headers=[f"Origin: {CRM}", "X-Big: " + "y" * 9 * 1024]))
    status, headers, body = await whole_answer(reader)
    assert status == 400 and json.loads(body)["error"] == "INVALID_PARAMS"
    assert "vary" not in headers and "access-control-allow-origin" not in headers


async def whole_answer(reader) -> tuple[int, dict[str, str], bytes]:
    """The answer of a connection the server closes: status, headers (lower-case names), body."""
    raw = await asyncio.wait_for(reader.read(), 5)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


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

        def get_extra_info(self, name, default=None):
            return ("192.0.2.1", 40000) if name == "peername" else default

    inner = Inner()
    guard = _Guard(lambda _: inner, Connections(HttpConfig()))
    guard.connection_made(Transport())
    for piece in pieces[:-1]:
        guard.data_received(piece)
        assert not guard._in_request
    guard.data_received(pieces[-1])
    assert guard._in_request and guard._deadline is None and inner.got == b"".join(pieces)
    guard.connection_lost(None)
