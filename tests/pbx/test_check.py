"""The check of the Asterisk side against the fake AMI (each answer worded as Asterisk's):
one finding per misconfiguration, each with where and the line to add; nothing on a PBX that
is right; and what cannot be checked with the user's rights is said, not guessed."""
import pytest

from c2c_ami.config import parse_config
from c2c_ami.pbx import AmiClient
from c2c_ami.pbx.check import PbxCheck
from c2c_ami.testing.fake_ami import ALL_CLASSES, FakeAmiServer


def config(port, **tenant):
    return parse_config({"ami": {"port": port, "boot_wait": 0.3}, "tenants": [
        {"tokens": ["t-0123456789abcdef"], "extensions": "^1[0-9]{2}$", "default_region": "VN",
         "hotlines": {"02873001234": "hotline-trunk"}, **tenant}]}, {})


@pytest.fixture
async def pbx():
    async with FakeAmiServer() as server:
        server.device_states.update({"PJSIP/101": "NOT_INUSE", "PJSIP/hotline-trunk": "NOT_INUSE"})
        yield server


async def check(server, features=(), **tenant):
    cfg = config(server.port, **tenant)
    ami = AmiClient(cfg.ami)
    checker = PbxCheck("default", ami, cfg.tenants, features)
    ami.start()
    try:
        assert await ami.wait_ready(3)
        return await checker.run()
    finally:
        await ami.close()


async def test_a_pbx_that_is_right_has_no_finding(pbx):
    result = await check(pbx)
    assert result.findings == () and result.skipped == ()
    dialled = pbx.actions_named("ShowDialPlan")[0]
    assert (dialled["Context"], dialled["Extension"]) == ("c2c-outbound", "0912345678")    # VN's example mobile


async def test_an_ami_user_without_originate_blocks_every_call(pbx):
    pbx.write_classes = frozenset({"call", "reporting"})
    result = await check(pbx)
    assert [(f.code, f.blocking, f.fix) for f in result.findings] == [
        ("ami_permission", True, "write = originate,call,reporting")]
    assert "may not run Originate" in result.findings[0].what and result.findings[0].where == "manager.conf [c2c]"
    assert result.skipped[0].startswith("modules: not checked (ModuleCheck needs write = system")


async def test_a_user_without_system_events_is_told_the_read_line(pbx):
    pbx.fully_booted = False
    result = await check(pbx)
    assert [(f.code, f.fix) for f in result.findings] == [("ami_read", "read = call,system")]


@pytest.mark.parametrize("dialplan, code, fix", [
    ({"c2c-outbound": [("_X.", 1, "NoOp", ""), ("_X.", 2, "Hangup", "")]}, "context_no_dial",
     "same => n,Dial(PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT})"),
    ({"c2c-outbound": [("_X.", 1, "Dial", "PJSIP/${EXTEN}@my-trunk,30")]}, "dial_without_trunk",
     "same => n,Dial(PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT})"),
    ({"c2c-outbound": [("_1XX", 1, "Dial", "PJSIP/${EXTEN}")]}, "context_no_match",
     "exten => _X.,1,NoOp() ... same => n,Dial(PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT})"),
    ({"other": []}, "context_missing",
     "[c2c-outbound] with exten => _X.,1,NoOp() then same => n,Dial(PJSIP/${EXTEN}@${C2C_TRUNK},"
     "${C2C_DIAL_TIMEOUT}), or the tenant's context set to the one that has them"),
])
async def test_each_dialplan_mistake(pbx, dialplan, code, fix):
    pbx.dialplan = dialplan
    result = await check(pbx)
    assert [(f.code, f.fix) for f in result.findings] == [(code, fix)], result.findings


async def test_dial_reached_through_a_goto_is_found(pbx):
    pbx.dialplan = {"c2c-outbound": [("_X.", 1, "Goto", "c2c-dial,${EXTEN},1")],
                    "c2c-dial": [("_X.", 1, "MixMonitor", "${C2C_CALL_ID}.wav"),
                                 ("_X.", 2, "Dial", "PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT}")]}
    pbx.modules.discard("app_mixmonitor.so")
    result = await check(pbx)
    assert [(f.code, f.what) for f in result.findings] == [
        ("module_missing", "the module app_mixmonitor is not loaded (needed for MixMonitor() in the dialplan)")]


async def test_a_missing_trunk_an_unmatched_endpoint_and_features_modules(pbx):
    pbx.device_states.pop("PJSIP/101")
    pbx.modules.discard("func_pjsip_contact.so")
    pbx.modules.discard("app_mixmonitor.so")
    result = await check(pbx, features=("recording",),
                         hotlines={"02873001234": "hotline-trunk", "02873005678": "no-such-trunk"})
    assert sorted(f.line() for f in result.findings) == sorted([
        "the trunk 'no-such-trunk' of hotline 02873005678 (tenant default) is no PJSIP endpoint [pjsip.conf; "
        "tenants[0].hotlines]: [no-such-trunk] type=endpoint ... in pjsip.conf, or the hotline's trunk set to an "
        "existing endpoint",
        "no device of the PBX matches tenant default's endpoint 'PJSIP/{ext}' with an extension matching "
        "'^1[0-9]{2}$' [pjsip.conf; tenants[0].endpoint]: one per extension (e.g. [101] type=endpoint), or the "
        "tenant's endpoint and extensions set to match them",
        "the module func_pjsip_contact is not loaded (needed for PJSIP_CONTACT(): the agent monitor's User-Agent "
        "and address) [modules.conf]: load => func_pjsip_contact.so",
        "the module app_mixmonitor is not loaded (needed for recording) [modules.conf]: load => app_mixmonitor.so",
    ])


async def test_a_pbx_the_gateway_cannot_log_in_to(pbx):
    pbx.reject_logins = True
    cfg = config(pbx.port)
    ami = AmiClient(cfg.ami)
    checker = PbxCheck("default", ami, cfg.tenants)
    ami.start()
    try:
        await ami.wait_ready(0.5)
        result = await checker.run()
    finally:
        await ami.close()
    assert [(f.code, f.blocking) for f in result.findings] == [("ami_login", True)]
    assert pbx.write_classes == ALL_CLASSES
