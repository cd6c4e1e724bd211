"""The real Asterisk rig works: registrations, device states, the c2c-outbound dialplan
contract, every trunk result, and two rigs side by side.  Every wait is bounded."""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from panoramisk import Manager

import c2c_rig
from c2c_rig.instance import _start_time

pytestmark = pytest.mark.rig

RIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(c2c_rig.__file__)))
RIG_PY = os.path.join(RIG_DIR, "rig.py")                 # the launcher scripts and Docker run
REGISTERED = [e for e in c2c_rig.EXTENSIONS if e not in c2c_rig.UNREGISTERED]


class AmiWatcher:
    """panoramisk 1.4 session that keeps every event, so a test can wait for one."""

    def __init__(self, ami):
        self.ami = ami
        self.events = []
        self.changed = asyncio.Event()

    async def __aenter__(self):
        self.manager = Manager(loop=asyncio.get_running_loop(), host=self.ami["host"],
                               port=self.ami["port"], username=self.ami["username"],
                               secret=self.ami["secret"], forgetable_actions=("ping", "login", "originate"))
        self.manager.register_event("*", self._on_event)
        await self.manager.connect()
        await self.wait_for(lambda e: e.get("Event") == "FullyBooted")     # logged in
        return self

    async def __aexit__(self, *exc):
        self.manager.connection_lost = lambda exc: None    # closing on purpose: no reconnect
        self.manager.close()

    async def _on_event(self, manager, event):
        self.events.append(dict(event))
        self.changed.set()

    async def wait_for(self, predicate, timeout=10):
        """First event (old or new) matching PREDICATE; fails the test after TIMEOUT s."""
        async def scan():
            seen = 0
            while True:
                for e in self.events[seen:]:
                    if predicate(e):
                        return e
                seen = len(self.events)
                self.changed.clear()
                await self.changed.wait()
        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            pytest.fail(f"no matching AMI event within {timeout} s; last: {self.events[-5:]}")

    async def originate(self, ext, number, hotline="02873001234", dial_timeout=20,
                        cid_name="Hotline Shop", cid_number=None):
        """Originate PJSIP/EXT into c2c-outbound the way the gateway does; returns the call id."""
        call_id = f"test-{uuid.uuid4().hex[:12]}"
        trunk = c2c_rig.HOTLINES[hotline]
        variables = {"C2C_CALL_ID": call_id, "C2C_EXT": ext, "C2C_PHONE": number,
                     "C2C_HOTLINE": hotline, "C2C_TRUNK": trunk,
                     "C2C_DEST_CID_NAME": cid_name, "C2C_DEST_CID_NUMBER": cid_number or hotline,
                     "C2C_DIAL_TIMEOUT": dial_timeout}
        reply = await self.manager.send_action({
            "Action": "Originate", "ActionID": call_id, "ChannelId": call_id,
            "Channel": f"PJSIP/{ext}", "Context": "c2c-outbound", "Exten": number, "Priority": 1,
            "Timeout": 15000, "CallerID": f'"Click to call" <{number}>', "Async": "true",
            "Variable": [f"{k}={v}" for k, v in variables.items()]}, as_list=False)
        assert reply.get("Response") == "Success", reply
        return call_id

    async def dial_end(self, call_id, timeout=10):
        return await self.wait_for(lambda e: e.get("Event") == "DialEnd"
                                   and e.get("Linkedid") == call_id
                                   and e.get("Uniqueid") == call_id, timeout)

    async def hangup(self, call_id, timeout=10):
        """The extension's channel (Uniqueid = call id) is gone: nothing leaks into the next test."""
        return await self.wait_for(lambda e: e.get("Event") == "Hangup"
                                   and e.get("Uniqueid") == call_id, timeout)


def test_extensions_register(driver_rig):
    """Every phone registers on both drivers; the qualified dead phone (114) is UNAVAILABLE."""
    states = driver_rig.device_states()
    assert {e: s for e, s in states.items() if e in REGISTERED} == {e: c2c_rig.ready_state(e) for e in REGISTERED}
    assert states["104"] == "UNAVAILABLE" and states["114"] == "UNAVAILABLE" and states["110"] == "NOT_INUSE"
    assert {str(e) for e in range(201, 231)} <= set(REGISTERED)


def test_busy_and_free_change_device_state(rig):
    assert rig.device_state("105") == "NOT_INUSE"
    t0 = time.time()
    try:
        assert rig.busy("105") == "INUSE"
        assert rig.device_state("105") == "INUSE"
        assert rig.device_state("106") == "NOT_INUSE"
        assert rig.wait_for_invite("105", after=t0).from_display_name == "rig hold"
    finally:
        assert rig.free("105") == "NOT_INUSE"
    assert rig.wait_for_message("105", "BYE", after=t0).to_user == "105"
    assert rig.device_state("104") == "UNAVAILABLE"


def test_busy_and_free_from_the_cli(rig):
    def cli(*args):
        r = subprocess.run([sys.executable, RIG_PY, *args, "--offset", str(rig.offset)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    assert cli("busy", "105") == "105: INUSE"
    assert cli("free", "105") == "105: NOT_INUSE"


async def test_originate_rings_the_phone_then_the_trunk_with_the_callers_id(rig):
    number = "0909123111"
    t0 = time.time()
    async with AmiWatcher(rig.ami) as ami:
        call_id = await ami.originate("101", number, cid_name="Shop Hotline", cid_number="02873001234")
        invite = await asyncio.to_thread(rig.wait_for_invite, "101", after=t0)
        assert invite.request_user == "101"
        trunk_invite = await asyncio.to_thread(rig.wait_for_trunk_invite, number, after=t0)
        assert trunk_invite.request_user == number
        assert trunk_invite.from_user == "02873001234"
        assert trunk_invite.from_display_name == "Shop Hotline"
        assert trunk_invite.to_user == number
        assert (await ami.dial_end(call_id))["DialStatus"] == "ANSWER"
        # the trunk hangs up ~3 s after answering: the phone gets a BYE
        await ami.hangup(call_id)
    bye = await asyncio.to_thread(rig.wait_for_message, "101", "BYE", invite.call_id)
    assert bye.index > invite.index
    assert not rig.trunk_invites(number, trunk="hotline-trunk-2", after=t0)


async def test_second_hotline_uses_its_own_trunk(rig):
    number = "0912000222"
    t0 = time.time()
    async with AmiWatcher(rig.ami) as ami:
        call_id = await ami.originate("106", number, hotline="02873005678")
        msg = await asyncio.to_thread(rig.wait_for_trunk_invite, number, trunk="hotline-trunk-2", after=t0)
        assert msg.from_user == "02873005678"
        assert (await ami.dial_end(call_id))["DialStatus"] == "ANSWER"
        await ami.hangup(call_id)
    assert not rig.trunk_invites(number, trunk="hotline-trunk", after=t0)


@pytest.mark.parametrize("number, statuses", [
    ("0909000486", {"BUSY"}),
    ("0909000503", {"CONGESTION", "CHANUNAVAIL"}),   # 22: cause 34 -> CONGESTION
    ("0909000404", {"NOANSWER", "CHANUNAVAIL"}),     # 22: cause 1 (unallocated) -> NOANSWER
])
async def test_trunk_failures_give_dial_status(rig, number, statuses):
    t0 = time.time()
    async with AmiWatcher(rig.ami) as ami:
        call_id = await ami.originate("101", number)
        end = await ami.dial_end(call_id)
        await ami.hangup(call_id)
    assert end["DialStatus"] in statuses, end
    assert len(rig.trunk_invites(number, after=t0)) == 1


async def test_trunk_no_answer_times_out_and_is_cancelled(rig):
    number = "0909000408"
    t0 = time.time()
    async with AmiWatcher(rig.ami) as ami:
        call_id = await ami.originate("101", number, dial_timeout=2)
        end = await ami.dial_end(call_id, timeout=15)
        await ami.hangup(call_id)
    assert end["DialStatus"] in {"NOANSWER", "CANCEL"}, end
    invite = rig.trunk_invites(number, after=t0)[0]
    cancel = await asyncio.to_thread(rig.wait_for_message, "hotline-trunk", "CANCEL", invite.call_id)
    assert cancel.index > invite.index


async def test_phone_that_rejects_and_phone_that_never_answers(rig):
    t0 = time.time()
    async with AmiWatcher(rig.ami) as ami:
        busy_id = await ami.originate("102", "0909000111")
        rejected = await ami.wait_for(lambda e: e.get("Event") == "OriginateResponse"
                                      and e.get("ActionID") == busy_id)
        assert rejected["Response"] == "Failure"
        ring_id = await ami.originate("103", "0909000112")
        await asyncio.to_thread(rig.wait_for_invite, "103", after=t0)
        await ami.manager.send_action({"Action": "Hangup", "Channel": "/^PJSIP\\/103-/"})
        await ami.hangup(ring_id)
    assert rig.wait_for_message("103", "CANCEL", after=t0).to_user == "103"
    assert len(rig.invites_to("102", after=t0)) == 1
    assert not rig.trunk_invites("0909000111", after=t0)


# The three ways to run the CLI.  rig.py under `-S` (no site-packages) and from another
# directory: it needs neither the editable install nor the repository as working directory.
CLI_FORMS = {
    "rig.py": [sys.executable, "-S", RIG_PY],
    "python -m c2c_rig": [sys.executable, "-m", "c2c_rig"],
    "c2c-rig": [os.path.join(os.path.dirname(sys.executable), "c2c-rig")],
}


@pytest.mark.parametrize("form", list(CLI_FORMS))
def test_status_cli_reports_the_instance(rig, form):
    r = subprocess.run([*CLI_FORMS[form], "status", "--json"], capture_output=True,
                       text=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    mine = [i for i in json.loads(r.stdout)["instances"] if i["offset"] == rig.offset]
    assert mine and all(mine[0]["processes"].values())


def test_two_rigs_side_by_side(rig, rig_factory):
    second = rig_factory()                     # first free offset: not the session rig's
    assert second.offset != rig.offset
    assert second.ports.ami != rig.ports.ami and second.ports.sip != rig.ports.sip
    assert second.device_state("101") == "NOT_INUSE"
    assert rig.device_state("101") == "NOT_INUSE"
    pids = [p["pid"] for p in second.procs.values()]
    second.down()
    assert not any(os.path.exists(f"/proc/{pid}") and _start_time(pid) for pid in pids)
    assert c2c_rig.busy_ports(second.ports) == []
    assert rig.is_up() and rig.device_state("101") == "NOT_INUSE"
