"""Hostile input: every case gets INVALID_PARAMS naming the parameter, and nothing of it
reaches the AMI socket (the fake AMI records every byte it receives)."""
import pytest

from .fixtures_gateway import AUTH
from .hostile_corpus import cases

CASES = cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize("endpoint", ["/v1/click2call", "/v1/click2call/async"])
async def test_hostile_inputs_are_refused_and_nothing_reaches_ami(gateway, fake_ami, endpoint):
    before = bytes(fake_ami.received_bytes)
    for query, param in CASES:
        resp = await gateway.get(f"{endpoint}?{query}", headers=AUTH)
        body = await resp.json()
        assert (resp.status, body["error"]) == (400, "INVALID_PARAMS"), query
        assert body["message"].startswith(f"{param}:"), (query, body["message"])
    received = bytes(fake_ami.received_bytes)[len(before):]
    names = {a.name for a in fake_ami.received_actions}
    assert names <= {"Login", "Ping"}, names
    assert b"Originate" not in received and b"Getvar" not in received


async def test_every_byte_ami_received_is_clean(gateway, fake_ami):
    """Valid calls with unusual-but-legal values are all placed, and afterwards the AMI stream
    holds only CRLF line ends and printable text: no bare LF, lone CR, NUL or control byte."""
    legal = ["src_cid_name=Nguy%E1%BB%85n%20V%C4%83n%20A", "dest_cid_name=O%27Brien%20%40%20Shop",
             "phone=%2B84%20(899)%20098-899", "auto_answer=1&dest_cid_number=%2B842873001234"]
    for n, extra in enumerate(legal):
        query = f"ext=1{n:02d}&{extra}" if extra.startswith("phone=") else f"ext=1{n:02d}&phone=0899&{extra}"
        resp = await gateway.get(f"/v1/click2call/async?{query}", headers=AUTH)
        assert resp.status == 200, (query, await resp.json())
    assert len(fake_ami.actions_named("Originate")) == len(legal)
    data = bytes(fake_ami.received_bytes)
    stripped = data.replace(b"\r\n", b"")
    assert not [b for b in stripped if b < 0x20 or b == 0x7f], "control byte reached AMI"
