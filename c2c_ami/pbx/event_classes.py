"""Which AMI events a session asks Asterisk for: the class mask, derived from the event names
the link's subscribers read.

Asterisk sends a session only the events whose class its user may read (``read =`` in
manager.conf) *and* its session asked for (``Events:`` in the Login action, or the ``Events``
action: no privilege needed). A click-to-call receives ~50 events with ``read = all`` where
the gateway reads a dozen; ``call,system`` drops the dialplan class (VarSet, Newexten: half of
them), Cdr, RTCP reports... whatever the shop's manager.conf says.

The mask is never a list kept here: it is ``call,system`` (``system`` for FullyBooted and
the agent monitor's ContactStatus/PeerStatus), plus the class of each event a subscriber reads
that Asterisk raises in another class. ``OTHER_CLASSES`` lists every event of Asterisk 16 and
22's own documentation (``core-en_US.xml``: ``managerEvent``/``class``) whose class is not
call or system; any other name is a call or system event.
"""
from __future__ import annotations

from collections.abc import Iterable

ALWAYS = ("call", "system")

_BY_CLASS: dict[str, tuple[str, ...]] = {
    "agent": ("AgentCalled", "AgentComplete", "AgentConnect", "AgentDump", "AgentLogin", "AgentLogoff",
              "AgentRingNoAnswer", "Agents", "AgentsComplete", "QueueCallerAbandon", "QueueCallerJoin",
              "QueueCallerLeave", "QueueEntry", "QueueMemberAdded", "QueueMemberPause", "QueueMemberPenalty",
              "QueueMemberRemoved", "QueueMemberRinginuse", "QueueMemberStatus", "QueueParams"),
    "agi": ("AGIExecEnd", "AGIExecStart", "AsyncAGIEnd", "AsyncAGIExec", "AsyncAGIStart"),
    "aoc": ("AOC-D", "AOC-E", "AOC-S"),
    "cdr": ("Cdr",),
    "cel": ("CEL",),
    "dialplan": ("HangupHandlerPop", "HangupHandlerPush", "HangupHandlerRun", "Newexten", "VarSet"),
    "dtmf": ("DTMFBegin", "DTMFEnd"),
    "reporting": ("ConfbridgeList", "ConfbridgeListRooms", "FAXSession", "FAXSessionsEntry", "FAXStats",
                  "MWIGet", "MWIGetComplete", "RTCPReceived", "RTCPSent"),
    "security": ("AuthMethodNotAllowed", "ChallengeResponseFailed", "ChallengeSent", "FailedACL",
                 "InvalidAccountID", "InvalidPassword", "InvalidTransport", "LoadAverageLimit", "MemoryLimit",
                 "RequestBadFormat", "RequestNotAllowed", "RequestNotSupported", "SessionLimit", "SuccessfulAuth",
                 "UnexpectedAddress"),
    "user": ("UserEvent", "VoicemailPasswordChange"),
}
OTHER_CLASSES: dict[str, str] = {name.lower(): cls for cls, names in _BY_CLASS.items() for name in names}


def event_mask(events: Iterable[str] | None) -> str:
    """The ``Events:`` mask for a session whose subscribers read ``events`` (None: every
    event, the mask ``on``)."""
    if events is None:
        return "on"
    classes = dict.fromkeys(ALWAYS)
    for name in events:
        other = OTHER_CLASSES.get(name.lower())
        if other is not None:
            classes[other] = None
    return ",".join(classes)
