"""The fast event parser reads the same headers as panoramisk's Message.from_line."""
import pytest
from panoramisk.message import Message

from c2c_ami.pbx.parser import AmiEvent, parse_event, parse_event_fast
from c2c_ami.testing.fake_ami import FakeChannel

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
