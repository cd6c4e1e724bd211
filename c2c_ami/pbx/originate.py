"""The AMI Originate of one click-to-call, and the dialplan variable contract it carries.

The extension's channel is originated into the tenant's context at extension = the
normalized phone, priority 1. The dialplan reads these channel variables
(docs/asterisk.md, "Dialplan contract"): C2C_CALL_ID, C2C_EXT, C2C_PHONE, C2C_HOTLINE,
C2C_TRUNK, C2C_DEST_CID_NAME, C2C_DEST_CID_NUMBER, C2C_DIAL_TIMEOUT, and C2C_CUSTOMER_ID
when the request named a customer.

Every value comes validated (request parameters by ``api/schemas.py``, the rest from the
config, checked at start), so none holds a comma, quote or control character; the AMI client
re-checks at the socket.
"""
from __future__ import annotations

import re

from ..auto_answer import Bundle, header_variables, is_chan_sip
from ..calls.pbx_port import LegRequest, Originate

# A channel name Asterisk gave (PJSIP/hotline-trunk-0000000a): it becomes an application's
# argument, where a comma would start another one.
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.@:+;-]{0,127}")
# ChanSpy's options per supervision mode: q quiet (no beep, no name), E exit when the spied
# channel hangs up, u the argument is a full channel name (ChanSpy otherwise matches a prefix:
# PJSIP/24 would also spy on PJSIP/240-...), w whisper to the spied channel, B barge (both).
SPY_OPTIONS = {"listen": "qEu", "whisper": "qEuw", "barge": "qEuB"}


class UnsafeChannel(ValueError):
    """A channel name that cannot be an application's argument (never seen from Asterisk)."""


def originate_action(originate: Originate) -> dict[str, object]:
    """``Async: true`` always (without it panoramisk hangs or Asterisk blocks the session);
    ActionID = ChannelId = call_id so every event of the call can be routed back."""
    return {
        "Action": "Originate",
        "ActionID": originate.call_id,
        "ChannelId": originate.call_id,
        "Channel": originate.device,
        "Context": originate.context,
        "Exten": originate.phone,
        "Priority": "1",
        "Timeout": str(int(originate.ring_timeout * 1000)),
        "CallerID": caller_id(originate.caller_id_name, originate.caller_id_number),
        "Async": "true",
        "Variable": [f"{name}={value}" for name, value in channel_variables(originate)],
    }


def channel_variables(originate: Originate) -> list[tuple[str, str]]:
    """In the order Asterisk applies them; a list, since an auto-answer header may repeat."""
    variables = {
        "C2C_CALL_ID": originate.call_id,
        "C2C_EXT": originate.ext,
        "C2C_PHONE": originate.phone,
        "C2C_HOTLINE": originate.hotline,
        "C2C_TRUNK": originate.trunk,
        "C2C_DEST_CID_NAME": originate.dest_cid_name,
        "C2C_DEST_CID_NUMBER": originate.dest_cid_number,
        "C2C_DIAL_TIMEOUT": str(int(originate.dial_timeout)),
    }
    if originate.customer_id is not None:
        variables["C2C_CUSTOMER_ID"] = originate.customer_id
    return [*variables.items(), *auto_answer_variables(originate.device, originate.auto_answer_headers)]


def connect_action(leg: LegRequest) -> dict[str, object]:
    """The target's leg, originated into the ``Bridge`` application: once it answers, the
    PBX moves ``leg.channel`` out of its bridge into one with the target (``x``: when the
    target hangs up, that channel is hung up, never sent into the dialplan)."""
    return _leg_action(leg, "Bridge", f"{_channel(leg.channel)},x")


def spy_action(leg: LegRequest, mode: str) -> dict[str, object]:
    """The supervisor's leg, originated into ``ChanSpy`` on the agent's full channel name."""
    return _leg_action(leg, "ChanSpy", f"{_channel(leg.channel)},{SPY_OPTIONS[mode]}")


def _leg_action(leg: LegRequest, application: str, data: str) -> dict[str, object]:
    action: dict[str, object] = {
        "Action": "Originate",
        "ActionID": leg.uniqueid,
        "ChannelId": leg.uniqueid,
        "Channel": leg.device,
        "Application": application,
        "Data": data,
        "Timeout": str(int(leg.ring_timeout * 1000)),
        "CallerID": caller_id(leg.caller_id_name, leg.caller_id_number),
        "Async": "true",
    }
    variables = auto_answer_variables(leg.device, leg.auto_answer_headers)
    if variables:
        action["Variable"] = [f"{name}={value}" for name, value in variables]
    return action


def _channel(name: str) -> str:
    if not _CHANNEL.fullmatch(name) or "," in name:
        raise UnsafeChannel(f"channel name {name!r} cannot be an application argument")
    return name


def caller_id(name: str, number: str) -> str:
    """``"name" <number>``: the name is validated to hold no quote, bracket or backslash."""
    return f'"{name}" <{number}>'


def auto_answer_variables(device: str, headers: Bundle) -> tuple[tuple[str, str], ...]:
    """Channel variables that add the auto-answer headers to the INVITE sent to the phone, in
    order: ``PJSIP_HEADER(add,…)`` for PJSIP, ``SIPADDHEADERnn`` for chan_sip (Asterisk ≤ 20)."""
    return header_variables(is_chan_sip(device), headers) if headers else ()
