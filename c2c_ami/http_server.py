"""The HTTP listener: its port bound before anything else starts, and what a client may hold.

``bind`` runs first, so a port already in use ends the process at once with one line
naming it (not after the AMI login, nor never). ``serve`` is ``web.run_app`` on that socket,
built from aiohttp's public API only (``AppRunner``, its low-level ``runner.server``, which
is a protocol factory for ``loop.create_server``, as aiohttp's low-level server docs show),
plus the limits aiohttp lacks: at most ``http.max_connections_per_address`` open connections
from one client address and ``http.max_connections`` in all (when all are taken, connections
that have not had a request answered are shed first, from the address holding the most:
``Connections``), and a request head that must arrive within ``http.header_timeout`` of the
connection opening or of its first byte (a client trickling headers is cut off).
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

from .addresses import client_key
from .api.cors import mark
from .api.errors import malformed
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
ORIGIN_WINDOW = 512         # bytes of a head kept to find an Origin line cut between two pieces


class _Guard(asyncio.Protocol):
    """One connection: admitted (or not) by ``Connections``, aiohttp's handler inside, and the
    deadline of its request head. The head is over when its blank line has passed by (seen
    here, in the bytes: no per-request middleware frame, which costs ~1 KB for each of 10,000
    waiting requests); the request is over when its answer is prepared (``request_over``)."""

    __slots__ = ("_make_inner", "_inner", "_connections", "_transport", "_deadline", "_in_request", "_tail",
                 "address", "answered", "origin", "_head")

    def __init__(self, make_inner: Callable[[_Guard], asyncio.Protocol], connections: Connections) -> None:
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None     # None: not admitted
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False
        self._tail = b""                # the last bytes of a head still arriving
        self.address = ""               # the peer, as the limits count it (addresses.client_key)
        self.answered = False           # a request of this connection was answered: not shed first
        self.origin: str | None = None  # the Origin of the head arriving (CORS on a head aiohttp refuses)
        self._head = b""                # its last bytes, where an Origin line may be cut (CORS only)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.address = client_key(peer[0] if isinstance(peer, tuple) else str(peer or ""))
        if not self._connections.admit(self):
            transport.close()
            return
        self._inner = self._make_inner(self)
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._in_request:
            if self._deadline is None:
                self._arm()             # the first byte of the next request on this connection
            if self._connections.cors_origins:
                self._find_origin(data)
            if HEAD_END in self._tail + data[:len(HEAD_END) - 1] or HEAD_END in data:
                self.request_started()
            else:
                self._tail = (self._tail + data)[-(len(HEAD_END) - 1):]   # pieces may be 1 byte
        self._inner.data_received(data)

    def _find_origin(self, data: bytes) -> None:
        """The head's ``Origin``, read in the bytes (aiohttp has no headers to show for a head
        it refuses), so its refusal carries CORS headers for a listed origin. A line is sought
        in the head's last ``ORIGIN_WINDOW`` bytes, so one cut between pieces is found whole."""
        window = self._head + data
        at = window.lower().rfind(b"\norigin:")
        if at >= 0:
            end = window.find(b"\n", at + 1)
            if end >= 0:
                self.origin = window[at + 8:end].strip().decode("latin-1")
        self._head = window[-ORIGIN_WINDOW:]

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._inner is None:
            return
        self._connections.left(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def in_request(self) -> bool:
        return self._in_request

    def request_started(self) -> None:
        self._in_request = True
        self._tail = self._head = b""
        self._disarm()
        self._connections.busy(self)

    def request_done(self) -> None:
        self._in_request = False
        self.origin = None
        self.answered = True
        self._connections.idle(self)

    def shed(self) -> None:
        """Closed to make room (``Connections.admit``)."""
        self._disarm()
        if self._transport is not None:
            self._transport.close()

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


class _Address:
    """One client address's open connections, and which of them may be shed: those that
    have not had a request answered (``fresh``), then those idle between requests."""

    __slots__ = ("count", "fresh", "idle")

    def __init__(self) -> None:
        self.count = 0
        self.fresh: dict[_Guard, None] = {}     # oldest first
        self.idle: dict[_Guard, None] = {}


class Connections:
    """The open client connections: at most ``http.max_connections_per_address`` from one
    address (an IPv6 client by its /64) and ``http.max_connections`` in all. When all are
    taken, a new connection takes the place of one that has not had a request answered yet,
    from the address holding the most connections (only if there is none anywhere, of one idle
    between requests, likewise); a connection with a request in progress is never shed. Only
    if none can be shed, or the newcomer's own address holds the most, is the new one closed.
    So one address, however many connections it opens and reopens, never locks the others
    out. Finding the one to shed looks at each address: it is done only at the cap."""

    def __init__(self, limits: HttpConfig, cors_origins: frozenset[str] = frozenset()) -> None:
        self.limits = limits
        self.cors_origins = cors_origins      # api.cors_origins: a refused head's answer names them
        self.open: dict[asyncio.Transport, _Guard] = {}
        self._addresses: dict[str, _Address] = {}
        self.refused = 0                # closed at once: the address's share or the cap was full
        self.shed = 0                   # closed to make room for another address's connection

    def factory(self, make_handler: Callable[[_Guard], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def protocol() -> asyncio.Protocol:
            return _Guard(make_handler, self)
        return protocol

    def admit(self, guard: _Guard) -> bool:
        """Whether ``guard``'s new connection may stay (making room for it if it must)."""
        address = self._addresses.get(guard.address)
        held = address.count if address is not None else 0
        if held >= self.limits.max_connections_per_address:
            self._refuse(f"http.max_connections_per_address ({self.limits.max_connections_per_address}) "
                         f"reached by {guard.address}")
            return False
        if len(self.open) >= self.limits.max_connections:
            victim = self._victim(held)
            if victim is None:
                self._refuse(f"http.max_connections ({self.limits.max_connections}) reached, and none of "
                             "the connections of addresses holding more can be shed")
                return False
            self._forget(victim)
            victim.shed()
            self.shed += 1
            if self.shed == 1 or self.shed % 1000 == 0:
                log.warning("http.max_connections (%d) reached: shedding connections that have no request "
                            "in progress, from the address holding the most (%s; %d shed so far)",
                            self.limits.max_connections, victim.address, self.shed)
        if address is None:
            address = self._addresses[guard.address] = _Address()
        address.count += 1
        address.fresh[guard] = None
        assert guard.transport is not None
        self.open[guard.transport] = guard
        return True

    def _victim(self, newcomer_holds: int) -> _Guard | None:
        """A connection to shed: one never answered, from the address holding the most
        connections among those with one; only if there is none, one idle between requests,
        likewise; never from an address holding no more than the newcomer's."""
        for tier in ("fresh", "idle"):
            most, victim = newcomer_holds, None
            for address in self._addresses.values():
                waiting = address.fresh if tier == "fresh" else address.idle
                if waiting and address.count > most:
                    most, victim = address.count, next(iter(waiting))
            if victim is not None:
                return victim
        return None

    def _refuse(self, why: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("%s: closing new connections (%d so far)", why, self.refused)

    def busy(self, guard: _Guard) -> None:
        """A request of ``guard`` is in progress: it is not shed."""
        address = self._addresses.get(guard.address)
        if address is not None:
            address.fresh.pop(guard, None)
            address.idle.pop(guard, None)

    def idle(self, guard: _Guard) -> None:
        address = self._addresses.get(guard.address)
        if address is not None and guard.transport in self.open:
            address.idle[guard] = None

    def left(self, guard: _Guard) -> None:
        if guard.transport is not None and self.open.get(guard.transport) is guard:
            self._forget(guard)

    def _forget(self, guard: _Guard) -> None:
        assert guard.transport is not None
        del self.open[guard.transport]
        address = self._addresses[guard.address]
        address.count -= 1
        address.fresh.pop(guard, None)
        address.idle.pop(guard, None)
        if address.count == 0:
            del self._addresses[guard.address]

    def held_by(self, address: str) -> int:
        """How many connections ``address`` (a ``client_key``) holds."""
        known = self._addresses.get(address)
        return known.count if known is not None else 0

    def of(self, request: web.BaseRequest) -> _Guard | None:
        return self.open.get(request.transport) if request.transport is not None else None


CONNECTIONS = web.AppKey("connections", Connections)


async def request_over(request: web.Request, response: web.StreamResponse) -> None:
    """The answer is on its way: a next request on this connection gets a fresh deadline."""
    guard = request.app[CONNECTIONS].of(request)
    if guard is not None:
        guard.request_done()


class _Handler(web.RequestHandler):
    """aiohttp's handler of one connection, whose own answers (a request head it cannot parse
    or that is too long; an error no middleware answered) are the API's failure body, with
    CORS headers for a listed origin, never an echo of the request. aiohttp offers no public
    hook for those answers: this overrides ``RequestHandler.handle_error`` (a public method of
    an exported class, its behaviour undocumented), here and nowhere else;
    ``tests/test_aiohttp_internals.py`` names what it relies on."""

    __slots__ = ("_guard",)

    def __init__(self, manager: web.Server, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)     # its log line, and its checks
        connections = self._guard._connections
        answer = malformed(status, exc, connections.limits)
        if connections.cors_origins:                # as api/cors.py marks every other answer
            origin = self._guard.origin
            mark(answer.headers, origin if origin in connections.cors_origins else None)
        answer.force_close()
        return answer


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
    ``Connections`` and its handler a ``_Handler``."""
    access_log_class = QueryAccessLogger if config.log.access_query else AccessLogger
    runner = web.AppRunner(app, handle_signals=handle_signals, shutdown_timeout=shutdown_timeout,
                           access_log_class=access_log_class)
    await runner.setup()
    server = runner.server
    assert server is not None          # set by setup()
    loop = asyncio.get_running_loop()
    kwargs = {**handler_args(config.http), "access_log_class": access_log_class}
    factory = app[CONNECTIONS].factory(lambda guard: _Handler(server, guard, loop=loop, **kwargs))
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
    stop = asyncio.Event()
    serving = False

    async def main() -> None:
        nonlocal serving
        listener = await start(app, socks, config, shutdown_timeout)
        serving = True
        try:
            for name in listener.names:
                announce(f"======== Running on {name} ========")
            await stop.wait()
        finally:
            await listener.close()

    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        # The runner's cleanup first (drain, AMI logoff), told by an event, not a cancel: a
        # cancelled task's bounded waits (asyncio.timeout) could end in CancelledError and cut
        # the drain short, its waiting requests unanswered (a start still under way is cut)...
        if serving:
            stop.set()
        else:
            task.cancel()
        outcome = loop.run_until_complete(asyncio.gather(task, return_exceptions=True))[0]
        if isinstance(outcome, Exception):      # (a failed cleanup: said, never swallowed)
            log.error("the shutdown failed: %s", outcome, exc_info=outcome)
        rest = asyncio.all_tasks(loop)  # ...then whatever is left is cancelled
        for pending in rest:
            pending.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
