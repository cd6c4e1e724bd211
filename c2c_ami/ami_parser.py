"""A fast AMI event parser for the hot path (events), leaving responses to panoramisk.

panoramisk builds a case-insensitive ``Message`` per block (about 10 µs for a 400-byte
channel event); the gateway reads events only with ``.get("ExactName")``. Here an event
block becomes an ``AmiEvent``: a plain ``dict`` of the headers exactly as sent, whose
``get`` falls back to a case-insensitive lookup on a miss, so ``event.get("linkedid")``
still works like panoramisk's.

Same header rules as ``panoramisk.message.Message.from_line``: a line is ``Key: value``
split at the first ``": "``, lines without ``": "`` are skipped, a header repeated with the
same spelling becomes a list of its values in order, ``Result`` values are URL-unquoted and
stripped. (Differences, only for input Asterisk never sends: two spellings of one header,
e.g. ``Foo`` and ``foo``, stay two keys here, and a case-insensitive lookup finds the
first, where panoramisk keeps only the last.) ``AmiEvent`` is meant to be read, not
modified (``update``/``setdefault``/``pop`` would not refresh its case-folded index).

What must stay panoramisk's (``handle_blocks`` sends these through ``Message.from_line`` and
``protocol.handle_message``): responses (a block not starting with ``Event: ``), events
carrying the ActionID/CommandID of a pending action (e.g. an Originate's
``OriginateResponse`` before its ack, list actions' events), and ``Shutdown``.
"""
from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import unquote

from panoramisk.message import Message

__all__ = ["AmiEvent", "parse_event", "parse_event_fast", "handle_blocks"]

_MISSING = object()
_has = dict.__contains__


class AmiEvent(dict):
    """An event's headers, case-sensitive first (one dict lookup), case-insensitive after."""

    __slots__ = ("_lower",)

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is not _MISSING:
            return value
        return self._folded(key, default)

    def __missing__(self, key: str) -> Any:
        value = self._folded(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return isinstance(key, str) and self._folded(key, _MISSING) is not _MISSING

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._forget_folding()

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._forget_folding()

    def _forget_folding(self) -> None:
        try:
            del self._lower
        except AttributeError:
            pass

    def _folded(self, key: str, default: Any) -> Any:
        try:
            lower = self._lower
        except AttributeError:
            lower = self._lower = {}
            for k in self:
                lower.setdefault(k.lower(), k)   # first spelling wins (see the module doc)
        real = lower.get(key.lower()) if isinstance(key, str) else None
        return default if real is None else dict.__getitem__(self, real)

    @property
    def event(self) -> str:
        return self.get("Event", "")


def parse_event(block: str) -> AmiEvent:
    """Headers of one stripped block (no trailing blank line), as ``from_line`` reads them."""
    event = AmiEvent()
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key[:1] in "rR" and key.lower() == "result":
            value = unquote(value).strip()
        if _has(event, key):
            old = dict.__getitem__(event, key)
            if isinstance(old, list):
                old.append(value)
            else:
                dict.__setitem__(event, key, [old, value])
        else:
            dict.__setitem__(event, key, value)
    return event


def parse_event_fast(block: str) -> AmiEvent:
    """``parse_event`` for the common case (no repeated header, every line has ``": "``)."""
    lines = block.split("\r\n")
    try:
        event = AmiEvent(line.split(": ", 1) for line in lines)
    except ValueError:          # a line without ": " (or with nothing after the key)
        return parse_event(block)
    if len(event) != len(lines) or _maybe_result(block):
        return parse_event(block)   # repeated headers become lists; Result is unquoted
    return event


def _maybe_result(block: str) -> bool:
    """Could a header be named ``result`` in any case (then it must be unquoted)?
    Never a false negative; four substring searches are cheaper than one lower()."""
    return "lt: " in block or "LT: " in block or "Lt: " in block or "lT: " in block


def handle_blocks(protocol: Any, blocks: Iterable[str]) -> None:
    """Route the complete blocks of one read: events straight to ``protocol.factory.dispatch``
    as ``AmiEvent``; responses, events answering a pending action and ``Shutdown`` through
    panoramisk's ``Message``/``handle_message`` (action futures, close handling)."""
    responses = protocol.responses
    factory = protocol.factory      # None until panoramisk's Manager adopts the protocol
    dispatch = factory.dispatch if factory is not None else None
    for block in blocks:
        block = block.strip()
        if dispatch is not None and block.startswith("Event: "):
            event = parse_event_fast(block)
            if responses:
                pending = dict.get(event, "CommandID") or dict.get(event, "ActionID")
                if pending is not None and (pending in responses or event.get("ActionID") in responses):
                    event = None
            name = dict.get(event, "Event") if event is not None else None
            if event is not None and not (isinstance(name, str) and name.lower() == "shutdown"):
                dispatch(event)
                continue
        message = Message.from_line(block)
        if message is not None:
            protocol.handle_message(message)
