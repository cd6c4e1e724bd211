"""The Originate action and its dialplan variables, built from a validated request."""
from c2c_ami.calls import Call
from c2c_ami.config import CallsConfig, parse_config
from c2c_ami.originate import auto_answer_variables, originate_action
from c2c_ami.schemas import ClickToCallRequest

from .test_config import BASE


def test_originate_follows_the_contract():
    tenant = parse_config(BASE, {}).tenants[0]
    call = Call(tenant="default", ext="101", device="PJSIP/101", phone="0899", hotline="02873001234",
                trunk="hotline-trunk", call_id="c-1")
    action = originate_action(call, ClickToCallRequest(ext="101", phone="0899"), tenant,
                              CallsConfig(ring_timeout=25, dial_timeout=50))
    assert {k: v for k, v in action.items() if k != "Variable"} == {
        "Action": "Originate", "ActionID": "c-1", "ChannelId": "c-1", "Channel": "PJSIP/101",
        "Context": "c2c-outbound", "Exten": "0899", "Priority": "1", "Timeout": "25000",
        "CallerID": '"Click2Call" <101>', "Async": "true"}
    assert action["Variable"] == [
        "C2C_CALL_ID=c-1", "C2C_EXT=101", "C2C_PHONE=0899", "C2C_HOTLINE=02873001234",
        "C2C_TRUNK=hotline-trunk", "C2C_DEST_CID_NAME=02873001234",
        "C2C_DEST_CID_NUMBER=02873001234", "C2C_DIAL_TIMEOUT=50"]


def test_auto_answer_headers_per_channel_driver():
    headers = (("Call-Info", "<sip:127.0.0.1>;answer-after=0"), ("Alert-Info", "<http://x>;info=alert-autoanswer"))
    assert auto_answer_variables("PJSIP/101", headers) == {
        "PJSIP_HEADER(add,Call-Info)": "<sip:127.0.0.1>;answer-after=0",
        "PJSIP_HEADER(add,Alert-Info)": "<http://x>;info=alert-autoanswer"}
    assert auto_answer_variables("SIP/101", headers) == {
        "SIPADDHEADER01": "Call-Info: <sip:127.0.0.1>;answer-after=0",
        "SIPADDHEADER02": "Alert-Info: <http://x>;info=alert-autoanswer"}
