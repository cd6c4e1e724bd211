"""The panoramisk 1.4 internals ``c2c_ami/pbx/`` relies on (the reason ``setup.cfg`` pins it
exactly): each one named, so an upgrade that drops one fails here, saying which, instead of
somewhere in the AMI link."""
import asyncio
import inspect

import pytest
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

RELIED_ON = [
    # (object, attribute, what c2c_ami/pbx does with it)
    (AMIProtocol, "connection_made", "AmiProtocol extends it (sets up UTF-8 decoding)"),
    (AMIProtocol, "data_received", "AmiProtocol replaces it (framing, split UTF-8)"),
    (AMIProtocol, "handle_message", "AmiProtocol hands responses and pending actions' events to it"),
    (Manager, "connection_made", "AmiSession overrides it (no retry timer on a failed connect)"),
    (Manager, "connection_lost", "AmiSession overrides it (resolves `lost`, no reconnect timer)"),
    (Manager, "ping", "AmiSession disables it (panoramisk never reads the reply)"),
    (Manager, "dispatch", "AmiSession overrides it (events to the client; never raises)"),
    (Manager, "send_action", "AmiClient sends every action through it"),
    (Manager, "connect", "AmiClient connects with it"),
    (Manager, "close", "AmiClient closes with it"),
    (Action, "multi", "the list action (CoreShowChannels) overrides it"),
    (Message, "from_line", "responses are parsed with it"),
]


@pytest.mark.parametrize("owner, name, why", RELIED_ON, ids=[f"{o.__name__}.{n}" for o, n, _ in RELIED_ON])
def test_each_internal_relied_on_is_there(owner, name, why):
    assert hasattr(owner, name), (f"panoramisk: {owner.__name__}.{name} is gone, but {why}: "
                                  "see c2c_ami/pbx/ and the pin in setup.cfg")


def test_manager_takes_the_settings_the_client_passes():
    params = inspect.signature(Manager.__init__).parameters
    assert "config" in params or all(
        name in params for name in ("host", "port", "username", "secret", "protocol_factory",
                                    "forgetable_actions", "ping_delay", "events")), \
        "panoramisk's Manager no longer takes the settings AmiClient passes (c2c_ami/pbx/ami.py)"


async def test_a_protocol_keeps_pending_actions_in_responses_and_an_action_its_ids():
    """``AmiClient._forget`` drops an unanswered action from ``protocol.responses`` by
    ``action.id`` and ``action.action_id``; the fast path reads ``responses`` too."""
    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    assert isinstance(getattr(protocol, "responses", None), dict), \
        "AMIProtocol.responses (pending actions by id) is gone: AmiClient._forget and AmiProtocol rely on it"
    action = Action({"Action": "Ping"}, as_list=False)
    assert hasattr(action, "id") and hasattr(action, "action_id"), "Action.id / Action.action_id are gone"
    assert isinstance(action.future, asyncio.Future), \
        "Action.future is gone: AmiClient cancels an unanswered action's future"


class _Transport(asyncio.Transport):
    def write(self, data):
        pass

    def get_extra_info(self, name, default=None):
        return default
