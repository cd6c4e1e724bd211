"""The calls' own words for what happens to the legs of a click-to-call: which leg, why a leg
failed, and what call control added (transfers, parks, supervisors, recording masks).
``pbx/events.py`` translates Asterisk's events into these; the call record shows them."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class Leg(enum.Enum):
    """The two channels of a click-to-call."""
    EXTENSION = "extension"   # the agent's phone, originated by the gateway
    NUMBER = "number"         # the customer, dialed through the hotline trunk


class ExtLegFailure(enum.Enum):
    """Why the PBX could not connect the extension, as far as it said."""
    REJECTED = "rejected"               # the phone refused (486/603) or is busy
    NO_ANSWER = "no_answer"             # it rang for the whole ring timeout
    NO_RESPONSE = "no_response"         # registered, but it never even rang (no 180/183): dead
    NOT_REGISTERED = "not_registered"   # no phone to ring: no channel was ever created
    CONGESTION = "congestion"
    OTHER = "other"


# Why the number was not reached (also the call record's ``number_failure``).
NumberFailure = Literal["busy", "no_answer", "congestion", "unavailable", "cancelled"]


class Role(enum.Enum):
    """What a leg the gateway tracks is to the call: the two legs of the click-to-call, or one
    that a call-control action added or replaced."""
    AGENT = "agent"                 # whoever talks with the customer for the agent: first the
                                    # extension's leg, after a customer transfer the new one
    CUSTOMER = "customer"           # the number's leg (the trunk)
    TRANSFER = "transfer"           # a transfer target's leg, until it answers
    FORMER_AGENT = "former_agent"   # an agent leg that a transfer or park took out of the call
    SUPERVISOR = "supervisor"       # a supervisor's leg (listen, whisper, barge)


# ``legs`` of transfer and park, the carrier's words: aleg = the side that placed the call
# (the agent), bleg = the side that received it (the customer).
Legs = Literal["aleg", "bleg"]
# How a supervisor hears the call (ChanSpy): listen silently, speak to the agent only, to both.
SupervisionMode = Literal["listen", "whisper", "barge"]
# How a park ended: the waiting party was connected to a transfer target, waited out the park
# timeout (the PBX hung it up), or hung up itself.
ParkOutcome = Literal["transferred", "timed_out", "hung_up"]


@dataclass(slots=True)
class Transfer:
    """One transfer asked of a call: to ``ext``, moving ``legs``' other party (bleg: the
    customer goes to ``ext``; aleg: the agent does). ``answered`` is None while it rings."""
    ext: str
    legs: Legs
    time: float
    uniqueid: str                   # the target's leg (its Originate's ChannelId)
    device: str
    answered: bool | None = None
    channel: str | None = None
    from_park: bool = False         # it connects a parked party
    failure: str | None = None      # not answered: rejected, no_answer or unavailable
    reason: str | None = None       # the PBX's word (Originate Reason) while its Hangup is awaited
    cause: str | None = None        # the leg's Hangup cause while the Originate's Reason is awaited


@dataclass(slots=True)
class Park:
    """One park: ``legs`` is the party that waits (bleg: the customer, aleg: the agent)."""
    legs: Legs
    time: float
    channel: str                    # the waiting party's channel
    uniqueid: str
    outcome: ParkOutcome | None = None
    time_ended: float | None = None


@dataclass(slots=True)
class Supervision:
    """One supervisor on a call, from the moment the PBX says it spies (ChanSpyStart)."""
    ext: str
    mode: SupervisionMode
    uniqueid: str                   # the supervisor's leg
    device: str
    time: float                     # asked
    time_started: float | None = None
    time_ended: float | None = None


@dataclass(slots=True)
class Mask:
    """A span of the recording kept silent (card numbers): ``end`` None while it lasts."""
    start: float
    end: float | None = None


def to_facts(items: list[Any]) -> list[dict[str, Any]]:
    return [asdict(item) for item in items]


def from_facts(kind: type[T], items: list[dict[str, Any]] | None) -> list[T]:
    return [kind(**item) for item in items or ()]
