"""One AMI TCP session: panoramisk's framing and Manager, with the parts it gets wrong replaced.

* UTF-8 split across TCP reads is decoded correctly (panoramisk drops such characters);
* events take the fast parser (``pbx/parser.py``) straight to the session's handler, which
  can never raise into panoramisk (a raising callback would kill its connection); an event
  no subscriber reads (the session's ``wanted`` names) is counted and dropped unparsed;
* responses, events answering a pending action (an Originate's early ``OriginateResponse``,
  list actions' events) and ``Shutdown`` still go through panoramisk's ``Message`` and
  action futures;
* panoramisk's own reconnect timer and its pinger (which never reads the reply) are off: the
  client (``pbx/ami.py``) decides when to reconnect and checks Ping replies itself.
"""
from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Callable, Iterable
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

from .parser import AmiEvent, parse_event_fast

log = logging.getLogger("c2c_ami.pbx.ami")

EventHandler = Callable[[AmiEvent], None]


class AmiProtocol(AMIProtocol):
    """Splits the byte stream into blocks and sends each where it belongs."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def data_received(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        *blocks, self._pending = text.split("\r\n\r\n")
        self.dispatch_blocks(blocks)

    def dispatch_blocks(self, blocks: Iterable[str]) -> None:
        """Events straight to the session's ``dispatch`` as ``AmiEvent``; everything that
        completes a pending action, and ``Shutdown``, through panoramisk."""
        responses = self.responses
        factory = self.factory      # None until panoramisk's Manager adopts the protocol
        dispatch = factory.dispatch if factory is not None else None
        wanted = factory.wanted if factory is not None else None
        for block in blocks:
            block = block.strip()
            if dispatch is not None and block.startswith("Event: "):
                factory.events_received += 1
                if wanted is not None and _name_of(block) not in wanted and \
                        not (responses and "ActionID: " in block):
                    continue        # nobody reads it (nor does it answer a pending action)
                event = parse_event_fast(block)
                if not (_answers_pending_action(event, responses) or _is_shutdown(event)):
                    dispatch(event)
                    continue
            message = Message.from_line(block)
            if message is not None:
                self.handle_message(message)


def _name_of(block: str) -> str:
    """The event's name: its first line is ``Event: <name>``."""
    end = block.find("\r\n", 7)
    return block[7:] if end < 0 else block[7:end]


def _answers_pending_action(event: AmiEvent, responses: dict[str, Any]) -> bool:
    if not responses:
        return False
    pending = dict.get(event, "CommandID") or dict.get(event, "ActionID")
    return pending is not None and (pending in responses or event.get("ActionID") in responses)


def _is_shutdown(event: AmiEvent) -> bool:
    name = dict.get(event, "Event")
    return isinstance(name, str) and name.lower() == "shutdown"


class AmiSession(Manager):
    """One TCP session; ``lost`` resolves when it ends, for whatever reason."""

    pinger: asyncio.TimerHandle | None

    def __init__(self, on_event: EventHandler, **config: Any) -> None:
        super().__init__(**config)
        self.lost: asyncio.Future[Any] = self.loop.create_future()
        self._on_event = on_event
        self.events_received = 0      # every event block Asterisk sent this session
        self.wanted: frozenset[str] | None = None    # the events parsed and dispatched (None: all)
        self.events_mask = "on"       # the event classes asked at login

    def connection_made(self, f: asyncio.Future) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the client sees the error and backs off; no panoramisk retry timer
        super().connection_made(f)

    def ping(self) -> None:  # panoramisk's pinger never reads the reply
        pass

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        if not self.lost.done():
            self.lost.set_result(exc)

    def dispatch(self, event: AmiEvent) -> list[str]:
        try:
            self._on_event(event)
        except Exception:  # a raising callback would kill panoramisk's connection
            log.exception("AMI event handler failed on %s", event.get("Event"))
        return []
