"""c2c_ami.ami_parser: same headers as panoramisk's Message.from_line, and handle_blocks
routes events / responses / pending-action events like panoramisk's handle_message."""
import codecs

import pytest
from panoramisk.actions import Action
from panoramisk.message import Message

from c2c_ami.ami_parser import AmiEvent, handle_blocks, parse_event, parse_event_fast
from c2c_ami.fake_ami import FakeChannel

CHAN = FakeChannel("PJSIP/101-00000001", "c2c-1", "c2c-1", "c2c-outbound", "0899", state=5,
                   cid_num="101", cid_name="Zoë Ünïcode")
CORPUS = [
    f"Event: Newstate\r\nPrivilege: call,all\r\n{CHAN.snapshot()}",
    f"Event: DialBegin\r\nPrivilege: call,all\r\n{CHAN.snapshot()}{CHAN.snapshot('Dest')}DialString: 0899@trunk",
    "Event: Hangup\r\nPrivilege: call,all\r\nUniqueid: 1.2\r\nCause: 16\r\nCause-txt: Normal Clearing",
    "Event: OriginateResponse\r\nActionID: abc\r\nResponse: Success\r\nReason: 4\r\nUniqueid: abc",
    "Event: VarSet\r\nVariable: A\r\nValue: a: b: c\r\nValue: second\r\nValue: third",   # repeated
    "Event: X\r\nno separator line\r\nKey:nospace\r\nGood: yes\r\n: emptykey\r\nEmpty: ",
    "Event: AGIExec\r\nResult: 200%20result%3D1%20 \r\nResult: again%21",
    "Event: Weird\r\nresult: %41%42",
    "Event: Tabs\r\nKey: value\twith\ttabs \r\nColon:: x",
    "Event: Unicode\r\nName: 日本語 テスト\r\nEmoji: 😀",
]


def canonical(headers):
    return {k.lower(): v for k, v in headers.items()}


def headers_of(message):
    """panoramisk stores the (empty, for events) body as a ``content`` key: not a header."""
    return {k: v for k, v in message.items() if not (k == "content" and v == "")}


@pytest.mark.parametrize("block", CORPUS)
def test_same_headers_as_panoramisk(block):
    expected = headers_of(Message.from_line(block))
    for parse in (parse_event, parse_event_fast):
        event = parse(block)
        assert isinstance(event, AmiEvent)
        assert canonical(event) == canonical(expected), parse.__name__
        for key in expected:
            assert event.get(key) == expected[key]
            assert event.get(key.lower()) == expected[key]      # case-insensitive fallback
            assert event.get(key.upper()) == expected[key]
            assert key.upper() in event and event[key.upper()] == expected[key]


def test_exact_case_keys_and_missing():
    event = parse_event_fast(CORPUS[0])
    assert list(event)[:2] == ["Event", "Privilege"]
    assert event.get("Linkedid") == "c2c-1" and event.get("LINKEDID") == "c2c-1"
    assert event.get("DestLinkedid") is None and event.get("Nope", "d") == "d"
    assert "Nope" not in event
    with pytest.raises(KeyError):
        event["Nope"]
    event["NewKey"] = "v"              # mutation keeps the case-insensitive view right
    assert event.get("newkey") == "v"


def test_repeated_headers_become_lists():
    event = parse_event_fast(CORPUS[4])
    assert event["Value"] == ["a: b: c", "second", "third"]


def test_garbage_never_raises():
    for block in ["", "Event: ", "\x00\x01\x02", "Event: A\r\n\r\n\r\n", ":::", "Event: A\nB: c",
                  "Event: a\r\n" + "x" * 10000, "Event: A\r\nEvent: B"]:
        parse_event(block)
        parse_event_fast(block)


class _Factory:
    def __init__(self):
        self.events = []

    def dispatch(self, event):
        self.events.append(event)

    def connection_lost(self, exc):
        self.lost = exc


class _Proto:
    """The attributes handle_blocks uses, with panoramisk's own handle_message."""
    from panoramisk.ami_protocol import AMIProtocol
    handle_message = AMIProtocol.handle_message

    def __init__(self):
        self.responses = {}
        self.factory = _Factory()
        self.closed = False
        self.lost = []

    def connection_lost(self, exc):
        self.lost.append(exc)


async def test_routing_like_panoramisk():
    proto = _Proto()
    action = Action({"Action": "Originate", "ActionID": "abc", "Async": "true"}, as_list=False)
    proto.responses["abc"] = action
    getvar = Action({"Action": "Getvar", "ActionID": "gv"}, as_list=False)
    proto.responses["gv"] = getvar
    handle_blocks(proto, [
        "Asterisk Call Manager/7.0.0\r\n",                                       # banner: ignored
        "Response: Success\r\nActionID: gv\r\nVariable: X\r\nValue: NOT_INUSE",   # a response
        "Event: OriginateResponse\r\nActionID: abc\r\nResponse: Success",        # pending action's
        "Event: Newstate\r\nUniqueid: u1\r\nLinkedid: u1",                       # plain event
        "Event: Shutdown\r\nShutdown: Cleanly",                                  # closes
        "garbage without separator",
    ])
    assert getvar.future.done() and getvar.future.result()["Value"] == "NOT_INUSE"
    assert action.future.done() and action.future.result()["Event"] == "OriginateResponse"
    names = [e.get("Event") for e in proto.factory.events]
    assert names == ["Newstate", "Shutdown"]
    assert isinstance(proto.factory.events[0], AmiEvent)
    assert isinstance(proto.factory.events[1], Message) and proto.lost


async def test_split_utf8_with_gateway_decoder():
    """What _Protocol.data_received feeds it: an incremental decoder, so a character split
    across reads survives."""
    proto = _Proto()
    data = "Event: Newstate\r\nCallerIDName: Zoë 日本\r\nLinkedid: x\r\n\r\n".encode()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    for i in range(len(data)):                   # one byte per read
        text = pending + decoder.decode(data[i:i + 1])
        *blocks, pending = text.split("\r\n\r\n")
        handle_blocks(proto, blocks)
    assert [e["CallerIDName"] for e in proto.factory.events] == ["Zoë 日本"]


async def test_no_factory_yet_goes_through_panoramisk():
    proto = _Proto()
    proto.factory = None
    getvar = Action({"Action": "Login", "ActionID": "l1"}, as_list=False)
    proto.responses["l1"] = getvar
    handle_blocks(proto, ["Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted"])
    assert getvar.future.result()["Message"] == "Authentication accepted"
