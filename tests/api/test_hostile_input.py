"""Hostile input: every case gets INVALID_PARAMS naming the parameter, and nothing of it
reaches the AMI socket (the fake AMI records every byte it receives)."""
import asyncio
import json
import logging

import pytest

from c2c_ami.app_keys import SERVICE
from tests.fixtures_gateway import AUTH
from tests.hostile_corpus import CDR_REPEATS, RAW_REQUESTS, cases

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


# ---- whole requests: bad headers and bodies are 400, never a 500 or a traceback ------------

async def send_raw(client, data: bytes, *, wait_answer: bool = True) -> tuple[int, dict]:
    """Send raw bytes to the test server; the status and JSON body of its answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)     # Connection: close -> EOF
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.mark.parametrize("name, data, status, message", RAW_REQUESTS, ids=[r[0] for r in RAW_REQUESTS])
async def test_malformed_requests_are_refused_in_the_api_shape_without_a_traceback(
        gateway, caplog, name, data, status, message):
    caplog.set_level("DEBUG")
    got_status, body = await send_raw(gateway, data)
    assert (got_status, body["status"], body["error"]) == (status, "fail", "INVALID_PARAMS"), body
    assert body["message"].startswith(message), body
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("query", CDR_REPEATS)
async def test_a_repeated_cdr_filter_is_refused(gateway, query):
    resp = await gateway.get(f"/v1/cdr?{query}", headers=AUTH)
    body = await resp.json()
    assert (resp.status, body["error"]) == (400, "INVALID_PARAMS")
    assert body["message"] == f"{query.split('=')[0]}: given more than once"


async def test_an_unexpected_error_is_a_500_in_the_api_shape_with_one_traceback(gateway, caplog, monkeypatch):
    caplog.set_level("DEBUG")

    async def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(gateway.app[SERVICE], "cdrs", broken)
    for _ in range(5):
        resp = await gateway.get("/v1/cdr?page=1", headers=AUTH)
        assert (resp.status, await resp.json()) == (500, {"status": "fail", "error": "CALL_FAILED",
                                                          "message": "internal error"})
    records = [r for r in caplog.records if r.name == "c2c_ami.api"]
    assert len(records) == 5 and all(r.levelno == logging.ERROR for r in records)
    assert len([r for r in records if r.exc_info]) <= 1          # at most once a minute per type
    assert all("ZeroDivisionError" in r.getMessage() for r in records if not r.exc_info)
