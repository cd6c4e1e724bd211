"""The event classes a session asks for follow the events its subscribers read."""
from c2c_ami.pbx.event_classes import OTHER_CLASSES, event_mask
from c2c_ami.pbx.events import CallEvents


def test_the_call_events_and_the_agent_monitors_need_call_and_system_only():
    assert event_mask(CallEvents.EVENTS) == "call,system"
    assert event_mask([*CallEvents.EVENTS, "ContactStatus", "PeerStatus", "DeviceStateChange",
                       "BridgeEnter", "BlindTransfer", "MixMonitorStart", "ChanSpyStart"]) == "call,system"


def test_an_event_of_another_class_widens_the_mask_with_its_class():
    assert event_mask(["Newstate", "Cdr", "newexten", "VarSet"]) == "call,system,cdr,dialplan"
    assert event_mask(["QueueMemberStatus", "UserEvent"]) == "call,system,agent,user"
    assert OTHER_CLASSES["rtcpsent"] == "reporting"


def test_every_event_means_every_class():
    assert event_mask(None) == "on"
