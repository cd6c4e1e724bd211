"""The recent AMI events of calls this instance does not track -- another instance's, on a
shared PBX -- kept a short while, so that whoever adopts such a call (its owner died) can
replay what happened to it meanwhile, with the times it happened.

Only what the call translator reads is kept, only for click-to-call ids (UUIDs), for
``keep_seconds`` and at most ``max_events`` events: memory stays bounded whatever the PBX does.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping

Event = dict[str, str]

# Every header pbx/events.py reads.
_KEEP = ("Event", "Uniqueid", "Linkedid", "Channel", "ChannelStateDesc", "DestUniqueid", "DestLinkedid",
         "DialStatus", "Response", "Reason", "ActionID", "Cause", "Cause-txt", "SpyerUniqueid", "SpyeeLinkedid")


def looks_like_call_id(key: str) -> bool:
    """Our call_ids are UUIDs; Asterisk's own Uniqueids look like 1700000000.42."""
    return len(key) == 36 and key[8] == key[13] == key[18] == key[23] == "-"


class EventJournal:
    def __init__(self, keep_seconds: float, max_events: int = 100_000) -> None:
        self.keep_seconds = keep_seconds
        self.max_events = max_events
        self._by_call: dict[str, list[tuple[float, Event]]] = {}
        self._order: deque[tuple[float, str]] = deque()   # (at, call_id), oldest first

    def __len__(self) -> int:
        return len(self._order)

    def add(self, call_id: str, at: float, event: Mapping[str, str]) -> None:
        self._prune(at)
        kept = {key: event[key] for key in _KEEP if key in event}
        self._by_call.setdefault(call_id, []).append((at, kept))
        self._order.append((at, call_id))

    def take(self, call_id: str) -> list[tuple[float, Event]]:
        """The call's kept events, oldest first; they are forgotten here."""
        return self._by_call.pop(call_id, [])

    def _prune(self, now: float) -> None:
        horizon = now - self.keep_seconds
        while self._order and (self._order[0][0] < horizon or len(self._order) >= self.max_events):
            at, call_id = self._order.popleft()
            events = self._by_call.get(call_id)
            if events:
                events.pop(0)
                if not events:
                    del self._by_call[call_id]


