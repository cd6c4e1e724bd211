"""A fast AMI event parser for the hot path (events); responses stay panoramisk's.

Pure parsing: which block goes where is decided by the protocol (``pbx/protocol.py``).

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
"""
from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import unquote

__all__ = ["AmiEvent", "parse_event", "parse_event_fast"]

_MISSING = object()
_has = dict.__contains__


class AmiEvent(dict):
    """An event's headers, case-sensitive first (one dict lookup), case-insensitive after."""

    __slots__ = ("_lower",)
    _lower: dict[str, str]

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
        with contextlib.suppress(AttributeError):
            del self._lower

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
