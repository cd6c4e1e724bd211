"""The AMI Originate of one click-to-call, and the dialplan variable contract it carries.

The extension's channel is originated into the tenant's context at extension = the
normalized phone, priority 1. The dialplan reads these channel variables (README,
"Dialplan contract"): C2C_CALL_ID, C2C_EXT, C2C_PHONE, C2C_HOTLINE, C2C_TRUNK,
C2C_DEST_CID_NAME, C2C_DEST_CID_NUMBER, C2C_DIAL_TIMEOUT, and C2C_CUSTOMER_ID when the
request named a customer.

Every value comes validated (request parameters by ``api/schemas.py``, the rest from the
config, checked at start), so none holds a comma, quote or control character; the AMI client
re-checks at the socket.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..auto_answer import Bundle, header_variables, is_chan_sip


@dataclass(frozen=True)
class Originate:
    """Everything one Originate says, resolved (no defaults left to apply)."""
    call_id: str
    device: str                 # the extension's dial string, e.g. PJSIP/101
    context: str
    ext: str
    phone: str                  # digits only: also the dialplan extension
    hotline: str
    trunk: str
    caller_id_name: str         # shown on the extension's phone
    caller_id_number: str
    dest_cid_name: str          # sent to the called number
    dest_cid_number: str
    ring_timeout: float         # seconds the extension may ring
    dial_timeout: float         # seconds the number may ring (the dialplan's Dial timeout)
    auto_answer_headers: Bundle = ()            # in order, repeats kept; empty: no auto-answer
    customer_id: str | None = None                          # None: no C2C_CUSTOMER_ID

    def action(self) -> dict[str, object]:
        """``Async: true`` always (without it panoramisk hangs or Asterisk blocks the session);
        ActionID = ChannelId = call_id so every event of the call can be routed back."""
        return {
            "Action": "Originate",
            "ActionID": self.call_id,
            "ChannelId": self.call_id,
            "Channel": self.device,
            "Context": self.context,
            "Exten": self.phone,
            "Priority": "1",
            "Timeout": str(int(self.ring_timeout * 1000)),
            "CallerID": caller_id(self.caller_id_name, self.caller_id_number),
            "Async": "true",
            "Variable": [f"{name}={value}" for name, value in self.channel_variables()],
        }

    def channel_variables(self) -> list[tuple[str, str]]:
        """In the order Asterisk applies them; a list, since an auto-answer header may repeat."""
        variables = {
            "C2C_CALL_ID": self.call_id,
            "C2C_EXT": self.ext,
            "C2C_PHONE": self.phone,
            "C2C_HOTLINE": self.hotline,
            "C2C_TRUNK": self.trunk,
            "C2C_DEST_CID_NAME": self.dest_cid_name,
            "C2C_DEST_CID_NUMBER": self.dest_cid_number,
            "C2C_DIAL_TIMEOUT": str(int(self.dial_timeout)),
        }
        if self.customer_id is not None:
            variables["C2C_CUSTOMER_ID"] = self.customer_id
        return [*variables.items(), *auto_answer_variables(self.device, self.auto_answer_headers)]


def caller_id(name: str, number: str) -> str:
    """``"name" <number>``: the name is validated to hold no quote, bracket or backslash."""
    return f'"{name}" <{number}>'


def auto_answer_variables(device: str, headers: Bundle) -> tuple[tuple[str, str], ...]:
    """Channel variables that add the auto-answer headers to the INVITE sent to the phone, in
    order: ``PJSIP_HEADER(add,…)`` for PJSIP, ``SIPADDHEADERnn`` for chan_sip (Asterisk ≤ 20)."""
    return header_variables(is_chan_sip(device), headers) if headers else ()
