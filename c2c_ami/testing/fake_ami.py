"""In-process fake Asterisk Manager Interface server (stdlib only).

It imitates what Asterisk 16/22 put on the AMI socket for the actions the gateway uses
(Login, Ping, Getvar DEVICE_STATE / CHANNELS / SIPCALLID / CHANNEL(pjsip,call-id), Originate,
Hangup, CoreShowChannels, Logoff), with the event sequences
measured on the real rig (Asterisk 16.28 and 22.10), so that the gateway's unit tests,
fault-injection tests and benchmarks can run without a PBX.

It also parses input the way Asterisk's manager.c does (lines end at CRLF *or* a bare LF,
a NUL truncates a line, first repeated header wins, ``Variable`` accumulates, at most 128
headers, lines of 1024+ bytes are dumped in 1024-byte chunks) and records every byte it
receives, so tests can prove that nothing injected ever reached the socket.

Event sequences after the immediate ``Response: Success / Originate successfully queued``
(EXT = the originated channel, Uniqueid = Linkedid = ChannelId or ``1700000000.N``;
TRUNK = the leg Dial() creates, own Uniqueid, Linkedid = EXT's; OR = OriginateResponse,
whose Channel is the requested ``PJSIP/101``, not the channel name):

- answer:        Newchannel(EXT, Down) → Newstate(EXT, Ringing) → [ring_delay] →
                 Newstate(EXT, Up) → OR Success Reason 4 → with dial='trunk':
                 Newchannel(TRUNK) → DialBegin → Newstate(TRUNK, Ringing) → DialState RINGING
                 → [dial_delay] → ANSWER: Newstate(TRUNK, Up) → DialEnd ANSWER → [talk_time]
                 → Hangup(TRUNK, 16) → Hangup(EXT, 16); other status: DialEnd <status> →
                 Hangup(TRUNK, c) → Hangup(EXT, c), c = 17 BUSY / 19 NOANSWER /
                 34 CONGESTION / 20 CHANUNAVAIL / 16 CANCEL.  With dial='none':
                 [talk_time] → Hangup(EXT, 16).  talk_time=None: up until a Hangup action.
- reject:        Newchannel → Newstate Ringing → [ring_delay] → Hangup 17 → OR Failure 0
- no_answer:     Newchannel → Newstate Ringing → [Timeout] → Hangup 19 → OR Failure 3
- unregistered:  OR Failure 0, no channel events (also for a ChannelId already live)
- busy_reason5:  Newchannel → Hangup 17 → OR Failure 5
- congestion:    Newchannel → Hangup 34 → OR Failure 8
- silent:        nothing after the ack
- Hangup action: ringing → Hangup(that, cause) → OR Failure 1; trunk ringing →
                 DialEnd CANCEL (or the cause's status) → Hangup(that, cause) → Hangup(other,
                 16); up → Hangup(that, cause) → Hangup(other, 16).
Bridge*/VarSet/DeviceStateChange/Newexten events are not produced.

Getvar: ``DEVICE_STATE(dev)`` from ``device_states``; ``CHANNELS(regex)`` the live channels
whose name matches (POSIX-like, case-insensitive, space-separated; ``add_channel`` adds one
the gateway did not place, e.g. the phone's own call); on a channel, the SIP Call-ID from
``sip_call_ids`` where its driver keeps it (``CHANNEL(pjsip,call-id)`` on PJSIP/,
``SIPCALLID`` on SIP/; the other one, or any other item, is Success with an empty Value, as
Asterisk answers after logging "Unknown or unavailable item requested"). A function named
in ``refused_functions`` is answered with an Error (an older Asterisk, or no permission).

Phones and the PBX's own configuration, for the agent monitor and the PBX check (each
answer as Asterisk 16/22 word it): ``register_phone(device, user_agent, address)`` /
``unregister_phone(device)`` send what a REGISTER (or its expiry) makes Asterisk send --
PJSIP: ``PeerStatus Reachable``, ``DeviceStateChange NOT_INUSE``, ``ContactStatus
NonQualified`` (``Unreachable``, ``Removed``, ``UNAVAILABLE`` when it goes); chan_sip:
``PeerStatus Registered`` with ``Address`` (``Unregistered``, ``Cause: Expired``) and the
``DeviceStateChange``. ``DeviceStateList`` lists ``device_states``; ``Getvar``
``PJSIP_ENDPOINT(ep,aors)``, ``PJSIP_AOR(aor,contact)``, ``PJSIP_CONTACT(id,user_agent|
via_addr|uri)`` and ``SIPshowpeer`` read the registered phones. ``Setvar`` of
``DEVICE_STATE(Custom:x)`` sends its ``DeviceStateChange`` (class call). ``ShowDialPlan``
reads ``dialplan`` (context -> [(pattern, priority, application, data)], Asterisk's pattern
matching), ``ModuleCheck`` ``modules``, ``ListCommands`` the actions the user's ``write``
classes allow (each action's classes are Asterisk's); any other action outside them is
``Permission denied``. With ``device_state_events`` a click-to-call's extension sends its
``DeviceStateChange`` (RINGING, INUSE, NOT_INUSE) as Asterisk does.

Run standalone for benchmarks: ``python -m c2c_ami.testing.fake_ami --port 5038``.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ['AmiAction', 'Behaviour', 'FakeAmiServer', 'FakeChannel', 'FakePhone', 'main']

# Each action's write classes, as Asterisk registers them (manager.c, chan_sip.c, pbx.c...);
# a user may run it if its write= shares one of them (None: anyone logged in).
ACTION_CLASSES: dict[str, frozenset[str] | None] = {
    'login': None, 'logoff': None, 'ping': None, 'listcommands': None, 'events': None,
    'originate': frozenset({'originate'}), 'getvar': frozenset({'call', 'reporting'}),
    'setvar': frozenset({'call'}), 'hangup': frozenset({'system', 'call'}),
    'coreshowchannels': frozenset({'system', 'reporting'}), 'coresettings': frozenset({'system', 'reporting'}),
    'devicestatelist': frozenset({'call', 'reporting'}), 'showdialplan': frozenset({'config', 'reporting'}),
    'modulecheck': frozenset({'system'}), 'sipshowpeer': frozenset({'system', 'reporting'}),
    'pjsipshowcontacts': frozenset({'system'}), 'pjsipshowendpoint': frozenset({'system'}),
    'mixmonitor': frozenset({'system'}), 'mixmonitormute': frozenset({'system', 'call'}),
    'redirect': frozenset({'call'}),
}
ALL_CLASSES = frozenset({'system', 'call', 'log', 'verbose', 'agent', 'user', 'config', 'command', 'dtmf',
                         'reporting', 'cdr', 'dialplan', 'originate', 'agi', 'cc', 'aoc', 'test',
                         'security', 'message'})
# The rig's dialplan contract (asterisk-test-config/asterisk/extensions.conf).
DEFAULT_DIALPLAN = {'c2c-outbound': [
    ('_X.', 1, 'NoOp', 'click-to-call ${C2C_CALL_ID} ext=${C2C_EXT} hotline=${C2C_HOTLINE}'),
    ('_X.', 2, 'Set', 'CALLERID(num)=${C2C_DEST_CID_NUMBER}'),
    ('_X.', 3, 'Set', 'CALLERID(name)=${C2C_DEST_CID_NAME}'),
    ('_X.', 4, 'Dial', 'PJSIP/${EXTEN}@${C2C_TRUNK},${C2C_DIAL_TIMEOUT}'),
    ('_X.', 5, 'Hangup', ''),
]}
DEFAULT_MODULES = frozenset({
    'app_dial.so', 'pbx_config.so', 'func_devstate.so', 'func_channel.so', 'res_manager_devicestate.so',
    'chan_pjsip.so', 'res_pjsip.so', 'res_pjsip_session.so', 'res_pjsip_header_funcs.so',
    'func_pjsip_endpoint.so', 'func_pjsip_aor.so', 'func_pjsip_contact.so',
    'app_chanspy.so', 'app_mixmonitor.so', 'res_musiconhold.so'})

BEHAVIOURS = ('answer', 'reject', 'no_answer', 'unregistered', 'busy_reason5',
              'congestion', 'silent')
DIAL_STATUSES = ('ANSWER', 'BUSY', 'NOANSWER', 'CONGESTION', 'CHANUNAVAIL', 'CANCEL')
CAUSE_TEXT = {0: 'Unknown', 1: 'Unallocated (unassigned) number', 16: 'Normal Clearing',
              17: 'User busy', 19: 'User alerting, no answer', 20: 'Subscriber absent',
              21: 'Call Rejected', 34: 'Circuit/channel congestion'}
# Hangup cause of both legs when Dial() ends with this status.
DIAL_STATUS_CAUSE = {'ANSWER': 16, 'BUSY': 17, 'NOANSWER': 19, 'CONGESTION': 34,
                     'CHANUNAVAIL': 20, 'CANCEL': 16}
STATE_DESC = {0: 'Down', 4: 'Ring', 5: 'Ringing', 6: 'Up'}
MAX_HEADERS = 128          # AST_MAX_MANHEADERS
_BLANKS = ''.join(map(chr, range(1, 33)))   # what ast_skip_blanks() skips
_DEVICE_STATE = re.compile(r'DEVICE_STATE\((.*)\)\Z', re.IGNORECASE)
_CHANNELS = re.compile(r'CHANNELS\((.*)\)\Z', re.IGNORECASE)
_FUNCTION_NAME = re.compile(r'([A-Za-z_]+)\(')
_PJSIP_FUNCTION = re.compile(r'(PJSIP_ENDPOINT|PJSIP_AOR|PJSIP_CONTACT)\(([^,]*),([^)]*)\)\Z', re.IGNORECASE)
_ACTION_NAMES = ('Login', 'Logoff', 'Ping', 'ListCommands', 'Events', 'Originate', 'Getvar', 'Setvar', 'Hangup',
                 'CoreShowChannels', 'CoreSettings', 'DeviceStateList', 'ShowDialPlan', 'ModuleCheck',
                 'SIPshowpeer', 'Redirect', 'MixMonitor', 'MixMonitorMute')
# Where each channel driver keeps the SIP Call-ID: the Getvar variable, by technology.
_SIP_CALL_ID_ITEM = {'PJSIP': 'CHANNEL(pjsip,call-id)', 'SIP': 'SIPCALLID'}
_DEFAULT_FLOOD_TEMPLATE = (
    b'Event: Newstate\r\nPrivilege: call,all\r\nChannel: PJSIP/flood-{n}\r\n'
    b'ChannelState: 5\r\nChannelStateDesc: Ringing\r\nCallerIDNum: 0612345678\r\n'
    b'CallerIDName: Flood\r\nConnectedLineNum: 0612345678\r\nConnectedLineName: Flood\r\n'
    b'Language: en\r\nAccountCode: \r\nContext: from-internal\r\nExten: s\r\nPriority: 1\r\n'
    b'Uniqueid: 1600000000.{n}\r\nLinkedid: 1600000000.{n}\r\n\r\n')


@dataclass
class Behaviour:
    """How a scripted endpoint reacts to an Originate (see the module's sequences).

    ``talk_time=None`` keeps an answered call up until a Hangup action;
    ``ring_timeout=None`` (no_answer) uses the Originate ``Timeout`` header (ms);
    ``hangup_cause`` overrides the no_answer cause (19 on Asterisk 22, 0 on 16).
    """
    kind: str = 'answer'
    ring_delay: float = 0.0
    dial: str = 'trunk'            # 'trunk': dialplan Dial()s the trunk; 'none': no Dial
    dial_status: str = 'ANSWER'
    dial_delay: float = 0.0        # trunk ringing time before DialEnd
    talk_time: float | None = 0.0
    ring_timeout: float | None = None
    hangup_cause: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in BEHAVIOURS:
            raise ValueError(f'unknown behaviour {self.kind!r}, expected one of {BEHAVIOURS}')
        if self.dial not in ('trunk', 'none'):
            raise ValueError(f"dial must be 'trunk' or 'none', not {self.dial!r}")
        if self.dial_status not in DIAL_STATUSES:
            raise ValueError(f'unknown dial_status {self.dial_status!r}')


class AmiAction(dict):
    """One received action as Asterisk sees it.

    Keys keep the case of their first occurrence and are looked up case-insensitively;
    the first of repeated headers wins, except ``Variable`` (always a list).
    ``pairs`` is every (key, value) in order, ``lines`` every decoded line.
    """

    def __init__(self, lines: list[str], conn_id: int):
        super().__init__()
        self.lines = lines
        self.conn_id = conn_id
        self.pairs: list[tuple[str, str]] = []
        self._keys: dict[str, str] = {}
        for line in lines:
            key, sep, value = line.partition(':')
            if not sep:
                continue           # Asterisk keeps it but no lookup can ever match it
            value = value.lstrip(_BLANKS)
            self.pairs.append((key, value))
            lower = key.lower()
            if lower not in self._keys:
                self._keys[lower] = key
                dict.__setitem__(self, key, [value] if lower == 'variable' else value)
            elif lower == 'variable':
                dict.__getitem__(self, self._keys[lower]).append(value)

    def __getitem__(self, key: str) -> Any:
        return dict.__getitem__(self, self._keys.get(key.lower(), key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._keys

    def get(self, key: str, default: Any = None) -> Any:
        real = self._keys.get(key.lower())
        return default if real is None else dict.__getitem__(self, real)

    @property
    def name(self) -> str:
        return self.get('Action', '')

    @property
    def variables(self) -> list[tuple[str, str]]:
        """Channel variables as Asterisk sets them: each Variable line split on commas."""
        out = []
        for item in self.get('Variable', []):
            for part in _split_app_args(item):
                name, _, value = part.partition('=')
                out.append((name, value))
        return out


def _split_app_args(text: str) -> list[str]:
    """Simplified ast_app_separate_args(): commas split, except inside quotes/brackets."""
    parts, cur, depth, quoted, escaped = [], [], 0, False, False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == '\\':
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in '([':
            depth += 1
            cur.append(ch)
        elif not quoted and ch in ')]' and depth:
            depth -= 1
            cur.append(ch)
        elif ch == ',' and not quoted and not depth:
            parts.append(''.join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append(''.join(cur))
    return parts


def _parse_callerid(text: str) -> tuple[str, str]:
    """(name, number) like ast_callerid_parse: number from the last <...>, quotes stripped."""
    text = text.strip()
    lt = text.rfind('<')
    gt = text.find('>', lt + 1) if lt >= 0 else -1
    if lt >= 0 and gt > lt:
        return text[:lt].strip().strip('"').strip(), text[lt + 1:gt].strip()
    if text and all(c.isdigit() or c in '+*#' for c in text):
        return '', text
    return text.strip('"'), ''


@dataclass(eq=False)
class FakeChannel:
    """A live fake channel; ``snapshot()`` renders Asterisk's channel-state header block."""
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: str = '1'
    state: int = 0
    cid_num: str = ''
    cid_name: str = ''
    conn_num: str = ''
    conn_name: str = ''
    call: Any = field(default=None, repr=False)

    def snapshot(self, prefix: str = '') -> str:
        p = prefix
        return (f'{p}Channel: {self.name}\r\n{p}ChannelState: {self.state}\r\n'
                f'{p}ChannelStateDesc: {STATE_DESC.get(self.state, "Unknown")}\r\n'
                f'{p}CallerIDNum: {self.cid_num or "<unknown>"}\r\n'
                f'{p}CallerIDName: {self.cid_name or "<unknown>"}\r\n'
                f'{p}ConnectedLineNum: {self.conn_num or "<unknown>"}\r\n'
                f'{p}ConnectedLineName: {self.conn_name or "<unknown>"}\r\n'
                f'{p}Language: en\r\n{p}AccountCode: \r\n{p}Context: {self.context}\r\n'
                f'{p}Exten: {self.exten}\r\n{p}Priority: {self.priority}\r\n'
                f'{p}Uniqueid: {self.uniqueid}\r\n{p}Linkedid: {self.linkedid}\r\n')


@dataclass
class FakePhone:
    """A registered phone: its contact as PJSIP_CONTACT / SIPshowpeer tell it."""
    device: str
    user_agent: str = ''
    address: str = '127.0.0.1'
    port: int = 5060

    @property
    def name(self) -> str:
        return self.device.partition('/')[2]

    @property
    def contact_id(self) -> str:
        return f'{self.name};@{abs(hash((self.name, self.port))):032x}'[:len(self.name) + 34]

    @property
    def uri(self) -> str:
        return f'sip:{self.name}@{self.address}:{self.port}'


@dataclass(eq=False)
class _Call:
    action: AmiAction
    endpoint: str
    behaviour: Behaviour
    channel_id: str
    timeout: float
    cid_name: str
    cid_num: str
    ext: FakeChannel | None = None
    trunk: FakeChannel | None = None
    phase: str = 'new'        # new → ringing → (dialing →) up → done
    task: asyncio.Task | None = None


def _encode(text: str) -> bytes:
    return text.encode('utf-8', 'surrogateescape')


def _set_event_mask(conn: _Connection, mask: str) -> None:
    """manager.c's strings_to_mask: on/yes/true -> every class, off/no/false -> none, else a
    comma-separated list of class names."""
    mask = mask.strip().lower()
    if mask in ('on', 'yes', 'true', 'y', '1'):
        conn.event_classes = None
    elif mask in ('off', 'no', 'false', 'n', '0'):
        conn.event_classes = frozenset()
    else:
        conn.event_classes = frozenset(c.strip() for c in mask.split(','))
    conn.events = conn.event_classes is None or bool(conn.event_classes)


def _class_of(event: bytes) -> str:
    """An event's class: the first word of its ``Privilege`` header (``call`` of ``call,all``)."""
    start = event.find(b'Privilege: ')
    if start < 0:
        return 'call'
    start += len('Privilege: ')
    end = min(i for i in (event.find(b',', start), event.find(b'\r', start), len(event)) if i >= 0)
    return event[start:end].decode('ascii', 'replace').lower()


def _encode_event(event: dict | bytes | str) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return _encode(event)
    lines = []
    for key, value in event.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            lines.append(f'{key}: {v}\r\n')
    return _encode(''.join(lines) + '\r\n')


class _Connection(asyncio.Protocol):
    """One AMI session: records bytes, splits lines like Asterisk, hands actions over."""

    def __init__(self, server: FakeAmiServer):
        self.server = server
        self.id = server._next_conn_id()
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.logged_in = False
        self.events = True
        self.event_classes: frozenset[str] | None = None   # the session's mask (None: every class)
        self.closed = asyncio.get_running_loop().create_future()
        self._pending = b''
        self._headers: list[bytes] = []
        self._paused = False
        self._drain: asyncio.Future | None = None

    def connection_made(self, transport):
        self.transport = transport
        self.server._connections.append(self)
        if not self.server.silent:
            self.write(_encode(self.server.banner + '\r\n'))
        self.server._notify()

    def connection_lost(self, exc):
        srv = self.server
        if self in srv._connections:
            srv._connections.remove(self)
        self.logged_in = False
        srv._refresh_event_conns()
        for fut in (self.closed, self._drain):
            if fut is not None and not fut.done():
                fut.set_result(None)
        srv._notify()

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        if self._paused and not self.closed.done():
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        srv = self.server
        srv.received_bytes += data
        self.received += data
        limit = srv.max_line_len
        lines = (self._pending + data).split(b'\n') if self._pending else data.split(b'\n')
        pending = lines.pop()
        if limit and len(pending) >= limit:          # "Dumping long line with no return"
            pending = pending[len(pending) // limit * limit:]
        self._pending = pending
        for raw in lines:
            if limit and len(raw) >= limit:
                raw = raw[len(raw) // limit * limit:]
            if raw.endswith(b'\r'):
                raw = raw[:-1]
            nul = raw.find(b'\0')
            if nul >= 0:
                raw = raw[:nul]                      # C strings: NUL ends the line
            if raw:
                if len(self._headers) < MAX_HEADERS:
                    self._headers.append(raw)
            elif self._headers:
                lines_ = [h.decode('utf-8', 'surrogateescape') for h in self._headers]
                self._headers = []
                srv._on_action(self, AmiAction(lines_, self.id))
                if self.transport is None or self.transport.is_closing():
                    return


class FakeAmiServer:
    """Fake Asterisk AMI endpoint with scripted endpoints and fault injection.

    Tests control: ``behaviours`` (Channel header → Behaviour), ``default_behaviour``,
    ``device_states`` (device → DEVICE_STATE value), ``sip_call_ids`` (channel name →
    SIP Call-ID), ``refused_functions`` (e.g. ``{'CHANNELS'}``), ``add_channel``,
    ``reject_logins``, ``silent``.
    Tests observe: ``received_bytes``, ``received_actions``, ``live_channels``.
    """

    def __init__(self, username: str = 'c2c', secret: str = 'change-me',
                 host: str = '127.0.0.1', port: int = 0, *,
                 default_behaviour: Behaviour | None = None,
                 banner: str = 'Asterisk Call Manager/7.0.0',
                 trunk: str = 'PJSIP/trunk', endpoint_context: str = 'from-internal',
                 default_device_state: str = 'INVALID', fully_booted: bool = True,
                 uniqueid_base: int = 1700000000, max_line_len: int | None = 1024):
        self.username, self.secret, self.host, self.port = username, secret, host, port
        self.default_behaviour = default_behaviour or Behaviour()
        self.behaviours: dict[str, Behaviour] = {}
        self.device_states: dict[str, str] = {}
        self.sip_call_ids: dict[str, str] = {}
        self.refused_functions: set[str] = set()
        self.default_device_state = default_device_state
        self.banner, self.trunk, self.endpoint_context = banner, trunk, endpoint_context
        self.fully_booted = fully_booted     # False: like a user without read=system
        self.uniqueid_base, self.max_line_len = uniqueid_base, max_line_len
        self.reject_logins = False
        self.silent = False
        self.write_classes: frozenset[str] = ALL_CLASSES   # the AMI user's write= (manager.conf)
        self.phones: dict[str, FakePhone] = {}             # registered phones, by device
        self.dialplan: dict[str, list[tuple[str, int, str, str]]] = {
            context: list(lines) for context, lines in DEFAULT_DIALPLAN.items()}
        self.modules: set[str] = set(DEFAULT_MODULES)
        self.device_state_events = False    # a call's extension sends DeviceStateChange
        self.received_bytes = bytearray()
        self.received_actions: list[AmiAction] = []
        self.live_channels: dict[str, FakeChannel] = {}
        self.events_emitted = 0
        self._by_name: dict[str, list[AmiAction]] = {}
        self._live_uids: set[str] = set()
        self._connections: list[_Connection] = []
        self._event_conns: list[_Connection] = []
        self._tasks: set[asyncio.Task] = set()
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future]] = []
        self._server: asyncio.AbstractServer | None = None
        self._uid_seq = self._chan_seq = self._conn_seq = 0
        self._handlers = {'login': self._act_login, 'logoff': self._act_logoff,
                          'ping': self._act_ping, 'getvar': self._act_getvar,
                          'originate': self._act_originate, 'hangup': self._act_hangup,
                          'coreshowchannels': self._act_coreshowchannels,
                          'devicestatelist': self._act_devicestatelist, 'sipshowpeer': self._act_sipshowpeer,
                          'listcommands': self._act_listcommands, 'showdialplan': self._act_showdialplan,
                          'modulecheck': self._act_modulecheck, 'setvar': self._act_setvar,
                          'redirect': self._act_channel_ok, 'mixmonitor': self._act_channel_ok,
                          'mixmonitormute': self._act_channel_ok,
                          'events': self._act_events}

    # ---- life cycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (again) on ``port``; after the first start it is the real bound port."""
        await self.resume_accepting()

    async def stop(self, shutdown_event: bool = False) -> None:
        """Asterisk going away: stop listening, close every session (FIN, like a dying
        process; with ``shutdown_event`` first broadcast ``Shutdown`` like a clean stop),
        forget all channels."""
        if shutdown_event:
            self._broadcast(b'Event: Shutdown\r\nPrivilege: system,all\r\n'
                            b'Shutdown: Cleanly\r\nRestart: False\r\n\r\n')
        await self.pause_accepting()
        await self.drop_connections(reset=False)
        for task in list(self._tasks):
            task.cancel()
        self.live_channels.clear()
        self._live_uids.clear()
        self._notify()

    async def pause_accepting(self) -> None:
        """Close the listening socket (new connects are refused); sessions stay up."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def resume_accepting(self) -> None:
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(
                lambda: _Connection(self), self.host, self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> FakeAmiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- fault injection --------------------------------------------------------------
    async def drop_connections(self, reset: bool = True) -> None:
        """Close every client socket at once, unsent data discarded, and wait until they
        are gone: ``reset`` sends a TCP RST (peer sees ECONNRESET), else a FIN (EOF)."""
        conns = list(self._connections)
        for conn in conns:
            if conn.transport is None:
                continue
            sock = conn.transport.get_extra_info('socket')
            if reset and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            conn.transport.abort()
        if conns:
            await asyncio.gather(*(c.closed for c in conns))

    def go_silent(self, silent: bool = True) -> None:
        """A hung PBX: sockets stay open and input is recorded, but nothing is answered
        or processed and no banner/event is sent (events produced meanwhile are lost)."""
        self.silent = silent

    def send_garbage(self, data: bytes) -> None:
        """Write raw bytes to every connection, logged in or not."""
        for conn in list(self._connections):
            conn.write(data)

    def emit_event(self, event: dict | bytes | str) -> None:
        """Broadcast one raw event (a dict is rendered ``Key: value`` in its order)."""
        self._broadcast(_encode_event(event))

    async def flood(self, events: int | Iterable[bytes | dict], template: bytes | str | None = None,
                    *, batch: int = 500) -> int:
        """Send many events to every event session, honouring TCP back-pressure.

        ``events`` is a count (then ``template`` with ``{n}`` replaced by 0..count-1,
        default a ~420-byte Newstate) or an iterable of events. Returns how many were sent.
        """
        if isinstance(events, int):
            tpl = _encode_event(template) if template is not None else _DEFAULT_FLOOD_TEMPLATE
            events = (tpl.replace(b'{n}', str(i).encode()) for i in range(events))
        sent, chunk = 0, []
        for event in events:
            chunk.append(_encode_event(event))
            if len(chunk) >= batch:
                sent += await self._flood_chunk(chunk)
                chunk = []
        if chunk:
            sent += await self._flood_chunk(chunk)
        return sent

    async def _flood_chunk(self, chunk: list[bytes]) -> int:
        if self.silent:
            return 0
        data = b''.join(chunk)
        conns = list(self._event_conns)
        for conn in conns:
            conn.write(data)
        for conn in conns:
            await conn.drain()
        self.events_emitted += len(chunk)
        return len(chunk)

    # ---- observation ------------------------------------------------------------------
    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def logged_in_count(self) -> int:
        return sum(1 for c in self._connections if c.logged_in)

    @property
    def scheduled_calls(self) -> int:
        """Originates whose script still has a timer pending (ringing, dialing, talking)."""
        return len(self._tasks)

    def forget_received(self) -> None:
        """Start the record of received actions and bytes afresh (e.g. after a gateway's
        start-up work: its check and snapshot are not what a test's request sent)."""
        self.received_actions.clear()
        self._by_name.clear()
        self.received_bytes.clear()

    def actions_named(self, name: str) -> list[AmiAction]:
        return list(self._by_name.get(name.lower(), ()))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 2.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every server change) and
        return its value; raises TimeoutError after ``timeout`` seconds."""
        value = predicate()
        if value:
            return value
        fut = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.remove(entry)

    async def wait_for_action(self, name: str, timeout: float = 2.0, *, count: int = 1,
                              where: Callable[[AmiAction], bool] | None = None) -> AmiAction:
        """Return the ``count``-th received action called ``name`` (matching ``where``)."""
        def found():
            matches = self._by_name.get(name.lower(), [])
            if where is not None:
                matches = [a for a in matches if where(a)]
            return matches[count - 1] if len(matches) >= count else None
        return await self.wait_for(found, timeout)

    async def wait_logged_in(self, timeout: float = 2.0, count: int = 1) -> int:
        return await self.wait_for(lambda: self.logged_in_count >= count and self.logged_in_count,
                                   timeout)

    def _notify(self) -> None:
        for predicate, fut in list(self._waiters):
            if fut.done():
                continue
            try:
                value = predicate()
            except Exception as exc:   # surface predicate bugs in the test, not here
                fut.set_exception(exc)
                continue
            if value:
                fut.set_result(value)

    # ---- plumbing ---------------------------------------------------------------------
    def _next_conn_id(self) -> int:
        self._conn_seq += 1
        return self._conn_seq

    def _next_uniqueid(self) -> str:
        uid = f'{self.uniqueid_base}.{self._uid_seq}'
        self._uid_seq += 1
        return uid

    def _refresh_event_conns(self) -> None:
        self._event_conns = [c for c in self._connections if c.logged_in and c.events]

    def _broadcast(self, data: bytes) -> None:
        """Events go to every logged-in session that asked for events (like Asterisk)."""
        if self.silent:
            return
        self.events_emitted += 1
        event_class = None
        for conn in self._event_conns:
            if conn.event_classes is not None:
                if event_class is None:
                    event_class = _class_of(data)
                if event_class not in conn.event_classes:
                    continue
            conn.write(data)

    def _respond(self, conn: _Connection, action: AmiAction, response: str,
                 message: str | None = None, fields: Iterable[tuple[str, str]] = ()) -> None:
        out = [f'Response: {response}\r\n']
        if action.get('ActionID'):
            out.append(f'ActionID: {action["ActionID"]}\r\n')
        if message is not None:
            out.append(f'Message: {message}\r\n')
        out.extend(f'{k}: {v}\r\n' for k, v in fields)
        out.append('\r\n')
        conn.write(_encode(''.join(out)))

    def _on_action(self, conn: _Connection, action: AmiAction) -> None:
        self.received_actions.append(action)
        self._by_name.setdefault(action.name.lower(), []).append(action)
        if not self.silent:
            name = action.name.lower()
            if not name:
                self._respond(conn, action, 'Error', 'Missing action in request')
            elif (not conn.logged_in and name not in ('login', 'logoff')) or not self._permitted(name):
                self._respond(conn, action, 'Error', 'Permission denied')
            elif name in self._handlers:
                self._handlers[name](conn, action)
            else:
                self._respond(conn, action, 'Error', f'Invalid/unknown command: {action.name}. '
                              'Use Action: ListCommands to show available commands.')
        self._notify()

    # ---- actions ----------------------------------------------------------------------
    def _act_login(self, conn: _Connection, a: AmiAction) -> None:
        if conn.logged_in:
            self._respond(conn, a, 'Success', 'Already authenticated')
            return
        ok = (not self.reject_logins and a.get('Secret') == self.secret
              and (a.get('Username') or '').lower() == self.username.lower())
        if not ok:
            self._respond(conn, a, 'Error', 'Authentication failed')
            conn.close()                      # Asterisk ends the session
            return
        conn.logged_in = True
        _set_event_mask(conn, a.get('Events') or 'on')
        self._refresh_event_conns()
        self._respond(conn, a, 'Success', 'Authentication accepted')
        if self.fully_booted and conn.events:
            conn.write(b'Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\n'
                       b'LastReload: 5\r\nStatus: Fully Booted\r\n\r\n')

    def _act_events(self, conn: _Connection, a: AmiAction) -> None:
        _set_event_mask(conn, a.get('EventMask') or 'off')
        self._refresh_event_conns()
        self._respond(conn, a, 'Success' if conn.events else 'Events Off')

    def _act_logoff(self, conn: _Connection, a: AmiAction) -> None:
        self._respond(conn, a, 'Goodbye', 'Thanks for all the fish.')
        conn.close()

    def _act_ping(self, conn: _Connection, a: AmiAction) -> None:
        self._respond(conn, a, 'Success', None, [('Ping', 'Pong'),
                                                 ('Timestamp', '1700000000.000000')])

    def _act_getvar(self, conn: _Connection, a: AmiAction) -> None:
        variable = a.get('Variable')
        variable = variable[0] if variable else ''
        if not variable:
            self._respond(conn, a, 'Error', 'No variable specified')
            return
        if a.get('Channel') and a['Channel'] not in self.live_channels:
            self._respond(conn, a, 'Error', 'No such channel')
            return
        function = _FUNCTION_NAME.match(variable)
        if function and function.group(1).upper() in self.refused_functions:
            self._respond(conn, a, 'Error', 'GetVar Access Forbidden: Variable')
            return
        value = self._getvar_value(a.get('Channel') or '', variable)
        self._respond(conn, a, 'Success', None, [('Variable', variable), ('Value', value)])

    def _getvar_value(self, channel: str, variable: str) -> str:
        pjsip = _PJSIP_FUNCTION.match(variable)
        if pjsip and not channel:
            return self._pjsip_value(*pjsip.groups())
        if channel:
            wanted = _SIP_CALL_ID_ITEM.get(channel.partition('/')[0])
            return self.sip_call_ids.get(channel, '') if variable == wanted else ''
        m = _DEVICE_STATE.match(variable)
        if m:
            return self.device_states.get(m.group(1), self.default_device_state)
        m = _CHANNELS.match(variable)
        if m:
            try:
                pattern = re.compile(m.group(1))     # regcomp(REG_EXTENDED): case matters
            except re.error:
                return ''                 # Asterisk logs the bad regex and answers empty
            return ' '.join(name for name in self.live_channels if pattern.search(name))
        return ''

    # ---- phones, and the PBX's configuration (monitor, check) ------------------------------
    def register_phone(self, device: str, user_agent: str = '', address: str = '127.0.0.1',
                       port: int = 5060) -> FakePhone:
        """A phone registers: its device is NOT_INUSE, with what Asterisk sends of it."""
        phone = self.phones[device] = FakePhone(device, user_agent, address, port)
        self.device_states[device] = 'NOT_INUSE'
        if device.upper().startswith('SIP/'):
            self.emit_event({'Event': 'PeerStatus', 'Privilege': 'system,all', 'ChannelType': 'SIP',
                             'Peer': device, 'PeerStatus': 'Registered', 'Address': f'{address}:{port}'})
            self._device_state_event(device, 'NOT_INUSE')
        else:
            self.emit_event({'Event': 'PeerStatus', 'Privilege': 'system,all', 'ChannelType': 'PJSIP',
                             'Peer': device, 'PeerStatus': 'Reachable'})
            self._device_state_event(device, 'NOT_INUSE')
            self._contact_status(phone, 'NonQualified')
        self._notify()
        return phone

    def unregister_phone(self, device: str) -> None:
        """Its registration expires (or an Expires: 0): UNAVAILABLE."""
        phone = self.phones.pop(device, None)
        self.device_states[device] = 'UNAVAILABLE'
        if device.upper().startswith('SIP/'):
            self.emit_event({'Event': 'PeerStatus', 'Privilege': 'system,all', 'ChannelType': 'SIP',
                             'Peer': device, 'PeerStatus': 'Unregistered', 'Cause': 'Expired'})
            self._device_state_event(device, 'UNAVAILABLE')
        else:
            self.emit_event({'Event': 'PeerStatus', 'Privilege': 'system,all', 'ChannelType': 'PJSIP',
                             'Peer': device, 'PeerStatus': 'Unreachable'})
            if phone is not None:
                self._contact_status(phone, 'Removed')
            self._device_state_event(device, 'UNAVAILABLE')
        self._notify()

    def set_device_state(self, device: str, state: str) -> None:
        """The device's state changes (a call the gateway did not place), with its event."""
        self.device_states[device] = state
        self._device_state_event(device, state)

    def _contact_status(self, phone: FakePhone, status: str) -> None:
        self.emit_event({'Event': 'ContactStatus', 'Privilege': 'system,all', 'URI': phone.uri,
                         'ContactStatus': status, 'AOR': phone.name, 'EndpointName': phone.name,
                         'RoundtripUsec': '0'})

    def _device_state_event(self, device: str, state: str) -> None:
        self.emit_event({'Event': 'DeviceStateChange', 'Privilege': 'call,all', 'Device': device,
                         'State': state})

    def _permitted(self, name: str) -> bool:
        classes = ACTION_CLASSES.get(name)
        return classes is None or bool(classes & self.write_classes)

    def _pjsip_value(self, function: str, name: str, field: str) -> str:
        function = function.upper()
        if function == 'PJSIP_ENDPOINT':
            known = f'PJSIP/{name}' in self.device_states or f'PJSIP/{name}' in self.phones
            return name if known and field == 'aors' else ''
        if function == 'PJSIP_AOR':
            phone = self.phones.get(f'PJSIP/{name}')
            return phone.contact_id if phone is not None and field == 'contact' else ''
        phone = next((p for p in self.phones.values() if p.contact_id == name), None)
        if phone is None:
            return ''
        return {'user_agent': phone.user_agent, 'via_addr': phone.address, 'via_port': str(phone.port),
                'uri': phone.uri, 'status': 'NonQualified'}.get(field, '')

    def _act_devicestatelist(self, conn: _Connection, a: AmiAction) -> None:
        action_id = a.get('ActionID') or ''
        self._respond(conn, a, 'Success', 'Device State Changes will follow', [('EventList', 'start')])
        for device, state in self.device_states.items():
            conn.write(_encode(f'Event: DeviceStateChange\r\nActionID: {action_id}\r\nDevice: {device}\r\n'
                               f'State: {state}\r\n\r\n'))
        conn.write(_encode(f'Event: DeviceStateListComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n'
                           f'ListItems: {len(self.device_states)}\r\n\r\n'))

    def _act_sipshowpeer(self, conn: _Connection, a: AmiAction) -> None:
        peer = a.get('Peer') or ''
        device = f'SIP/{peer}'
        if device not in self.device_states and device not in self.phones:
            self._respond(conn, a, 'Error', f'Peer {peer} not found.')
            return
        phone = self.phones.get(device)
        self._respond(conn, a, 'Success', None, [
            ('Channeltype', 'SIP'), ('ObjectName', peer), ('ChanObjectType', 'peer'), ('Dynamic', 'Y'),
            ('Address-IP', phone.address if phone else '(null)'), ('Address-Port', str(phone.port if phone else 0)),
            ('Status', 'Unmonitored' if phone else 'UNKNOWN'),
            ('SIP-Useragent', phone.user_agent if phone else ''),
            ('Reg-Contact', phone.uri if phone else '')])

    def _act_listcommands(self, conn: _Connection, a: AmiAction) -> None:
        lines = []
        for name, handler_name in sorted((n.lower(), n) for n in _ACTION_NAMES):
            classes = ACTION_CLASSES.get(name)
            if classes is None or classes & self.write_classes:
                priv = ','.join(sorted(classes)) + ',all' if classes else '<none>'
                lines.append((handler_name, f'{handler_name} (Priv: {priv})'))
        self._respond(conn, a, 'Success', None, lines)

    def _act_showdialplan(self, conn: _Connection, a: AmiAction) -> None:
        action_id = a.get('ActionID') or ''
        context, exten = a.get('Context') or '', a.get('Extension') or ''
        contexts = [context] if context else list(self.dialplan)
        if context and context not in self.dialplan:
            self._respond(conn, a, 'Error', f'Did not find context {context}')
            return
        found = [(c, line) for c in contexts for line in self.dialplan[c]
                 if not exten or _exten_matches(line[0], exten)]
        if exten and not found:
            self._respond(conn, a, 'Error', f'Did not find extension {exten}@{context}')
            return
        self._respond(conn, a, 'Success', 'DialPlan list will follow', [('EventList', 'start')])
        for c, (pattern, priority, app, data) in found:
            conn.write(_encode(f'Event: ListDialplan\r\nActionID: {action_id}\r\nContext: {c}\r\n'
                               f'Extension: {pattern}\r\nPriority: {priority}\r\nApplication: {app}\r\n'
                               f'AppData: {data}\r\nRegistrar: pbx_config\r\n\r\n'))
        conn.write(_encode(f'Event: ShowDialPlanComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n'
                           f'ListItems: {len(found)}\r\nListExtensions: {len({f[1][0] for f in found})}\r\n'
                           f'ListPriorities: {len(found)}\r\nListContexts: {len({f[0] for f in found})}\r\n\r\n'))

    def _act_modulecheck(self, conn: _Connection, a: AmiAction) -> None:
        module = a.get('Module') or ''
        wanted = module if module.endswith('.so') else f'{module}.so'
        if not module or wanted not in self.modules:
            self._respond(conn, a, 'Error', 'Module not loaded')
            return
        self._respond(conn, a, 'Success', None, [('Version', '')])

    def _act_channel_ok(self, conn: _Connection, a: AmiAction) -> None:
        """Redirect, MixMonitor, MixMonitorMute: Success for a live channel (what they do to
        it is the rig's to show), Error for any other, as Asterisk answers."""
        name = a.get('Channel') or ''
        if name not in self.live_channels:
            self._respond(conn, a, 'Error', 'No such channel')
            return
        self._respond(conn, a, 'Success', 'Redirect successful' if a.name.lower() == 'redirect' else None)

    def _act_setvar(self, conn: _Connection, a: AmiAction) -> None:
        variable, value = (a.get('Variable') or [''])[0], a.get('Value') or ''
        if not variable:
            self._respond(conn, a, 'Error', 'No variable specified')
            return
        self._respond(conn, a, 'Success', 'Variable Set')
        m = _DEVICE_STATE.match(variable)
        if m and m.group(1).startswith('Custom:') and self.device_states.get(m.group(1)) != value.upper():
            self.set_device_state(m.group(1), value.upper())

    def _act_coreshowchannels(self, conn: _Connection, a: AmiAction) -> None:
        """The list Asterisk sends: a Success response, one CoreShowChannel event per live
        channel, then CoreShowChannelsComplete (all carrying the ActionID)."""
        action_id = a.get('ActionID') or ''
        self._respond(conn, a, 'Success', 'Channels will follow', [('EventList', 'start')])
        for chan in self.live_channels.values():
            conn.write(_encode(f'Event: CoreShowChannel\r\nActionID: {action_id}\r\n{chan.snapshot()}'
                               f'Application: AppDial\r\nApplicationData: (Outgoing Line)\r\n'
                               f'Duration: 00:00:01\r\nBridgeId: \r\n\r\n'))
        conn.write(_encode(f'Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n'
                           f'ListItems: {len(self.live_channels)}\r\n\r\n'))

    def _act_hangup(self, conn: _Connection, a: AmiAction) -> None:
        chan = self.live_channels.get(a.get('Channel') or '')
        if chan is None:
            self._respond(conn, a, 'Error', 'No such channel')
            return
        self._respond(conn, a, 'Success', 'Channel Hungup')
        try:
            cause = int(a.get('Cause') or 16)
        except ValueError:
            cause = 16
        self.hang_up(chan.name, cause)

    def hang_up(self, channel: str, cause: int = 16) -> None:
        """End a call from that channel's side (a phone's BYE, or a Hangup action), with the
        events Asterisk sends; a channel that is not live is ignored."""
        chan = self.live_channels.get(channel)
        if chan is None:
            return
        call = chan.call
        if call is None:                 # added by add_channel: no call script to end
            self._hangup(chan, cause)
            return
        if call.task is not None:
            call.task.cancel()
        if call.phase == 'ringing':
            self._hangup(chan, cause)
            self._originate_response(call, 'Failure', 1)
        else:
            if call.phase == 'dialing':
                status = 'CANCEL' if chan is call.ext else next(
                    (s for s, c in DIAL_STATUS_CAUSE.items()
                     if c == cause and s not in ('ANSWER', 'CANCEL')),
                    'CHANUNAVAIL')
                self._dial_event('DialEnd', call, f'DialStatus: {status}\r\n')
            self._hangup(chan, cause)
            for other in (call.trunk, call.ext):
                if other is not None and other is not chan:
                    self._hangup(other, 16)
        call.phase = 'done'
        self._notify()

    def add_channel(self, name: str, state: int = 6) -> FakeChannel:
        """A live channel the gateway did not place (the phone's own call, say), with its
        Newchannel event; ``hang_up(name)`` ends it."""
        uniqueid = self._next_uniqueid()
        chan = FakeChannel(name, uniqueid, uniqueid, self.endpoint_context, 's', state=state)
        self.live_channels[name] = chan
        self._live_uids.add(uniqueid)
        self._channel_event('Newchannel', chan)
        self._notify()
        return chan

    def _act_originate(self, conn: _Connection, a: AmiAction) -> None:
        endpoint = a.get('Channel') or ''
        if not endpoint:
            self._respond(conn, a, 'Error', 'Channel not specified')
            return
        if '/' not in endpoint:
            self._respond(conn, a, 'Error', 'Invalid channel')
            return
        self._respond(conn, a, 'Success', 'Originate successfully queued')
        behaviour = self.behaviours.get(endpoint, self.default_behaviour)
        if behaviour.kind == 'silent':
            return
        try:
            timeout = int(a.get('Timeout') or 30000) / 1000
        except ValueError:
            timeout = 30.0
        cid_name, cid_num = _parse_callerid(a.get('CallerID') or '')
        call = _Call(a, endpoint, behaviour, a.get('ChannelId') or '', timeout,
                     cid_name, cid_num)
        call.task = task = asyncio.get_running_loop().create_task(self._run_call(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the scripted PBX -------------------------------------------------------------
    async def _run_call(self, call: _Call) -> None:
        """Play one Originate's event sequence (the module docstring of each kind)."""
        b, a = call.behaviour, call.action
        if b.kind == 'unregistered' or call.channel_id in self._live_uids:
            self._originate_response(call, 'Failure', 0)   # no channel events at all
            return
        ext = call.ext = self._new_channel(call, call.endpoint,
                                           call.channel_id or self._next_uniqueid(), None,
                                           self.endpoint_context, 's')
        if b.kind in ('busy_reason5', 'congestion'):
            self._hangup(ext, 17 if b.kind == 'busy_reason5' else 34)
            self._originate_response(call, 'Failure', 5 if b.kind == 'busy_reason5' else 8)
            return
        ext.cid_num = ext.conn_num = call.cid_num
        ext.cid_name = ext.conn_name = call.cid_name
        call.phase = 'ringing'
        self._newstate(ext, 5)
        if b.kind == 'reject':
            await _pause(b.ring_delay)
            self._hangup(ext, 17)
            self._originate_response(call, 'Failure', 0)
            return
        if b.kind == 'no_answer':
            await _pause(call.timeout if b.ring_timeout is None else b.ring_timeout)
            self._hangup(ext, 19 if b.hangup_cause is None else b.hangup_cause)
            self._originate_response(call, 'Failure', 3)
            return
        await _pause(b.ring_delay)
        ext.context = a.get('Context') or ''
        ext.exten = a.get('Exten') or ''
        ext.priority = a.get('Priority') or '1'
        call.phase = 'up'
        self._newstate(ext, 6)
        self._originate_response(call, 'Success', 4)
        if b.dial == 'trunk':
            trunk = call.trunk = self._new_channel(
                call, self.trunk, self._next_uniqueid(), ext.uniqueid,
                self.endpoint_context, ext.exten)
            trunk.cid_num, trunk.cid_name = ext.exten, ''
            trunk.conn_num, trunk.conn_name = ext.cid_num, ext.cid_name
            call.phase = 'dialing'
            self._dial_event('DialBegin', call,
                             f'DialString: {ext.exten}@{self.trunk.partition("/")[2]}\r\n')
            self._newstate(trunk, 5)
            self._dial_event('DialState', call, 'DialStatus: RINGING\r\n')
            await _pause(b.dial_delay)
            if b.dial_status != 'ANSWER':
                self._dial_event('DialEnd', call, f'DialStatus: {b.dial_status}\r\n')
                cause = DIAL_STATUS_CAUSE[b.dial_status]
                self._hangup(trunk, cause)
                self._hangup(ext, cause)
                call.phase = 'done'
                return
            self._newstate(trunk, 6)
            self._dial_event('DialEnd', call, 'DialStatus: ANSWER\r\n')
            call.phase = 'up'
        if b.talk_time is None:
            return                       # stays up until a Hangup action
        await _pause(b.talk_time)
        if call.trunk is not None:
            self._hangup(call.trunk, 16)
        self._hangup(ext, 16)
        call.phase = 'done'

    def _new_channel(self, call: _Call, endpoint: str, uniqueid: str, linkedid: str | None,
                     context: str, exten: str) -> FakeChannel:
        name = f'{endpoint}-{self._chan_seq:08x}'
        self._chan_seq += 1
        chan = FakeChannel(name, uniqueid, linkedid or uniqueid, context, exten, call=call)
        self.live_channels[name] = chan
        self._live_uids.add(uniqueid)
        self._channel_event('Newchannel', chan)
        self._notify()
        return chan

    def _newstate(self, chan: FakeChannel, state: int) -> None:
        chan.state = state
        self._channel_event('Newstate', chan)
        self._extension_state(chan, {5: 'RINGING', 6: 'INUSE'}.get(state))

    def _extension_state(self, chan: FakeChannel, state: str | None) -> None:
        """With ``device_state_events``: the extension's device follows its channel."""
        call = chan.call
        if self.device_state_events and state and call is not None and chan is call.ext:
            self.set_device_state(call.endpoint, state)

    def _hangup(self, chan: FakeChannel, cause: int) -> None:
        if self.live_channels.pop(chan.name, None) is None:
            return
        self._live_uids.discard(chan.uniqueid)
        self._channel_event('Hangup', chan,
                            f'Cause: {cause}\r\nCause-txt: {CAUSE_TEXT.get(cause, "Unknown")}\r\n')
        self._extension_state(chan, 'NOT_INUSE')
        self._notify()

    def _channel_event(self, name: str, chan: FakeChannel, extra: str = '') -> None:
        self._broadcast(_encode(f'Event: {name}\r\nPrivilege: call,all\r\n'
                                f'{chan.snapshot()}{extra}\r\n'))

    def _dial_event(self, name: str, call: _Call, extra: str) -> None:
        assert call.ext is not None and call.trunk is not None   # a dial has both legs
        self._broadcast(_encode(f'Event: {name}\r\nPrivilege: call,all\r\n{call.ext.snapshot()}'
                                f'{call.trunk.snapshot("Dest")}{extra}\r\n'))

    def _originate_response(self, call: _Call, response: str, reason: int) -> None:
        """Channel is the requested tech/data, as in Asterisk's fast_originate()."""
        a = call.action
        uid = call.ext.uniqueid if call.ext else (call.channel_id or '<null>')
        aid = f'ActionID: {a["ActionID"]}\r\n' if a.get('ActionID') else ''
        self._broadcast(_encode(
            f'Event: OriginateResponse\r\nPrivilege: call,all\r\n{aid}Response: {response}\r\n'
            f'Channel: {call.endpoint}\r\nContext: {a.get("Context") or ""}\r\n'
            f'Exten: {a.get("Exten") or ""}\r\nApplication: {a.get("Application") or ""}\r\n'
            f'Data: {a.get("Data") or ""}\r\nReason: {reason}\r\nUniqueid: {uid}\r\n'
            f'CallerIDNum: {call.cid_num or "<unknown>"}\r\n'
            f'CallerIDName: {call.cid_name or "<unknown>"}\r\n\r\n'))


def _exten_matches(pattern: str, exten: str) -> bool:
    """Asterisk's extension patterns: ``_`` then X (0-9), Z (1-9), N (2-9), [...], ``.`` (one
    or more of anything), ``!`` (zero or more); otherwise the literal extension."""
    if not pattern.startswith('_'):
        return pattern == exten
    regex, i, body = '', 0, pattern[1:]
    while i < len(body):
        ch = body[i].upper()
        if ch == 'X':
            regex += '[0-9]'
        elif ch == 'Z':
            regex += '[1-9]'
        elif ch == 'N':
            regex += '[2-9]'
        elif ch == '.':
            regex += '.+'
        elif ch == '!':
            regex += '.*'
        elif ch == '[':
            end = body.index(']', i)
            regex += f'[{body[i + 1:end]}]'
            i = end
        else:
            regex += re.escape(body[i])
        i += 1
    return re.fullmatch(regex, exten) is not None


async def _pause(seconds: float) -> None:
    """The fake PBX's own timing; zero means no sleep at all (benchmarks)."""
    if seconds:
        await asyncio.sleep(seconds)


# ---- command line ---------------------------------------------------------------------
def _endpoint_arg(text: str) -> tuple[str, str]:
    endpoint, sep, kind = text.partition('=')
    if not sep or kind not in BEHAVIOURS:
        raise argparse.ArgumentTypeError(f'expected ENDPOINT=KIND with KIND in {BEHAVIOURS}')
    return endpoint, kind


def _talk_time_arg(text: str) -> float | None:
    return None if text.lower() in ('none', 'forever') else float(text)


async def _serve(args: argparse.Namespace) -> None:
    default = Behaviour(args.behaviour, ring_delay=args.answer_delay, dial=args.dial,
                        dial_status=args.dial_status, talk_time=args.talk_time)
    server = FakeAmiServer(args.username, args.secret, args.host, args.port,
                           default_behaviour=default, default_device_state=args.device_state)
    for endpoint, kind in args.endpoint:
        server.behaviours[endpoint] = Behaviour(kind, ring_delay=args.answer_delay,
                                                dial=args.dial, talk_time=args.talk_time)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f'listening on {args.host}:{server.port}', flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m c2c_ami.testing.fake_ami',
                                     description='Fake Asterisk AMI server for tests/benchmarks.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=5038)
    parser.add_argument('--username', default='c2c')
    parser.add_argument('--secret', default='change-me')
    parser.add_argument('--answer-delay', type=float, default=0.0,
                        help='seconds an endpoint rings before answering (default 0)')
    parser.add_argument('--talk-time', type=_talk_time_arg, default=0.0,
                        help="seconds a call stays up, or 'none' until hung up (default 0)")
    parser.add_argument('--behaviour', choices=BEHAVIOURS, default='answer',
                        help='default endpoint behaviour')
    parser.add_argument('--dial', choices=('trunk', 'none'), default='trunk')
    parser.add_argument('--dial-status', choices=DIAL_STATUSES, default='ANSWER')
    parser.add_argument('--device-state', default='NOT_INUSE',
                        help='DEVICE_STATE of every device (default NOT_INUSE)')
    parser.add_argument('--endpoint', type=_endpoint_arg, action='append', default=[],
                        metavar='CHANNEL=KIND', help='per-endpoint behaviour, repeatable')
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == '__main__':
    main()
