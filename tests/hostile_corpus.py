"""A corpus of hostile click-to-call queries, each with the parameter its error must name.

Shared by the fake-AMI test (every case) and the real-rig test (a representative part).
"""
from __future__ import annotations

import base64

VALID = {"ext": "101", "phone": "0899098899"}

# Payloads appended to an otherwise valid value; none may survive validation.
INJECTIONS = [
    "%0D%0AChannel:%20Local/1@default",           # header injection via CRLF
    "%0AAction:%20Originate",                     # bare LF also splits lines in Asterisk
    "%0D%0A%0D%0AAction:%20Command%0D%0ACommand:%20core%20stop%20now",  # second action
    "%00", "%0D", "%09", "%1B%5B31m", "%7F",      # NUL, CR, TAB, ANSI escape, DEL
    "%C2%85", "%E2%80%A8", "%E2%80%A9",           # NEL, line and paragraph separators
    "%22", "%3C666%3E", "%2C", "%3B", "%7C", "%5C", # quote, <cid>, comma, ; | backslash
    "%24%7BSHELL%7D", "%5BA%5D", "(", "=",       # dialplan expressions, brackets, equals
    "%EF%BC%90",                                  # fullwidth digit zero
]
PARAMS = ["ext", "phone", "src_cid_name", "src_cid_number", "dest_cid_name", "dest_cid_number", "hotline"]
BASE_VALUE = {"ext": "101", "phone": "0899", "src_cid_name": "Agent", "src_cid_number": "101",
              "dest_cid_name": "Shop", "dest_cid_number": "0287", "hotline": "02873001234"}
# Characters a caller-ID *name* may legitimately hold, so not hostile there.
NAME_OK = {"(", "%EF%BC%90"}


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


def cases() -> list[tuple[str, str]]:
    """(raw query string, parameter the INVALID_PARAMS message must start with)."""
    out = []
    for param in PARAMS:
        for payload in INJECTIONS:
            if param.endswith("_name") and payload in NAME_OK:
                continue
            value = BASE_VALUE[param] + payload
            params = {**VALID, param: value}
            if param == "phone" and payload in ("(",):
                continue  # formatting a phone number may contain: removed, not hostile
            out.append((_query(params), param))
    out += [
        (_query(VALID) + "&auto_answer=true%0D%0A", "auto_answer"),
        (_query(VALID) + "&auto_answer=2", "auto_answer"),
        (_query(VALID) + "&is_encode=maybe", "is_encode"),
        ("ext=101&is_encode=1&phone=" + base64.b64encode(b"0899\r\nAction: Originate").decode(), "phone"),
        ("ext=101&is_encode=1&phone=%%%%", "phone"),
        ("ext=101&is_encode=1&phone=" + base64.b64encode(b"\xff\xfe\x00").decode(), "phone"),
        ("ext=101&is_encode=1&phone=" + "QUFB" * 40, "phone"),
        ("ext=101&ext=102&phone=0899", "ext"),
        ("ext=101&phone=0899&phone=0900", "phone"),
        ("ext=101&phone=0899&hotline=02873001234&hotline=02873005678", "hotline"),
        ("ext=101&phone=%FF%FE", "query"),
        ("ext=%C3%28&phone=0899", "query"),
        ("ext=101&phone=0899&pad=" + "A" * 5000, "query"),
        ("ext=101&phone=" + "9" * 21, "phone"),
        ("ext=" + "1" * 33 + "&phone=0899", "ext"),
        ("ext=101&phone=0899&src_cid_name=" + "x" * 65, "src_cid_name"),
        ("ext=101&phone=0899&dest_cid_name=" + "%E1%BB%85" * 65, "dest_cid_name"),
        ("ext=101&phone=0899&src_cid_name=%20lead", "src_cid_name"),
        ("ext=../../etc&phone=0899", "ext"),
        ("ext=101/PJSIP/102&phone=0899", "ext"),
        ("phone=0899", "ext"),
        ("ext=101", "phone"),
        ("", "ext"),
    ]
    return out


# Whole HTTP requests that once made the gateway answer 500 with a traceback, or
# that must be refused: (name, raw request, status, start of the INVALID_PARAMS message).
def _raw(method: str, target: str, headers: list[bytes], body: bytes = b"") -> bytes:
    head = [f"{method} {target} HTTP/1.1".encode(), b"Host: gateway", b"Connection: close",
            f"Content-Length: {len(body)}".encode(), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_AUTH = b"Authorization: Bearer dev-token-change-me"
_JSON = b"Content-Type: application/json"
RAW_REQUESTS = [
    ("authorization not UTF-8", _raw("GET", "/v1/cdr", [b"Authorization: Bearer dev-\xff\xfe-token"]),
     400, "Authorization:"),
    ("authorization Latin-1", _raw("GET", "/v1/cdr", [b"Authorization: Bearer d\xe9v-token"]), 400, "Authorization:"),
    ("two authorization headers", _raw("GET", "/v1/cdr", [_AUTH, b"Authorization: Bearer other-tenant-token"]),
     400, "Authorization:"),
    ("two authorization headers, one bad", _raw("GET", "/v1/cdr", [b"Authorization: Bearer nope", _AUTH]),
     400, "Authorization:"),
    ("deeply nested JSON", _raw("POST", "/v1/event", [_AUTH, _JSON], b"[" * 30_000 + b"]" * 30_000),
     400, "body:"),
    ("nested JSON past the depth limit", _raw("POST", "/v1/event", [_AUTH, _JSON],
                                              b'{"url": "http://x/", "events": [[[[[[[["cdr"]]]]]]]]}'), 400, "body:"),
    ("unbalanced IPv6 bracket in url", _raw("POST", "/v1/event", [_AUTH, _JSON], b'{"url":"http://[::1/"}'),
     400, "url:"),
    ("port not a number in url", _raw("POST", "/v1/event", [_AUTH, _JSON], b'{"url":"http://h:99999999/"}'),
     400, "url:"),
    ("JSON body too large", _raw("POST", "/v1/event", [_AUTH, _JSON], b'{"url": "' + b"a" * 20_000 + b'"}'),
     400, "body:"),
    ("repeated hook id", _raw("DELETE", "/v1/event?id=a&id=b", [_AUTH]), 400, "id:"),
    # the carrier's registration shape: its api key becomes delivery headers
    ("CRLF in callback_apikey", _raw("POST", "/v1/event", [_AUTH, _JSON],
                                     b'{"callback_url":"https://a.example/","event":"cdr",'
                                     b'"callback_apikey":"k\\r\\nX-Evil: 1"}'), 400, "callback_apikey:"),
    ("escaped NUL in callback_apikey", _raw("POST", "/v1/event", [_AUTH, _JSON],
                                            b'{"callback_url":"https://a.example/","event":"cdr",'
                                            b'"callback_apikey":"k\\u0000"}'), 400, "callback_apikey:"),
    ("url and callback_url", _raw("POST", "/v1/event", [_AUTH, _JSON],
                                  b'{"url":"https://a.example/","callback_url":"https://b.example/","event":"cdr"}'),
     400, "callback_url:"),
    ("callback_url not a URL", _raw("POST", "/v1/event", [_AUTH, _JSON],
                                    b'{"callback_url":"http://[::1/","event":"cdr"}'), 400, "callback_url:"),
    # a UTF-16 body hides its brackets from a byte scan (U+2200 is the bytes 00 22: a "quote")
    ("deep JSON in UTF-16", _raw("POST", "/v1/event", [_AUTH, _JSON],
                                 ('["\u2200", ' + "[" * 3000 + "]" * 3000 + "]").encode("utf-16-le")), 400, "body:"),
]

# GET /v1/cdr with a filter given twice: which one was meant cannot be guessed.
CDR_REPEATS = [
    "status=BUSY&status=ANSWERED", "extension=101&extension=102", "phone=0899&phone=0900",
    "start_date=2024-01-01&start_date=2024-02-01", "end_date=2024-01-01&end_date=2024-02-01",
    "limit=1&limit=2", "page=1&page=2",
]
