"""The AMI Originate for one click-to-call, and the dialplan variable contract it carries.

The extension's channel is originated into the tenant's context at extension = the
normalized phone, priority 1. The dialplan reads these channel variables (README,
"Dialplan contract"): C2C_CALL_ID, C2C_EXT, C2C_PHONE, C2C_HOTLINE, C2C_TRUNK,
C2C_DEST_CID_NAME, C2C_DEST_CID_NUMBER, C2C_DIAL_TIMEOUT.

All values come from ``schemas`` (validated) or the config (validated at start), so none
holds a comma, quote or control character; ``ami.check_safe`` re-checks at the socket.
"""
from __future__ import annotations

from .calls import Call
from .config import CallsConfig, Tenant
from .schemas import ClickToCallRequest


def caller_id(name: str, number: str) -> str:
    """``"name" <number>``: the name is validated to hold no quote, bracket or backslash."""
    return f'"{name}" <{number}>'


def channel_variables(call: Call, request: ClickToCallRequest, calls: CallsConfig) -> list[str]:
    dest_number = request.dest_cid_number or call.hotline
    variables = {
        "C2C_CALL_ID": call.call_id,
        "C2C_EXT": call.ext,
        "C2C_PHONE": call.phone,
        "C2C_HOTLINE": call.hotline,
        "C2C_TRUNK": call.trunk,
        "C2C_DEST_CID_NAME": request.dest_cid_name or dest_number,
        "C2C_DEST_CID_NUMBER": dest_number,
        "C2C_DIAL_TIMEOUT": str(int(calls.dial_timeout)),
    }
    if request.auto_answer:
        variables.update(auto_answer_variables(call.device, calls.auto_answer_headers))
    return [f"{name}={value}" for name, value in variables.items()]


def auto_answer_variables(device: str, headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Channel variables that add the auto-answer headers to the INVITE sent to the phone:
    ``PJSIP_HEADER(add,…)`` for PJSIP, ``SIPADDHEADERnn`` for chan_sip (Asterisk ≤ 20)."""
    if device.upper().startswith("SIP/"):
        return {f"SIPADDHEADER{n:02d}": f"{name}: {value}" for n, (name, value) in enumerate(headers, 1)}
    return {f"PJSIP_HEADER(add,{name})": value for name, value in headers}


def originate_action(call: Call, request: ClickToCallRequest, tenant: Tenant,
                     calls: CallsConfig) -> dict[str, object]:
    """``Async: true`` always (without it panoramisk hangs or Asterisk blocks the session);
    ActionID = ChannelId = call_id so every event of the call can be routed back."""
    return {
        "Action": "Originate",
        "ActionID": call.call_id,
        "ChannelId": call.call_id,
        "Channel": call.device,
        "Context": tenant.context,
        "Exten": call.phone,
        "Priority": "1",
        "Timeout": str(int(calls.ring_timeout * 1000)),
        "CallerID": caller_id(request.src_cid_name, request.src_cid_number or call.ext),
        "Async": "true",
        "Variable": channel_variables(call, request, calls),
    }
