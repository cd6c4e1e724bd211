"""Validation: every parameter is checked, and the error names it."""
import base64
from zoneinfo import ZoneInfo

import pytest

from c2c_ami import patterns
from c2c_ami.api.schemas import (
    json_object,
    parse_cdr_query,
    parse_click_to_call,
    parse_click_to_call_v2,
    parse_query,
    v2_named,
)
from c2c_ami.calls.requests import ClickToCallRequest
from c2c_ami.errors import Forbidden, InvalidParams, UserBusy


def parse(query: str) -> ClickToCallRequest:
    return parse_click_to_call(parse_query(query))


def test_minimal_request_gets_documented_defaults():
    req = parse("ext=101&phone=0899098899")
    assert req == ClickToCallRequest(ext="101", phone="0899098899")
    assert req.src_cid_name == "Click2Call" and req.src_cid_number is None
    assert req.auto_answer is False and req.hotline is None


@pytest.mark.parametrize("raw, digits", [
    ("0899 098 899", "0899098899"), ("0899.098.899", "0899098899"),
    ("(089) 909-8899", "0899098899"), ("%2B84899098899", "84899098899"),
    ("+84 899 098 899", "84899098899"),  # '+' decodes to a space in a query string
])
def test_phone_formatting_is_removed(raw, digits):
    assert parse(f"ext=101&phone={raw}").phone == digits


@pytest.mark.parametrize("phone", ["12", "0899x098899", "08990988991234567890123", "%2B%2B0899",
                                   "0899%0A098", "%EF%BC%90899098899", "08*99", "0899;1"])
def test_bad_phone_is_rejected_naming_phone(phone):
    with pytest.raises(InvalidParams, match="^phone: "):
        parse(f"ext=101&phone={phone}")


def test_is_encode_decodes_base64_phone():
    encoded = base64.b64encode(b"0899098899").decode()
    assert parse(f"ext=101&phone={encoded}&is_encode=true").phone == "0899098899"
    urlsafe = base64.urlsafe_b64encode(b"+84 899").decode().rstrip("=")
    assert parse(f"ext=101&phone={urlsafe}&is_encode=1").phone == "84899"


@pytest.mark.parametrize("bad", ["not-base64!", "AAAA%0A", base64.b64encode(b"\xff\xfe").decode(),
                                 base64.b64encode(b"0899\r\n").decode()])
def test_is_encode_with_bad_base64_is_invalid(bad):
    with pytest.raises(InvalidParams, match="^phone: "):
        parse(f"ext=101&phone={bad}&is_encode=yes")


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), ("1", True), ("yes", True),
                                             ("false", False), ("0", False), ("no", False), ("", False)])
def test_auto_answer_booleans(value, expected):
    assert parse(f"ext=101&phone=0899&auto_answer={value}").auto_answer is expected


@pytest.mark.parametrize("query, param", [
    ("phone=0899", "ext"), ("ext=101", "phone"), ("ext=&phone=0899", "ext"),
    ("ext=10%201&phone=0899", "ext"), ("ext=101%0D%0AChannel:%20Local/1&phone=0899", "ext"),
    ("ext=101&phone=0899&auto_answer=maybe", "auto_answer"),
    ("ext=101&phone=0899&is_encode=2", "is_encode"),
    ("ext=101&phone=0899&src_cid_name=a%22b", "src_cid_name"),
    ("ext=101&phone=0899&src_cid_name=a%0Ab", "src_cid_name"),
    ("ext=101&phone=0899&dest_cid_name=a,b", "dest_cid_name"),
    ("ext=101&phone=0899&dest_cid_name=%E2%80%A8", "dest_cid_name"),
    ("ext=101&phone=0899&dest_cid_name=" + "a" * 65, "dest_cid_name"),
    ("ext=101&phone=0899&src_cid_number=12a", "src_cid_number"),
    ("ext=101&phone=0899&dest_cid_number=%2B%2B1", "dest_cid_number"),
    ("ext=101&phone=0899&hotline=0287%00", "hotline"),
    ("ext=101&ext=102&phone=0899", "ext"),
    ("ext=101&phone=%FF%FE", "query"),
    ("ext=101&phone=0899&x=" + "a" * 5000, "query"),
])
def test_invalid_params_name_the_parameter(query, param):
    with pytest.raises(InvalidParams, match=f"^{param}: "):
        parse(query)


def test_vietnamese_names_are_allowed_and_nfc_normalised():
    req = parse("ext=101&phone=0899&src_cid_name=Nguy%E1%BB%85n%20V%C4%83n%20A")
    assert req.src_cid_name == "Nguyễn Văn A"
    decomposed = "Nguye%CC%82%CC%83n"  # e + combining circumflex + combining tilde
    assert parse(f"ext=101&phone=0899&dest_cid_name={decomposed}").dest_cid_name == "Nguyễn"


def test_unknown_parameters_are_ignored():
    assert parse("ext=101&phone=0899&crm_ref=abc&crm_ref=def").ext == "101"


@pytest.mark.parametrize("value, ok", [
    ("KH1", True), ("a", True), ("A" * 64, True), ("crm:42@shop.example", True), ("x-y_z.0", True),
    ("", False), ("A" * 65, False), ("KH 1", False), ("KH,1", False), ("KH\r\n1", False), ("KH\x001", False),
    ("KH;1", False), ("KH/1", False), ('KH"1', False), ("KHÁCH", False), ("٣", False), ("KH1\n", False),
])
def test_customer_id_pattern(value, ok):
    assert patterns.CUSTOMER_ID.fullmatch(value) is ok


def test_v1_customer_id_is_optional_and_checked():
    assert parse("ext=101&phone=0899").customer_id is None
    assert parse("ext=101&phone=0899&customer_id=").customer_id is None
    assert parse("ext=101&phone=0899&customer_id=KH%3A1%40x").customer_id == "KH:1@x"
    with pytest.raises(InvalidParams, match="^customer_id: "):
        parse("ext=101&phone=0899&customer_id=KH%0A1")


def test_v2_body_maps_to_the_v1_request():
    req = parse_click_to_call_v2(b'{"id": "KH1", "mobile": "+84 899", "agent": "101", "auto_answer": true}').request
    assert req == ClickToCallRequest(ext="101", phone="84899", customer_id="KH1", auto_answer=True)
    body = b'{"id": "KH1", "mobile": "0899", "agent": "101", "hotline": null}'
    assert parse_click_to_call_v2(body).request.hotline is None


def test_v2_takes_each_parameter_by_its_v1_name_as_documented():
    parsed = parse_click_to_call_v2(b'{"customer_id": "KH1", "phone": "0899", "ext": "102"}')
    assert parsed.request == ClickToCallRequest(ext="102", phone="0899", customer_id="KH1")
    assert parsed.names == {"customer_id": "customer_id", "phone": "phone", "ext": "ext"}
    mixed = parse_click_to_call_v2(b'{"id": "KH1", "phone": "0899", "agent": "102"}')
    assert (mixed.request.phone, mixed.names["phone"], mixed.names["ext"]) == ("0899", "phone", "agent")


@pytest.mark.parametrize("body, message", [
    (b'{"id": "KH1", "mobile": "0899", "agent": "101", "ext": "999"}', "agent: given twice, as agent and as ext"),
    (b'{"id": "KH1", "mobile": "0899", "agent": "101", "ext": "101"}', "agent: given twice, as agent and as ext"),
    (b'{"id": "KH1", "mobile": "0899", "phone": "0900", "agent": "101"}', "mobile: given twice, as mobile"),
    (b'{"id": "KH1", "customer_id": "KH2", "mobile": "0899", "agent": "101"}', "id: given twice"),
    (b'{"id": "KH1", "phone": "08 99 x", "ext": "101"}', "phone: must be"),      # named as the body names it
    (b'{"id": "KH1", "mobile": "0899", "ext": "1 01"}', "ext: must be"),
    (b'{"customer_id": "", "mobile": "0899", "agent": "101"}', "customer_id: required"),
    (b'{"id": "KH1", "mobile": "0899"}', "agent: required"),
])
def test_v2_refuses_a_parameter_given_by_both_names_and_names_what_the_body_said(body, message):
    with pytest.raises(InvalidParams) as info:
        parse_click_to_call_v2(body)
    assert info.value.message.startswith(message), info.value.message


@pytest.mark.parametrize("body, key", [
    (b'{"id": "KH1", "mobile": "0899", "agent": "106", "agent": "101"}', "agent"),
    (b'{"id": "KH1", "id": "KH1", "mobile": "0899", "agent": "101"}', "id"),
    (b'{"url": "http://x/", "events": ["cdr"], "x": {"a": 1, "a": 2}}', "a"),
    (b'{"url": "http://x/", "events": [{"e": 1, "e": 1}]}', "e"),
    (b'{"a\\u0000b": 1, "a\\u0000b": 2}', '"a\\u0000b"'),
])
def test_a_key_given_twice_anywhere_in_a_json_body_is_refused_naming_it(body, key):
    with pytest.raises(InvalidParams) as info:
        json_object(body)
    assert info.value.message == f"{key}: given more than once in the body"


@pytest.mark.parametrize("name, value", [
    ("end_date", "9999-12-31"), ("start_date", "0001-01-01"), ("end_date", "9999-12-31 23:59:59"),
    ("start_date", "0001-01-01T00:00:00+14:00"), ("end_date", "1899-12-31"),
])
def test_a_date_outside_the_supported_range_says_so(name, value):
    with pytest.raises(InvalidParams) as info:
        parse_cdr_query({name: value}, ZoneInfo("Asia/Ho_Chi_Minh"))
    assert info.value.message == f"{name}: outside the supported range (1900-01-01 to 9998-12-31)"


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Ho_Chi_Minh"])
def test_the_edges_of_the_supported_range_are_dates_in_every_zone(zone):
    query = parse_cdr_query({"start_date": "1900-01-01", "end_date": "9998-12-31"}, ZoneInfo(zone))
    assert query.start_date.startswith(("1899-12-31T", "1900-01-01T"))
    assert query.end_date.startswith(("9998-12-31T", "9999-01-01T"))
    query = parse_cdr_query({"start_date": "1900-01-01T00:00:00-12:00", "end_date": "9998-12-31T23:59:59+14:00"})
    assert query.start_date and query.end_date


def test_v2_names_errors_by_the_bodys_keys_on_a_copy():
    original = Forbidden("ext: this extension is not allowed for this token", call_id="c-1")
    renamed = v2_named(original)
    assert renamed.message == "agent: this extension is not allowed for this token" and renamed.call_id == "c-1"
    assert original.message.startswith("ext:") and isinstance(renamed, Forbidden)
    assert v2_named(InvalidParams("phone: bad")).message == "mobile: bad"
    assert v2_named(InvalidParams("customer_id: bad")).message == "id: bad"
    assert v2_named(original, {"ext": "ext"}) is original            # the body said ext
    busy = UserBusy("the extension is busy")
    assert v2_named(busy) is busy


def test_cdr_query_takes_a_customer_id():
    assert parse_cdr_query(parse_query("customer_id=KH1", ("customer_id",))).customer_id == "KH1"
    assert parse_cdr_query({}).customer_id is None
    with pytest.raises(InvalidParams, match="^customer_id: "):
        parse_cdr_query({"customer_id": "a b"})
