"""The calls' own words for what happens to the two legs of a click-to-call: which leg, and
why a leg failed. ``pbx/events.py`` translates Asterisk's events into these; the call record
shows them."""
from __future__ import annotations

import enum
from typing import Literal


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
