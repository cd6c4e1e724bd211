"""Click-to-call on the real rig: the HTTP answer AND what the SIP peers received."""
import base64
import statistics

import pytest

from .conftest import AUTH, RING_TIMEOUT, click, in_thread, now
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

HOTLINE, TRUNK = "02873001234", "hotline-trunk"
HOTLINE2, TRUNK2 = "02873005678", "hotline-trunk-2"


async def test_sync_answered_rings_the_phone_then_dials_the_number(gw, rig):
    t0 = now()
    status, body = await click(gw, ext="201", phone="0899 098 899")
    assert (status, body["status"]) == (200, "success")
    invite = await in_thread(rig.wait_for_invite, "201", after=t0)
    assert invite.from_display_name == "Click2Call" and invite.from_user == "201"
    trunk = await in_thread(rig.wait_for_trunk_invite, "0899098899", TRUNK, after=t0)
    assert trunk.from_user == HOTLINE and trunk.from_display_name == HOTLINE


async def test_given_caller_ids_and_hotline_reach_the_peers(gw, rig):
    t0 = now()
    status, body = await click(gw, ext="202", phone="0899111222", src_cid_name="Nguyễn Văn A",
                               src_cid_number="19001234", dest_cid_name="Shop ABC",
                               dest_cid_number="02873009999", hotline=HOTLINE2)
    assert status == 200, body
    invite = await in_thread(rig.wait_for_invite, "202", after=t0)
    assert (invite.from_display_name, invite.from_user) == ("Nguyễn Văn A", "19001234")
    trunk = await in_thread(rig.wait_for_trunk_invite, "0899111222", TRUNK2, after=t0)
    assert (trunk.from_display_name, trunk.from_user) == ("Shop ABC", "02873009999")
    assert rig.trunk_invites("0899111222", TRUNK, after=t0) == []


async def test_auto_answer_headers_only_when_asked(gw, rig):
    t0 = now()
    assert (await click(gw, ext="203", phone="0899", auto_answer="true"))[0] == 200
    invite = await in_thread(rig.wait_for_invite, "203", after=t0)
    assert "answer-after=0" in invite.header("Call-Info")
    assert "info=alert-autoanswer" in invite.header("Alert-Info")
    t1 = now()
    assert (await click(gw, ext="204", phone="0899", auto_answer="no"))[0] == 200
    plain = await in_thread(rig.wait_for_invite, "204", after=t1)
    assert plain.header("Call-Info") is None and plain.header("Alert-Info") is None


async def test_is_encode_dials_the_decoded_number(gw, rig):
    t0 = now()
    encoded = base64.b64encode(b"0912345678").decode()
    assert (await click(gw, ext="205", phone=encoded, is_encode="1"))[0] == 200
    await in_thread(rig.wait_for_trunk_invite, "0912345678", TRUNK, after=t0)


async def test_sync_rejected_is_user_busy(gw, rig):
    t0 = now()
    status, body = await click(gw, ext="102", phone="0899")
    assert (status, body["error"]) == (409, "USER_BUSY") and body["call_id"]
    await in_thread(rig.wait_for_invite, "102", after=t0)
    assert rig.trunk_invites(after=t0) == []


async def test_sync_no_answer_cancels_the_phone(gw, rig):
    t0 = now()
    status, body = await click(gw, ext="103", phone="0899")
    elapsed = now() - t0
    assert (status, body["error"]) == (409, "NO_ANSWER")
    assert RING_TIMEOUT - 0.5 <= elapsed <= RING_TIMEOUT + 3
    await in_thread(rig.wait_for_message, "103", "CANCEL", after=t0)


async def test_async_returns_while_the_phone_still_rings(gw, rig):
    t0 = now()
    status, body = await click(gw, "/v1/click2call/async", ext="107", phone="0899")
    answered_at = now()
    assert (status, body["status"]) == (200, "success")
    invite = await in_thread(rig.wait_for_invite, "107", after=t0)
    assert answered_at - t0 < 1.0  # the phone never answers: async did not wait for it
    assert rig.messages("107")[-1].method == "INVITE"
    assert (await gw.delete(f"/v1/calls/{body['call_id']}", headers=AUTH)).status == 200
    await in_thread(rig.wait_for_message, "107", "CANCEL", call_id=invite.call_id, after=t0)


@pytest.mark.parametrize("ext", ["104", "999"])
async def test_unregistered_or_unknown_extension(gw, rig, ext):
    t0 = now()
    status, body = await click(gw, ext=ext, phone="0899")
    assert (status, body["error"]) == (404, "USER_NOT_REGISTERED") and "call_id" not in body
    assert rig.trunk_invites(after=t0) == []


async def test_busy_extension_is_not_rung_again(gw, rig):
    await in_thread(rig.busy, "105")
    try:
        t0 = now()
        status, body = await click(gw, ext="105", phone="0899")
        assert (status, body["error"]) == (409, "USER_BUSY")
        assert rig.invites_to("105", after=t0) == []
    finally:
        await in_thread(rig.free, "105")


async def test_bad_token_and_bad_params_touch_nothing(gw, rig):
    t0 = now()
    status, body = await click(gw, headers={"Authorization": "Bearer wrong"}, ext="206", phone="0899")
    assert (status, body["error"]) == (401, "UNAUTHORIZED")
    status, body = await click(gw, ext="206", phone="0899%0D%0AChannel: Local/1")
    assert (status, body["error"]) == (400, "INVALID_PARAMS")
    assert rig.invites_to("206", after=t0) == [] and rig.is_up()


async def test_time_from_request_to_invite_at_the_phone(gw, rig, record_property):
    """Not a timed assertion: records the median for the closing note and the bench."""
    delays = []
    for ext in ("207", "208", "209", "210", "211"):
        t0 = now()
        assert (await click(gw, "/v1/click2call/async", ext=ext, phone="0899"))[0] == 200
        invite = await in_thread(rig.wait_for_invite, ext, after=t0)
        delays.append(invite.time - t0)
    median_ms = statistics.median(delays) * 1000
    record_property("request_to_invite_median_ms", round(median_ms, 2))
    print(f"HTTP request -> INVITE at the phone: median {median_ms:.1f} ms over {len(delays)} calls")
    assert all(d > 0 for d in delays)
