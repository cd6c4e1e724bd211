"""The call record is defined once: the record, the store's columns, the OpenAPI schema and
the webhook body all carry exactly its fields, with its values."""
import json
import sqlite3
from datetime import UTC

from openapi_schema_validator import OAS30Validator

from c2c_ami.api.openapi import build_openapi
from c2c_ami.calls.call import Call, ExtLegFailure, Leg
from c2c_ami.calls.record import FIELDS, LIVE_CALL_KEYS, NAMES, call_record, live_call_summary
from c2c_ami.carrier import TIME_FIELDS, hook_payload
from c2c_ami.store import MIGRATIONS, SqliteStorage, migrate


def ended_call(kind):
    call = Call(tenant="t", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="trunk")
    if kind == "answered":
        call.ext_leg_created("PJSIP/101-1")
        call.ext_answered()
        call.number_leg_created("1.2", "PJSIP/trunk-2")
        call.number_answered()
        call.hangup_requested(Leg.NUMBER)
        call.leg_hung_up(Leg.NUMBER, "16", "Normal Clearing")
    elif kind == "rejected":
        call.ext_failed(ExtLegFailure.REJECTED)
    call.end()
    return call


def test_names_are_unique():
    assert len(set(NAMES)) == len(NAMES)


async def test_a_record_has_exactly_the_fields_in_order():
    for kind in ("answered", "rejected", "silent"):
        assert tuple(call_record(ended_call(kind))) == NAMES


def test_the_stores_calls_table_has_exactly_the_records_fields():
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db, MIGRATIONS)
    columns = [row[1] for row in db.execute("PRAGMA table_info(calls)")]
    assert [c for c in columns if c != "extra"] == list(NAMES) and "extra" in columns
    assert SqliteStorage(":memory:").call_columns == NAMES


def test_openapi_call_record_is_the_records_fields():
    schema = build_openapi()["components"]["schemas"]["CallRecord"]
    assert tuple(schema["properties"]) == NAMES
    live = build_openapi()["components"]["schemas"]["LiveCalls"]["properties"]["calls"]["items"]
    assert tuple(live["properties"]) == tuple(LIVE_CALL_KEYS)


async def test_real_records_validate_against_the_openapi_schema():
    spec = build_openapi()
    validator = OAS30Validator(spec["components"]["schemas"]["CallRecord"])
    for kind in ("answered", "rejected", "silent"):
        record = call_record(ended_call(kind))
        assert not list(validator.iter_errors(record)), record


async def test_enumerated_fields_take_only_their_values():
    record = call_record(ended_call("answered"))
    for field in FIELDS:
        if field.values:
            assert record[field.name] in (*field.values, None)
    assert (record["status"], record["hangup_by"], record["state"]) == ("ANSWERED", "number", "ended")


async def test_webhook_body_and_live_summary_derive_from_the_record():
    call = ended_call("answered")
    body = hook_payload(call_record(call), "cdr", UTC)
    assert "tenant" not in body and body["domain"] == "t" and body["call_state"] == "ended"
    # every field of the record is in the payload: the gateway's state as call_state, each
    # time in the carrier's format and, as <time>_utc, in the record's ISO-8601
    assert set(NAMES) - {"tenant", "state"} <= set(body) and {f"{t}_utc" for t in TIME_FIELDS} <= set(body)
    summary = live_call_summary(call)
    assert summary == {"call_id": call.call_id, "source": "101", "destination": "0899", "direction": "outbound",
                       "state": "ended", "created_time": call_record(call)["time_started"], "hotline": "028"}


async def test_the_customer_id_outlives_the_process_in_the_facts():
    # each migration appends its columns: customer_id's (6), then call control's (9), then the
    # auto-answer check's (11)
    assert NAMES[NAMES.index("customer_id"):] == ("customer_id", "final_ext", "transfers", "parks", "supervisors",
                                                  "recorded", "recording_masked", "auto_answer_honoured")
    call = Call(tenant="t", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="trunk",
                customer_id="KH1")
    facts = call.facts()
    assert facts["customer_id"] == "KH1"
    again = Call.from_facts(json.loads(json.dumps(facts)))
    assert again.customer_id == "KH1" and call_record(again)["customer_id"] == "KH1"
    assert hook_payload(call_record(again), "ringing", UTC, leg="extension")["customer_id"] == "KH1"
    older = {k: v for k, v in facts.items() if k != "customer_id"}     # facts written before it existed
    assert Call.from_facts(older).customer_id is None


async def test_auto_answer_honoured_is_the_last_field_and_says_whether_the_phone_answered_itself():
    assert NAMES[-1] == "auto_answer_honoured"     # migration 10 appended the column

    def asked(answer_after=None, rang=True, ended=False):
        call = Call(tenant="t", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="trunk",
                    auto_answer_asked=True, auto_answer_user_agent="Yealink SIP-T46S")
        call.ext_leg_created("PJSIP/101-1", at=100.0)
        if rang:
            call.ext_ringing()
        if answer_after is not None:
            call.ext_answered(100.0 + answer_after)
        if ended:
            call.leg_hung_up(Leg.EXTENSION, "16", "Normal Clearing")
        return call
    assert asked(0.2).auto_answer_honoured() is True
    assert asked(2.5).auto_answer_honoured() is False                   # rang, then someone picked up
    assert asked(rang=True).auto_answer_honoured(now=100.5) is None     # still within the second
    assert asked(rang=True).auto_answer_honoured(now=101.5) is False    # rang for more than a second
    assert asked(rang=False, ended=True).auto_answer_honoured() is None  # never rang: nothing tells
    plain = Call(tenant="t", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="trunk")
    plain.ext_leg_created("PJSIP/101-1", at=100.0)
    plain.ext_answered(100.1)
    assert plain.auto_answer_honoured() is None and call_record(plain)["auto_answer_honoured"] is None
    again = Call.from_facts(json.loads(json.dumps(asked(0.2).facts())))
    assert call_record(again)["auto_answer_honoured"] is True
