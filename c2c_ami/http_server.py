"""The HTTP listener: its port bound before anything else starts, and what a client may hold.

``bind`` runs first, so a port already in use ends the process at once with one line
naming it (not after the AMI login, nor never). ``serve`` is ``web.run_app`` on that socket,
built from aiohttp's public API only (``AppRunner``, its low-level ``runner.server``, which
is a protocol factory for ``loop.create_server``, as aiohttp's low-level server docs show),
plus two limits aiohttp lacks: at most ``http.max_connections`` open connections (more
are closed as they come), and a request head that must arrive within ``http.header_timeout``
of the connection opening or of its first byte (a client trickling headers is cut off).
The access log names the path without the query string (phone numbers) unless
``log.access_query`` says otherwise.
"""
from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .config import Config, HttpConfig

log = logging.getLogger("c2c_ami.http")


class ListenError(RuntimeError):
    """The HTTP port cannot be bound; the message names host:port."""


def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (``localhost``: 127.0.0.1
    and ::1, as ``web.run_app`` did), or ListenError naming host:port."""
    try:
        addresses = list(dict.fromkeys(
            (family, kind, proto, address) for family, kind, proto, _, address in
            socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)))
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, address in addresses:
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT, not a listener
            if family == socket.AF_INET6:          # "::" beside "0.0.0.0": each family its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in socks:
            sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return socks


HEAD_END = b"\r\n\r\n"


class _Guard(asyncio.Protocol):
    """One connection: aiohttp's handler inside, and the deadline of its request head. The
    head is over when its blank line has passed by (seen here, in the bytes: no per-request
    middleware frame, which costs ~1 KB for each of 10,000 waiting requests); the request is
    over when its answer is prepared (``request_over``)."""

    __slots__ = ("_inner", "_connections", "_transport", "_deadline", "_in_request", "_tail")

    def __init__(self, inner: asyncio.Protocol, connections: Connections) -> None:
        self._inner = inner
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False
        self._tail = b""                # the last bytes of a head still arriving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.open[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_request:
            if self._deadline is None:
                self._arm()             # the first byte of the next request on this connection
            if HEAD_END in self._tail + data[:len(HEAD_END) - 1] or HEAD_END in data:
                self.request_started()
            else:
                self._tail = (self._tail + data)[-(len(HEAD_END) - 1):]   # pieces may be 1 byte
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._connections.open.pop(self._transport, None)  # type: ignore[arg-type]
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        self._in_request = True
        self._tail = b""
        self._disarm()

    def request_done(self) -> None:
        self._in_request = False

    def _arm(self) -> None:
        self._disarm()
        timeout = self._connections.limits.header_timeout
        self._deadline = asyncio.get_running_loop().call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._in_request:
            log.info("closed a connection: no complete request head within %g s",
                     self._connections.limits.header_timeout)
            self._transport.close()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Connections:
    """The open client connections (the cap) and their head deadlines."""

    def __init__(self, limits: HttpConfig) -> None:
        self.limits = limits
        self.open: dict[asyncio.Transport, _Guard] = {}
        self.refused = 0

    def factory(self, server: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        def protocol() -> asyncio.Protocol:
            if len(self.open) >= self.limits.max_connections:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning("http.max_connections (%d) reached: closing new connections (%d so far)",
                                self.limits.max_connections, self.refused)
                return _Refused()
            return _Guard(server(), self)
        return protocol

    def of(self, request: web.BaseRequest) -> _Guard | None:
        return self.open.get(request.transport) if request.transport is not None else None


CONNECTIONS = web.AppKey("connections", Connections)


async def request_over(request: web.Request, response: web.StreamResponse) -> None:
    """The answer is on its way: a next request on this connection gets a fresh deadline."""
    guard = request.app[CONNECTIONS].of(request)
    if guard is not None:
        guard.request_done()


# ?token= (an EventSource's Bearer token, GET /v1/events/stream) is never logged, even with
# log.access_query
_TOKEN_IN_QUERY = re.compile(r"((?:^|&)token=)[^&]*")


class AccessLogger(AbstractAccessLogger):
    """``remote "METHOD /path HTTP/1.1" status bytes seconds``: no query string (it holds
    phone numbers) unless ``log.access_query``, and then without its ``token=``."""
    with_query = False

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        target = request.path
        if self.with_query and request.query_string:
            target += "?" + _TOKEN_IN_QUERY.sub(r"\1[redacted]", request.query_string)
        version = request.version
        self.logger.info('%s "%s %s HTTP/%d.%d" %d %d %.3fs', request.remote, request.method, target,
                         version.major, version.minor, response.status, response.body_length, time)


class QueryAccessLogger(AccessLogger):
    with_query = True


def handler_args(http: HttpConfig) -> dict[str, Any]:
    """aiohttp's own per-connection limits (``web.Application(handler_args=...)``)."""
    return {"max_line_size": http.max_line_size, "max_field_size": http.max_field_size,
            "max_headers": http.max_headers, "keepalive_timeout": http.keepalive_timeout}


class Listener:
    """The app's runner and the servers accepting on its sockets; ``close`` stops accepting,
    then lets the runner shut down (drain, app cleanup) as aiohttp's sites would."""

    def __init__(self, runner: web.AppRunner, servers: list[asyncio.Server]) -> None:
        self.runner = runner
        self.servers = servers

    @property
    def names(self) -> list[str]:
        """``http://host:port`` of each listening socket, as ``web.run_app`` announces them."""
        out = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
        return out

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        self.servers = []
        await self.runner.cleanup()


async def start(app: web.Application, socks: list[socket.socket], config: Config, shutdown_timeout: float,
                *, handle_signals: bool = True) -> Listener:
    """Set the app up (store, AMI links) and serve it on ``socks``, every connection through
    ``Connections``."""
    runner = web.AppRunner(app, handle_signals=handle_signals, shutdown_timeout=shutdown_timeout,
                           access_log_class=QueryAccessLogger if config.log.access_query else AccessLogger)
    await runner.setup()
    server = runner.server
    assert server is not None          # set by setup()
    loop = asyncio.get_running_loop()
    factory = app[CONNECTIONS].factory(server)
    servers = []
    try:
        for sock in socks:
            servers.append(await loop.create_server(factory, sock=sock, backlog=config.http.backlog))
    except BaseException:
        await Listener(runner, servers).close()
        raise
    return Listener(runner, servers)


def serve(app: web.Application, socks: list[socket.socket], config: Config, *, shutdown_timeout: float,
          announce: Callable[[str], None]) -> None:
    """``web.run_app`` on an already bound socket: runs until SIGINT or SIGTERM."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        listener = await start(app, socks, config, shutdown_timeout)
        try:
            for name in listener.names:
                announce(f"======== Running on {name} ========")
            await asyncio.Event().wait()
        finally:
            await listener.close()

    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        task.cancel()                   # the runner's cleanup first (drain, AMI logoff)...
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        rest = asyncio.all_tasks(loop)  # ...then whatever is left
        for pending in rest:
            pending.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
