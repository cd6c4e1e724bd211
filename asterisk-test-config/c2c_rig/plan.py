"""The phone and trunk plan every instance gets: extensions by behaviour, hotlines, trunk
results, AMI users.  One table, so the config renderer, the CLI and the tests agree."""

import os

from .errors import RigError

AMI_USER = "c2c"
AMI_SECRET = os.environ.get("C2C_RIG_AMI_SECRET", "change-me")
AMI_READ_ALL_USER = f"{AMI_USER}-all"   # the same rights, but read = all (what many shops give)
RIG_USER, RIG_SECRET = "rig", "rig-internal"

# The two channel drivers a rig can run: Asterisk 22 with PJSIP (Debian sid) and Asterisk 16
# with chan_sip (Debian bullseye, the last Debian Asterisk that has it).  Same phones, same
# trunks, same dialplan contract: only the channel technology differs.
DRIVERS = {"pjsip": {"tech": "PJSIP", "suite": "sid", "conf": "pjsip.conf"},
           "chan_sip": {"tech": "SIP", "suite": "bullseye", "conf": "sip.conf"}}
DEFAULT_DRIVER = "pjsip"

# behaviour group -> extensions; one sipp UAS per group (Request-URI user = extension).
PHONE_GROUPS = {
    "answer": ["101", "105", "106"] + [str(e) for e in range(201, 231)],
    "busy": ["102"],
    "noanswer": ["103", "107", "108", "109", "120"],
    "dead": ["110", "114"],            # registered, then silent: never answers any request
    "aa-callinfo": ["111", "117", "118"],   # answer at once only when the INVITE asks for it
    "aa-alertinfo": ["112"],
    "aa-answermode": ["113"],
    "aa-polycom": ["119"],             # answers at once only when Alert-Info: Ring Answer
    "hangup": ["116"],                 # the agent hangs up: BYE 2 s after answering
}
QUALIFIED = ["114"]                    # qualified every 2 s: a dead phone Asterisk notices
# chan_sip peers without a call counter: on a call, their device state still says NOT_INUSE
# (what a sip.conf without callcounter=yes does); the gateway must see the call anyway.
NO_CALLCOUNTER = ["105"]
UNREGISTERED = ["104"]                 # in pjsip.conf, never registered: UNAVAILABLE
# A real softphone: Debian sid's baresip (1.1) registers itself as 115, with sip_autoanswer=yes
# (it answers at once when the INVITE asks for auto-answer, else it rings).
SOFTPHONE = "115"
EXTENSIONS = sorted([e for exts in PHONE_GROUPS.values() for e in exts] + UNREGISTERED + [SOFTPHONE])
BEHAVIOUR = {"answer": "rings ~0.5 s, answers, stays up until BYE",
             "busy": "rejects with 486 Busy Here",
             "noanswer": "rings, never answers (CANCEL: 200 + 487)",
             "dead": "registered, never answers anything (114 is qualified: UNAVAILABLE)",
             "aa-callinfo": "answers at once if Call-Info has answer-after=0, else rings forever",
             "aa-alertinfo": "answers at once if Alert-Info has info=alert-autoanswer, else rings",
             "aa-answermode": "answers at once if Answer-Mode: Auto, else rings forever",
             "aa-polycom": "answers at once if Alert-Info: Ring Answer, else rings forever",
             "hangup": "rings ~0.5 s, answers, hangs up (BYE) 2 s later",
             "unregistered": "never registered (UNAVAILABLE)",
             "softphone": "baresip 1.1: answers at once when the INVITE asks for auto-answer, else rings"}


# The User-Agent each phone registers with (the others: c2c-ami-test-rig): vendors' phones that
# obey their vendor's auto-answer header (117, 118: Call-Info answer-after=0; 119: Alert-Info:
# Ring Answer), and 120 whose vendor's header (Call-Info) it ignores: it rings.
DEFAULT_USER_AGENT = "c2c-ami-test-rig"
USER_AGENTS = {"117": "Yealink SIP-T46S 66.86.0.15", "118": "Grandstream GXP2170 1.0.11.23",
               "119": "PolycomVVX-VVX_450-UA/6.4.3.5018", "120": "Fanvil X4U 2.12.1"}


def user_agent(ext):
    return USER_AGENTS.get(ext, DEFAULT_USER_AGENT)


# A registered phone's device state once `up` returns (114's qualify fails: UNAVAILABLE).
def ready_state(ext):
    return "UNAVAILABLE" if ext in QUALIFIED else "NOT_INUSE"

HOTLINES = {"02873001234": "hotline-trunk", "02873005678": "hotline-trunk-2"}
TRUNKS = list(HOTLINES.values())
# Trunk answer by the LAST 3 digits of the dialed number (sipp/trunk.xml).
TRUNK_RESULTS = {"486": "486 Busy Here (DialStatus BUSY)",
                 "408": "180, never answers (DialStatus NOANSWER when C2C_DIAL_TIMEOUT expires)",
                 "503": "503 Service Unavailable (DialStatus CONGESTION, cause 34)",
                 "404": "404 Not Found (DialStatus NOANSWER on Asterisk 22, cause 1)",
                 "183": "183 Session Progress with SDP, no 180, never answers (NOANSWER at C2C_DIAL_TIMEOUT)",
                 "999": "no response at all to the INVITE (NOANSWER at C2C_DIAL_TIMEOUT)",
                 "800": "180, 200 after ~1 s, trunk sends BYE ~8 s later (DialStatus ANSWER)",
                 "700": "180, 200 after ~1 s, then talks (a tone as RTP) until BYE, ~60 s at most (ANSWER)",
                 "other": "180, 200 after ~1 s, trunk sends BYE ~3 s later (DialStatus ANSWER)"}


def password(ext):
    return f"pass{ext}"


def group_of(ext):
    for group, exts in PHONE_GROUPS.items():
        if ext in exts:
            return group
    raise RigError(f"extension {ext} has no SIP peer (registered extensions: "
                   f"{', '.join(e for e in EXTENSIONS if e not in UNREGISTERED)})")
