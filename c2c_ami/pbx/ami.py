"""The long-lived AMI link to one PBX, with panoramisk 1.4's sharp edges filed off.

panoramisk frames the protocol (``pbx/protocol.py`` adapts it); this module owns the link's
life, which panoramisk gets wrong:

* reconnects with exponential backoff, driven by one supervisor task, never by panoramisk's
  fixed timer (which also survives ``close()``);
* a refused login is logged as an error and retried slowly (panoramisk loops silently);
* a silent peer is detected by a Ping that must be answered within a deadline;
* actions are sent only while logged in (panoramisk queues them while disconnected and
  replays some after a reconnect: a second Originate) and every wait has a bound; a
  timed-out action is unregistered (panoramisk keeps it forever);
* in-flight actions fail at once when the connection drops (panoramisk never resolves them);
* nothing containing a control character is ever written to the socket (Asterisk splits
  headers on a bare LF, so one would let a caller add headers to an action).

It raises only its own errors (``AmiError`` and subclasses, which are the call service's
``PbxError`` and kin: ``calls/pbx_port.py``); what they mean for an API request is the call
service's business.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from panoramisk.actions import Action
from panoramisk.message import Message

from ..calls.pbx_port import PbxError, PbxLinkDown, PbxRefused, PbxTimeout
from ..config import AmiConfig
from ..waits import wait_set
from .event_classes import event_mask
from .parser import AmiEvent
from .protocol import AmiProtocol, AmiSession, EventHandler

log = logging.getLogger(__name__)

# Every action we send is "forgetable": panoramisk must never replay one after a reconnect.
_NEVER_REPLAY = ("login", "logoff", "ping", "originate", "getvar", "hangup", "status",
                 "command", "coreshowchannels", "devicestatelist", "sipshowpeer", "listcommands",
                 "showdialplan", "modulecheck", "setvar", "coresettings", "redirect", "mixmonitor",
                 "mixmonitormute", "events")
# Events the link itself reads: FullyBooted (ready), Shutdown (panoramisk closes the session).
_OWN_EVENTS = ("FullyBooted", "Shutdown")
EVERY_EVENT = "*"


# A refused login will not fix itself in seconds: retry slowly, and say so once per attempt.


class AmiState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    AUTH_FAILED = "auth_failed"
    READY = "ready"


class AmiError(PbxError):
    """An AMI action did not get a usable answer (the call service sees a ``PbxError``)."""


class AmiLinkDown(AmiError, PbxLinkDown):
    """The link is not logged in (``sent`` is False: nothing was written), or it dropped
    after the action was written and before its answer (``sent`` is True: Asterisk may or
    may not have acted on it)."""


class AmiTimeout(AmiError, PbxTimeout):
    """The link is up but the action went unanswered within its deadline."""


class AmiRefused(AmiError, PbxRefused):
    """Asterisk answered the action with an error (the message is Asterisk's)."""


class UnsafeAmiValue(ValueError):
    """A header would carry a control character: a bug upstream, refused at the socket."""


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_safe(headers: dict[str, Any]) -> None:
    """The last guard before the socket: no CR, LF, NUL, other C0/C1 controls or separators."""
    for key, value in headers.items():
        items = value if isinstance(value, (list, tuple)) else (value,)
        if _UNSAFE.search(key) or any(_UNSAFE.search(str(item)) for item in items):
            raise UnsafeAmiValue(f"refusing to send AMI header {key!r}: control character")


class AmiClient:
    """Owns the AMI link for the app's lifetime; ``send`` works only while ``ready``.

    Construct it, ``subscribe`` the event consumers, then ``start`` it. Asterisk is asked
    for the event classes the subscribers' events belong to (``event_classes.py``), and of
    what it sends, only the events a subscriber reads are parsed; the rest are counted and
    dropped unread (``protocol.py``)."""

    def __init__(self, config: AmiConfig, name: str = "default") -> None:
        self.config = config
        self.name = name          # the PBX's, for logs
        self._event_handlers: tuple[tuple[EventHandler, frozenset[str] | None], ...] = ()
        self._wanted: set[str] | None = set(_OWN_EVENTS)   # None: every event
        self._widening: set[asyncio.Task[None]] = set()
        self.state = AmiState.DISCONNECTED
        self.reconnects = 0
        self._events_before = 0       # events received by the sessions that ended
        self.last_error: str | None = None
        self._session: AmiSession | None = None
        self._inflight: set[asyncio.Future] = set()
        self._supervisor: asyncio.Task | None = None
        self._closing = False     # close() asked: the link's end is ours, not a fault
        self._booted: asyncio.Event = asyncio.Event()
        self.booted_seen = False      # FullyBooted came at the last login (the user reads system events)
        self._down_listeners: list[Callable[[], None]] = []
        self._ready_listeners: list[Callable[[], None]] = []
        self._state_listeners: list[Callable[[AmiState], None]] = []
        self._ready_event = asyncio.Event()
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state is AmiState.READY

    @property
    def events_received(self) -> int:
        """Events Asterisk sent since start (all sessions), kept or not: what the link costs."""
        session = self._session
        return self._events_before + (session.events_received if session is not None else 0)

    def subscribe(self, handler: EventHandler, events: Iterable[str] | str) -> None:
        """``handler`` gets the events named in ``events`` (exactly as Asterisk spells them;
        ``"*"``: every event), synchronously, in the order Asterisk sent them; it runs inside
        the socket read and must not block (it may spawn tasks). The names decide what the
        link asks Asterisk for and parses, and what reaches ``handler``."""
        if isinstance(events, str) and events != EVERY_EVENT:
            raise TypeError("events: an iterable of event names, or '*'")
        names = None if events == EVERY_EVENT else frozenset(events)
        self._event_handlers = (*self._event_handlers, (handler, names))
        if names is None or self._wanted is None:
            self._wanted = None
        else:
            self._wanted.update(names)
        session = self._session
        if session is not None:        # subscribed while connected: widen at once
            session.wanted = self.wanted_events
            if self.ready and session.events_mask != self.event_mask:
                session.events_mask = self.event_mask
                task = asyncio.get_running_loop().create_task(self._widen_mask(session.events_mask))
                self._widening.add(task)            # held until done (the loop keeps weak references)
                task.add_done_callback(self._widening.discard)

    @property
    def wanted_events(self) -> frozenset[str] | None:
        """The event names some subscriber reads (None: every event)."""
        return None if self._wanted is None else frozenset(self._wanted)

    @property
    def event_mask(self) -> str:
        """The event classes asked of Asterisk at login: those of the events read."""
        return event_mask(self._wanted)

    async def _widen_mask(self, mask: str) -> None:
        with contextlib.suppress(AmiError):
            await self.send({"Action": "Events", "EventMask": mask})

    def on_down(self, callback: Callable[[], None]) -> None:
        """Called (synchronously) each time a ready link is lost."""
        self._down_listeners.append(callback)

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Called (synchronously) each time the link becomes ready: logged in, booted."""
        self._ready_listeners.append(callback)

    def on_state(self, callback: Callable[[AmiState], None]) -> None:
        self._state_listeners.append(callback)

    def start(self) -> None:
        self._closing = False
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="ami-supervisor")

    async def wait_ready(self, timeout: float) -> bool:
        return await wait_set(self._ready_event, timeout)

    async def close(self) -> None:
        """Log off (bounded) and stop reconnecting."""
        if self._supervisor is None:
            return
        self._closing = True
        if self.ready:
            with contextlib.suppress(AmiError):
                await self.send({"Action": "Logoff"}, timeout=1.0)
        self._closing = True
        supervisor = self._supervisor
        while not supervisor.done():      # Python 3.11's wait_for can swallow a cancel: insist
            supervisor.cancel()
            await asyncio.wait({supervisor}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        self._supervisor = None

    # -- actions -----------------------------------------------------------------------------
    async def send(self, headers: dict[str, Any], timeout: float | None = None) -> Message:
        """Send one action and return its response (whatever its ``Response``); raise
        AmiLinkDown if the link is not ready or drops before the answer, AmiTimeout if it is
        unanswered within ``timeout``."""
        return await self._send(Action(dict(headers), as_list=False), timeout)

    async def send_list(self, headers: dict[str, Any], timeout: float | None = None) -> list[Message]:
        """Send a list action (``CoreShowChannels``) and return its events, up to and without
        the ``...Complete`` one; raise AmiRefused if Asterisk answers with an error."""
        reply = await self._send(_ListAction(dict(headers), as_list=True), timeout)
        if not isinstance(reply, list):
            raise AmiRefused(reply.get("Message", "") or "refused")
        return [m for m in reply[1:] if not str(m.get("Event", "")).endswith("Complete")]

    async def _send(self, action: Action, timeout: float | None) -> Any:
        check_safe(action)
        session = self._session
        if not self.ready or session is None or session.protocol is None:
            raise AmiLinkDown(f"PBX link is {self.state.value}", sent=False)
        future = session.send_action(action, as_list=action.as_list)
        self._inflight.add(future)
        limit = timeout or self.config.action_timeout
        try:
            async with asyncio.timeout(limit):      # cheaper than wait_for(shield(...)) on 3.11
                return await future
        except TimeoutError:
            self._forget(session, action)
            raise AmiTimeout(f"no answer to {action.get('Action')} within {limit:g} s") from None
        except asyncio.CancelledError:
            self._forget(session, action)
            raise
        finally:
            self._inflight.discard(future)

    @staticmethod
    def _forget(session: AmiSession, action: Action) -> None:
        """panoramisk keeps unanswered actions forever; drop ours and its future."""
        responses = getattr(session.protocol, "responses", {})
        responses.pop(action.id, None)
        if action.action_id:
            responses.pop(action.action_id, None)
        if not action.future.done():
            action.future.cancel()

    # -- supervision -------------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.config.reconnect_min
        while not self._closing:
            was_ready = False
            try:
                was_ready = await self._run_session()
            except asyncio.CancelledError:
                self._teardown("closed")
                raise
            except _LoginRefused as exc:
                self.last_error = str(exc)
                delay = self.config.auth_retry
                log.error("AMI login refused for user %r at %s:%s (%s); check ami.username and "
                          "ami.secret and manager.conf; retrying in %.0f s", self.config.username,
                          self.config.host, self.config.port, exc, delay)
                self._teardown(str(exc), AmiState.AUTH_FAILED)
            except (OSError, TimeoutError, AmiError, _LinkLost) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("AMI %s:%s unavailable: %s; retrying in %.1f s", self.config.host,
                            self.config.port, self.last_error, delay)
                self._teardown(self.last_error)
            else:
                self._teardown("connection lost")
            if was_ready:
                delay = self.config.reconnect_min
            self.reconnects += 1
            await asyncio.sleep(delay)
            if self.state is not AmiState.AUTH_FAILED:
                delay = min(max(delay * 2, self.config.reconnect_min), self.config.reconnect_max)

    async def _run_session(self) -> bool:
        """Connect, log in, serve until the link is lost; return whether it became ready."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._set_state(AmiState.CONNECTING)
        self._booted = asyncio.Event()
        mask = self.event_mask
        session = AmiSession(self._route, loop=loop, host=cfg.host, port=cfg.port,
                             username=cfg.username, secret=cfg.secret, events=mask,
                             encoding="utf-8", protocol_factory=AmiProtocol, ping_delay=10**6,
                             forgetable_actions=_NEVER_REPLAY, log=log)
        session.wanted, session.events_mask = self.wanted_events, mask
        self._session = session
        async with asyncio.timeout(cfg.connect_timeout):
            await session.connect()
        login = session.authenticated_future
        done, _ = await asyncio.wait({login, session.lost}, timeout=cfg.connect_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if login not in done:
            raise _LinkLost("connection closed during login") if session.lost in done \
                else TimeoutError("no answer to Login")
        response = login.result()
        if response.get("Response") != "Success":
            raise _LoginRefused(response.get("Message") or "login failed")
        try:
            async with asyncio.timeout(cfg.boot_wait):
                await self._booted.wait()
            self.booted_seen = True
        except TimeoutError:
            self.booted_seen = False
            log.warning("no FullyBooted event within %.1f s of login (does the AMI user have "
                        "read=system?); assuming Asterisk is booted", cfg.boot_wait)
        if session.lost.done():
            raise _LinkLost("connection lost after login")
        self.last_error = None
        self._set_state(AmiState.READY)
        log.info("PBX %s: AMI logged in to %s:%s as %r; events asked: %s; read: %s", self.name, cfg.host,
                 cfg.port, cfg.username, mask, "all" if session.wanted is None else ", ".join(sorted(session.wanted)))
        await self._watch(session)
        return True

    async def _watch(self, session: AmiSession) -> None:
        """Ping on a timer while connected; a Ping unanswered within its deadline means the
        peer is silent (TCP still open), so drop the link and reconnect."""
        cfg = self.config
        while True:
            done, _ = await asyncio.wait({session.lost}, timeout=cfg.ping_interval)
            if done:
                return
            started = time.monotonic()
            try:
                await self.send({"Action": "Ping"}, timeout=cfg.ping_timeout)
            except AmiLinkDown:
                return
            except AmiTimeout:
                log.error("AMI peer silent: no Ping reply within %.1f s; reconnecting", cfg.ping_timeout)
                raise _LinkLost("peer silent") from None
            log.debug("AMI ping %.1f ms", (time.monotonic() - started) * 1000)

    def _route(self, event: AmiEvent) -> None:
        name = event.get("Event")
        if name == "FullyBooted":
            self._booted.set()
        for handler, names in self._event_handlers:
            if names is None or name in names:
                handler(event)

    def _teardown(self, reason: str, state: AmiState = AmiState.DISCONNECTED) -> None:
        was_ready = self.ready
        session, self._session = self._session, None
        if session is not None:
            self._events_before += session.events_received
            session.close()
            if not session.lost.done():
                session.lost.set_result(None)
        for future in list(self._inflight):
            if not future.done():
                future.set_exception(AmiLinkDown(f"PBX link lost ({reason})", sent=True))
        self._inflight.clear()
        self._set_state(state)
        if was_ready:
            if self._closing:       # a clean stop (Logoff, then the socket closes): nothing is wrong
                log.info("PBX %s: AMI link to %s:%s closed", self.name, self.config.host, self.config.port)
            else:
                log.warning("PBX %s: AMI link to %s:%s lost (%s)", self.name, self.config.host, self.config.port,
                            reason)
            self._notify(self._down_listeners, "down")

    @staticmethod
    def _notify(listeners: list[Callable[[], None]], what: str) -> None:
        for callback in listeners:
            try:
                callback()
            except Exception:
                log.exception("AMI %s listener failed", what)

    def _set_state(self, state: AmiState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is AmiState.READY:
            self._ready_event.set()
        else:
            self._ready_event.clear()
        for callback in self._state_listeners:
            callback(state)
        if state is AmiState.READY:
            self._notify(self._ready_listeners, "ready")


class _ListAction(Action):
    """A list action's future resolves with every event up to ``...Complete`` -- or with
    the error response alone (panoramisk's would wait for events that never come)."""

    @property
    def multi(self) -> bool:
        return self.responses[0].get("Response") != "Error"


class _LoginRefused(Exception):
    pass


class _LinkLost(Exception):
    pass

