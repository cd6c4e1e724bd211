"""What a log line may hold: control characters written escaped (nothing a client sends can
forge a log line), URLs without their query string, tracebacks a client can trigger throttled."""
import asyncio
import json
import logging
import re
import sys

import pytest
import yaml

from c2c_ami.app import create_app
from c2c_ami.log_filters import OneLineFormatter, escape_controls, url_for_log

from .fixtures_gateway import TOKEN, gateway_config
from .test_cli import free_port, start_gateway, write_config

FAKE_STAMP = "2026-12-07 00:00:00,000"
FORGED = f"\r\n{FAKE_STAMP} ERROR c2c_ami: FORGED-%d-END \x1b[31mred\x1b[0m\u2028"
LINE_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_control_characters_are_written_escaped():
    assert escape_controls("a\r\nb\x1b[31m\x00\x7f\x85\u2028\u2029\udcff\tz") == \
        "a\\r\\nb\\x1b[31m\\x00\\x7f\\x85\\u2028\\u2029\\udcff\\tz"
    ordinary = "ordinary text: ünïcode, 'quotes' and \\ stay"
    assert escape_controls(ordinary) == ordinary


def test_a_record_is_one_line_and_a_traceback_is_indented_beneath_it():
    formatter = OneLineFormatter()
    record = logging.LogRecord("c2c_ami.api", logging.INFO, __file__, 1, "GET %s", (FORGED % 1,), None)
    assert "\n" not in formatter.format(record) and "\x1b" not in formatter.format(record)
    try:
        raise ValueError(FORGED % 2)
    except ValueError:
        record = logging.LogRecord("c2c_ami.api", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    first, *rest = formatter.format(record).split("\n")
    assert LINE_START.match(first) and rest and all(line.startswith("    ") for line in rest)
    assert "\x1b" not in "".join(rest) and "\r" not in "".join(rest)


def test_a_url_is_logged_without_its_query_fragment_or_user():
    assert url_for_log("https://u:pw@hooks.example.com:8443/c2c/in?token=s3cret#x") == \
        "https://hooks.example.com:8443/c2c/in"
    assert url_for_log("http://[::1]:9/a%0d%0a?k=v") == "http://[::1]:9/a%0d%0a"
    assert url_for_log("http://[::1/") == "(a URL that does not parse)"


def _encoded(text: str) -> str:
    """``text`` percent-encoded for a request target (the server decodes it back)."""
    return "".join(c if c.isalnum() or c in "-._~" else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


async def _send(port: int, method: str, target: str, headers: list[str], body: bytes = b"",
                streams: list[asyncio.StreamWriter] | None = None) -> int:
    """Send one request and read its answer; an event stream's head only, its connection kept
    in ``streams`` (its access log line is written when it ends: at the gateway's shutdown)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"{method} {target} HTTP/1.1", "Host: gateway", "Connection: close", *headers]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b"text/event-stream" in answer.lower() and streams is not None:
        streams.append(writer)
    else:
        await asyncio.wait_for(reader.read(), 10)
        writer.close()
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("access_query", [False, True])
async def test_nothing_a_client_sends_through_any_route_forges_a_log_line(tmp_path, fake_ami, access_query):
    """CR, LF, ESC, U+2028 and a fake time stamp in the path, the query and every JSON value,
    on every route, with and without a token: each request is one line in the real process's
    log (the access log writes the decoded path; with ``log.access_query``, the query too),
    and no line starts with the fake stamp."""
    port = free_port()
    path = write_config(tmp_path, fake_ami.port, port)
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "log": {"access_query": access_query}}))
    routes = sorted({(route.method, route.resource.canonical) for route in
                     create_app(gateway_config(fake_ami.port)).router.routes() if route.method != "HEAD"})
    proc, seen = await start_gateway(path)
    sent, logged, streams = 0, {}, []
    try:
        for method, template in [*routes, ("GET", "/nope/{id}")]:
            for auth in ([], [f"Authorization: Bearer {TOKEN}"]):
                sent += 1
                hostile = FORGED % sent
                target = re.sub(r"\{[^}]+\}", _encoded(hostile), template)
                target += "?" + "&".join(f"{name}={_encoded(hostile)}" for name in ("ext", "phone", "id", "scroll_id"))
                body = json.dumps({key: hostile for key in ("agent", "mobile", "id", "url", "callback_url",
                                                           "api_key", "events", "secret")}).encode()
                await _send(port, method, target, auth, body if method == "POST" else b"", streams)
                logged[sent] = access_query or "{" in template      # the path or query holds it
    finally:
        proc.terminate()
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        await proc.wait()
        for writer in streams:
            writer.close()
    log = "".join(seen) + rest.decode("utf-8")
    lines = log.split("\n")[:-1]
    assert not [line for line in lines if line.startswith(FAKE_STAMP)]
    assert "\x1b" not in log and "\r" not in log and "\u2028" not in log
    assert all(LINE_START.match(line) or line.startswith("    ") for line in lines), log
    for n, in_access_log in logged.items():
        mentioning = [line for line in lines if f"FORGED-{n}-END" in line]
        assert len(mentioning) == in_access_log and all("aiohttp.access" in m for m in mentioning), (n, mentioning)
    assert sent == 2 * (len(routes) + 1) and sent > 20
