"""c2c-ami's real-Asterisk test rig: a real Asterisk with sipp phones and carrier trunks on
loopback, so tests exercise the gateway against true SIP and AMI behaviour.  Stdlib only.

The public API tests and benches use is re-exported here (`import c2c_rig`); the pytest
fixtures are in `c2c_rig.fixtures` (not imported here: the package itself needs no pytest).
"""

from .ami import Ami
from .errors import RigError
from .install import install
from .instance import MAX_OFFSET, Ports, Rig, all_instances, busy_ports, free_offset, port_free
from .plan import (
    AMI_READ_ALL_USER,
    AMI_SECRET,
    AMI_USER,
    BEHAVIOUR,
    DEFAULT_DRIVER,
    DRIVERS,
    EXTENSIONS,
    HOTLINES,
    NO_CALLCOUNTER,
    PHONE_GROUPS,
    QUALIFIED,
    SOFTPHONE,
    TRUNK_RESULTS,
    TRUNKS,
    UNREGISTERED,
    group_of,
    password,
    ready_state,
)
from .runtime import CACHE_DIR, load_runtime
from .sip_trace import Headers, SipMessage, parse_name_addr, read_trace, uri_user
from .watch import AmiWatch

__all__ = [
    "AMI_READ_ALL_USER", "AMI_SECRET", "AMI_USER", "BEHAVIOUR", "CACHE_DIR",
    "DEFAULT_DRIVER", "DRIVERS", "EXTENSIONS", "HOTLINES",
    "MAX_OFFSET", "NO_CALLCOUNTER", "PHONE_GROUPS", "QUALIFIED", "SOFTPHONE", "TRUNKS", "TRUNK_RESULTS", "UNREGISTERED",
    "Ami", "AmiWatch", "Headers", "Ports", "Rig", "RigError", "SipMessage",
    "all_instances", "busy_ports", "free_offset", "group_of", "install", "load_runtime", "parse_name_addr",
    "password", "port_free", "read_trace", "ready_state", "uri_user",
]
