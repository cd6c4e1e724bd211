"""The phone and trunk plan every instance gets: extensions by behaviour, hotlines, trunk
results, AMI users.  One table, so the config renderer, the CLI and the tests agree."""

import os

from .errors import RigError

AMI_USER = "c2c"
AMI_SECRET = os.environ.get("C2C_RIG_AMI_SECRET", "change-me")
RIG_USER, RIG_SECRET = "rig", "rig-internal"

# behaviour group -> extensions; one sipp UAS per group (Request-URI user = extension).
PHONE_GROUPS = {
    "answer": ["101", "105", "106"] + [str(e) for e in range(201, 231)],
    "busy": ["102"],
    "noanswer": ["103", "107", "108", "109"],
}
UNREGISTERED = ["104"]                 # in pjsip.conf, never registered: UNAVAILABLE
EXTENSIONS = sorted(PHONE_GROUPS["answer"] + PHONE_GROUPS["busy"] + PHONE_GROUPS["noanswer"]
                    + UNREGISTERED)
BEHAVIOUR = {"answer": "rings ~0.5 s, answers, stays up until BYE",
             "busy": "rejects with 486 Busy Here",
             "noanswer": "rings, never answers (CANCEL: 200 + 487)",
             "unregistered": "never registered (UNAVAILABLE)"}
HOTLINES = {"02873001234": "hotline-trunk", "02873005678": "hotline-trunk-2"}
TRUNKS = list(HOTLINES.values())
# Trunk answer by the LAST 3 digits of the dialed number (sipp/trunk.xml).
TRUNK_RESULTS = {"486": "486 Busy Here (DialStatus BUSY)",
                 "408": "180, never answers (DialStatus NOANSWER when C2C_DIAL_TIMEOUT expires)",
                 "503": "503 Service Unavailable (DialStatus CONGESTION, cause 34)",
                 "404": "404 Not Found (DialStatus NOANSWER on Asterisk 22, cause 1)",
                 "800": "180, 200 after ~1 s, trunk sends BYE ~8 s later (DialStatus ANSWER)",
                 "other": "180, 200 after ~1 s, trunk sends BYE ~3 s later (DialStatus ANSWER)"}


def password(ext):
    return f"pass{ext}"


def group_of(ext):
    for group, exts in PHONE_GROUPS.items():
        if ext in exts:
            return group
    raise RigError(f"extension {ext} has no SIP peer (registered extensions: "
                   f"{', '.join(e for e in EXTENSIONS if e not in UNREGISTERED)})")
