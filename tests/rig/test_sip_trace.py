"""The sipp -trace_msg reader: only received messages, in order, retransmissions dropped.
Pure parsing: no rig needed."""

from c2c_rig import parse_name_addr, read_trace, uri_user

TRACE = """\
----------------------------------------------- 2026-01-02 10:00:00.100000
UDP message received [500] bytes :

INVITE sip:101@127.0.0.1:20061 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:20060;rport;branch=z9hG4bK1
From: "Shop \\"A\\" Hotline" <sip:02873001234@127.0.0.1>;tag=abc
To: <sip:101@127.0.0.1>
Call-ID: call-1
CSeq: 100 INVITE
Call-Info: <sip:127.0.0.1>;answer-after=0
Call-Info: <http://example.com/x>;purpose=icon
Subject: folded
 header
Content-Length: 4

v=0

----------------------------------------------- 2026-01-02 10:00:00.100500
UDP message sent (300 bytes):

SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:20060;rport;branch=z9hG4bK1
Call-ID: call-1
CSeq: 100 INVITE


----------------------------------------------- 2026-01-02 10:00:00.600000
UDP message received [500] bytes :

INVITE sip:101@127.0.0.1:20061 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:20060;rport;branch=z9hG4bK1
From: "Shop \\"A\\" Hotline" <sip:02873001234@127.0.0.1>;tag=abc
To: <sip:101@127.0.0.1>
Call-ID: call-1
CSeq: 100 INVITE
Content-Length: 4

v=0

----------------------------------------------- 2026-01-02 10:00:01.000000
UDP message received [300] bytes :

CANCEL sip:101@127.0.0.1:20061 SIP/2.0
v: SIP/2.0/UDP 127.0.0.1:20060;rport;branch=z9hG4bK1
f: <sip:02873001234@127.0.0.1>;tag=abc
t: <sip:101@127.0.0.1>
i: call-1
CSeq: 100 CANCEL
Content-Length: 0

"""


def test_reads_received_messages_only_in_order(tmp_path):
    path = tmp_path / "answer.msg"
    path.write_text(TRACE)
    msgs = read_trace(str(path), "answer")
    assert [m.method for m in msgs] == ["INVITE", "CANCEL"]       # 180 was sent; retransmit dropped
    invite, cancel = msgs
    assert invite.index < cancel.index and invite.time < cancel.time
    assert invite.request_uri == "sip:101@127.0.0.1:20061" and invite.request_user == "101"
    assert invite.from_display_name == 'Shop "A" Hotline' and invite.from_user == "02873001234"
    assert invite.header("call-info") == "<sip:127.0.0.1>;answer-after=0"
    assert len(invite.headers_all("CALL-INFO")) == 2
    assert invite.header("Subject") == "folded header"
    assert invite.body.strip() == "v=0"
    assert cancel.call_id == "call-1" and cancel.to_user == "101"      # compact forms
    assert cancel.header("From").startswith("<sip:02873001234@")


def test_missing_trace_is_empty(tmp_path):
    assert read_trace(str(tmp_path / "none.msg")) == []


def test_name_addr_and_uri_user():
    assert parse_name_addr('Bob <sip:102@h>;tag=1') == ("Bob", "sip:102@h")
    assert parse_name_addr('sip:103@h;tag=1') == ("", "sip:103@h")
    assert uri_user("sip:127.0.0.1:5060") == ""
    assert uri_user("<sip:0909@h;user=phone>") == "0909"
