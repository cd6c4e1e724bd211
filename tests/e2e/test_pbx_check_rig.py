"""The check of the Asterisk side on the real rig, on both drivers: a healthy rig gives no
finding; a rig broken on purpose (c2c_rig's options: an AMI user without originate, a
click-to-call context without Dial, app_mixmonitor not loaded) and a gateway config with a
wrong context name and a missing trunk give each its exact finding -- from the command line
(``c2c-ami check``), in /readyz and on GET /v1/pbx/check."""
import asyncio
import sys

import pytest
import yaml

from c2c_ami.config import parse_config
from c2c_ami.pbx import AmiClient
from c2c_ami.pbx.check import PbxCheck
from tests.fixtures_gateway import started

from .conftest import TOKEN
from .drivers import rig_on_each_driver  # noqa: F401  (rig: each driver in turn)

pytestmark = pytest.mark.rig

OPERATOR = {"Authorization": "Bearer operator-token-0123456789"}


def dial(tech):
    return ("Dial(SIP/${C2C_TRUNK}/${EXTEN},${C2C_DIAL_TIMEOUT})" if tech == "SIP"
            else "Dial(PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT})")


def raw_config(rig):
    """Tenant default: the rig's contract, with one hotline on a trunk that does not exist;
    tenant typo: a context name with a typo."""
    return {
        "ami": {**rig.ami, "reconnect_min": 0.05, "reconnect_max": 0.5},
        "metrics": {"token": "operator-token-0123456789"},
        "tenants": [
            {"domain": "default", "tokens": [TOKEN], "endpoint": f"{rig.tech}/{{ext}}", "extensions": "^[0-9]{3}$",
             "default_region": "VN", "hotlines": {"02873001234": "hotline-trunk", "02873005678": "no-such-trunk"}},
            {"domain": "typo", "tokens": ["typo-token-0123456789"], "endpoint": f"{rig.tech}/{{ext}}",
             "extensions": "^1[0-9]{2}$", "context": "c2c-outbnd", "hotlines": {"02439990000": "hotline-trunk"}},
        ]}


def expected(rig, *, broken, recording=False):
    """The findings' lines, sorted; with the recording feature the user also needs write = system
    (MixMonitor) and app_mixmonitor."""
    tech, conf = rig.tech, ("sip.conf" if rig.tech == "SIP" else "pjsip.conf")
    kind = "peer" if rig.tech == "SIP" else "endpoint"
    lines = [
        f"the dialplan has no context 'c2c-outbnd' (tenant typo's context) [extensions.conf [c2c-outbnd]; "
        f"tenants[1].context]: [c2c-outbnd] with exten => _X.,1,NoOp() then same => n,{dial(tech)}, or the "
        "tenant's context set to the one that has them",
        f"the trunk 'no-such-trunk' of hotline 02873005678 (tenant default) is no {tech} {kind} [{conf}; "
        f"tenants[0].hotlines]: [no-such-trunk] type={kind} ... in {conf}, or the hotline's trunk set to an "
        f"existing {kind}",
    ]
    if broken:
        lines += [
            "the AMI user 'c2c' may not run Originate (placing every click-to-call) [manager.conf [c2c]]: "
            "write = originate,call,reporting" + (",system" if recording else ""),
            "the context 'c2c-outbound' never runs Dial with ${C2C_TRUNK}: the agent's phone rings, but the number "
            f"is never dialled [extensions.conf [c2c-outbound]]: same => n,{dial(tech)}",
        ]
        if recording:
            lines.append("the module app_mixmonitor is not loaded (needed for recording) [modules.conf]: "
                         "load => app_mixmonitor.so")
    return sorted(lines)


@pytest.fixture
def broken_rig(rig, rig_factory):
    """The session rig's twin on the same driver, broken three ways."""
    return rig_factory(driver=rig.driver, ami_write="call,reporting,system", noload=["app_mixmonitor"],
                       no_dial=True)


async def check_now(config, features=()):
    ami = AmiClient(config.ami)
    checker = PbxCheck("default", ami, config.tenants, features)
    ami.start()
    try:
        assert await ami.wait_ready(5), ami.last_error
        return await checker.run()
    finally:
        await ami.close()


async def test_a_healthy_rig_has_nothing_to_report(rig):
    config = parse_config({"ami": rig.ami, "tenants": [{"tokens": [TOKEN], "endpoint": f"{rig.tech}/{{ext}}",
                                                        "extensions": "^[0-9]{3}$", "default_region": "VN",
                                                        "hotlines": {"02873001234": "hotline-trunk",
                                                                     "02873005678": "hotline-trunk-2"}}]}, {})
    result = await check_now(config)
    assert result.findings == (), [f.line() for f in result.findings]
    assert result.skipped == ()          # the rig's user has write = system (recording): modules checked too


async def test_each_misconfiguration_gives_its_exact_finding(broken_rig):
    config = parse_config(raw_config(broken_rig), {})
    result = await check_now(config, features=("recording",))
    assert sorted(f.line() for f in result.findings) == expected(broken_rig, broken=True, recording=True)
    assert [f.code for f in result.findings if f.blocking] == ["ami_permission"]
    assert result.skipped == ()                                            # write = system: modules were checked


async def test_the_command_line_prints_them_and_fails(broken_rig, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw_config(broken_rig)))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "c2c_ami", "check", "--config", str(path),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = out.decode().splitlines()
    assert proc.returncode == 1, (out, err)
    assert lines[0] == f"PBX default (127.0.0.1:{broken_rig.ami['port']}): 4 findings"
    found = sorted(line.removeprefix("  - ") for line in lines[1:])
    assert found == expected(broken_rig, broken=True)      # without recording, app_mixmonitor is not needed


async def test_readyz_and_the_check_endpoint_show_them(broken_rig, make_rig_gateway):
    raw = raw_config(broken_rig)
    client = await make_rig_gateway(parse_config(raw, {}))
    await started(client.app, timeout=10)
    resp = await client.get("/readyz")
    body = await resp.json()
    # the only PBX may not originate: no call can be placed, so not ready
    assert resp.status == 503 and body["status"] == "not_ready", body
    assert body["pbxs"][0]["ami"] == "ready" and "may not run Originate" in body["pbxs"][0]["detail"]
    assert sorted(body["pbxs"][0]["findings"]) == expected(broken_rig, broken=True)
    assert (await client.get("/v1/pbx/check", headers={"Authorization": f"Bearer {TOKEN}"})).status == 401
    resp = await client.get("/v1/pbx/check", headers=OPERATOR)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "findings"
    codes = sorted(f["code"] for f in body["pbxs"][0]["findings"])
    assert codes == ["ami_permission", "context_missing", "context_no_dial", "trunk_missing"]
