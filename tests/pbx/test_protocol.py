"""The AMI protocol routes blocks like panoramisk's handle_message: events to the session
(fast parser), responses and pending actions' events to their futures, Shutdown closes."""

from panoramisk.actions import Action
from panoramisk.message import Message

from c2c_ami.pbx import protocol as protocol_module
from c2c_ami.pbx.parser import AmiEvent
from c2c_ami.pbx.protocol import AmiProtocol


class _Transport:
    def write(self, data):
        pass

    def close(self):
        pass


class _Session:
    """What the protocol asks of its panoramisk Manager."""
    forgetable_actions = ("originate", "getvar")

    def __init__(self, wanted=None):
        self.events_received = 0
        self.wanted = wanted
        self.events = []
        self.lost = []
        self.awaiting_actions = []

    def dispatch(self, event):
        self.events.append(event)

    def connection_lost(self, exc):
        self.lost.append(exc)


def protocol(session=None):
    proto = AmiProtocol()
    proto.connection_made(_Transport())
    proto.factory = session
    return proto


async def test_routing_like_panoramisk():
    session = _Session()
    proto = protocol(session)
    action = Action({"Action": "Originate", "ActionID": "abc", "Async": "true"}, as_list=False)
    proto.responses["abc"] = action
    getvar = Action({"Action": "Getvar", "ActionID": "gv"}, as_list=False)
    proto.responses["gv"] = getvar
    proto.dispatch_blocks([
        "Asterisk Call Manager/7.0.0\r\n",                                       # banner: ignored
        "Response: Success\r\nActionID: gv\r\nVariable: X\r\nValue: NOT_INUSE",   # a response
        "Event: OriginateResponse\r\nActionID: abc\r\nResponse: Success",        # pending action's
        "Event: Newstate\r\nUniqueid: u1\r\nLinkedid: u1",                       # plain event
        "Event: Shutdown\r\nShutdown: Cleanly",                                  # closes
        "garbage without separator",
    ])
    assert getvar.future.done() and getvar.future.result()["Value"] == "NOT_INUSE"
    assert action.future.done() and action.future.result()["Event"] == "OriginateResponse"
    names = [e.get("Event") for e in session.events]
    assert names == ["Newstate", "Shutdown"]
    assert isinstance(session.events[0], AmiEvent)
    assert isinstance(session.events[1], Message) and session.lost


async def test_utf8_split_at_every_byte_survives():
    """One byte per read: the incremental decoder keeps every character."""
    session = _Session()
    proto = protocol(session)
    data = "Event: Newstate\r\nCallerIDName: Zoë 日本\r\nLinkedid: x\r\n\r\n".encode()
    for i in range(len(data)):
        proto.data_received(data[i:i + 1])
    assert [e["CallerIDName"] for e in session.events] == ["Zoë 日本"]


async def test_before_the_session_adopts_it_everything_goes_through_panoramisk():
    proto = protocol(None)
    login = Action({"Action": "Login", "ActionID": "l1"}, as_list=False)
    proto.responses["l1"] = login
    proto.dispatch_blocks(["Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted"])
    assert login.future.result()["Message"] == "Authentication accepted"


async def test_events_nobody_reads_are_counted_and_dropped_unparsed(monkeypatch):
    """Only the subscribers' events are parsed; a pending action's event always gets through."""
    session = _Session(wanted=frozenset({"Newstate", "Shutdown"}))
    proto = protocol(session)
    parsed = []
    real = protocol_module.parse_event_fast
    monkeypatch.setattr(protocol_module, "parse_event_fast", lambda block: parsed.append(block) or real(block))
    listing = Action({"Action": "CoreShowChannels", "ActionID": "list"}, as_list=True)
    proto.responses["list"] = listing
    proto.dispatch_blocks([
        "Event: VarSet\r\nUniqueid: u1\r\nVariable: X\r\nValue: 1",
        "Event: Newstate\r\nUniqueid: u1\r\nLinkedid: u1",
        "Event: NewstateX\r\nUniqueid: u1",
        "Event: DeviceStateChange\r\nDevice: PJSIP/101\r\nState: INUSE",
        "Event: CoreShowChannel\r\nActionID: list\r\nChannel: PJSIP/101-1",
        "Event: Newstate",
    ])
    assert session.events_received == 6
    assert [e.get("Event") for e in session.events] == ["Newstate", "Newstate"]
    assert len(parsed) == 3          # the two Newstates and the listing's event; nothing else
    assert listing.responses[-1]["Channel"] == "PJSIP/101-1"
