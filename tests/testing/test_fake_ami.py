"""The fake AMI server speaks like Asterisk, to a raw socket and to panoramisk 1.4.

No sleeps: every wait is on a condition with a bounded timeout, and "nothing else was
sent" is proven with a Ping barrier (the next message must be the Ping's response).
"""
import asyncio
import contextlib
import signal
import sys

import pytest
import pytest_asyncio
from panoramisk import Manager

from c2c_ami.testing.fake_ami import AmiAction, Behaviour, FakeAmiServer

pytestmark = pytest.mark.asyncio

USER, SECRET = 'c2c', 'change-me'


@pytest_asyncio.fixture
async def server():
    async with FakeAmiServer(username=USER, secret=SECRET) as srv:
        yield srv


class Msg(dict):
    """One AMI message: first header wins in the dict, every pair kept in ``pairs``."""

    def __init__(self, raw: bytes):
        super().__init__()
        self.raw = raw
        self.pairs = []
        for line in raw.decode('utf-8', 'replace').split('\r\n'):
            if line:
                key, _, value = line.partition(': ')
                self.pairs.append((key, value))
                self.setdefault(key, value)


class RawClient:
    def __init__(self, reader, writer, banner):
        self.reader, self.writer, self.banner = reader, writer, banner

    @classmethod
    async def connect(cls, server):
        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)
        banner = await asyncio.wait_for(reader.readline(), 2)
        return cls(reader, writer, banner)

    def send(self, data: bytes | dict) -> None:
        if isinstance(data, dict):
            data = ''.join(f'{k}: {v}\r\n' for k, v in data.items()).encode() + b'\r\n'
        self.writer.write(data)

    async def read(self, timeout=2.0) -> Msg:
        raw = await asyncio.wait_for(self.reader.readuntil(b'\r\n\r\n'), timeout)
        return Msg(raw[:-4])

    async def login(self, events='on') -> Msg:
        self.send({'Action': 'Login', 'Username': USER, 'Secret': SECRET,
                   'Events': events, 'ActionID': 'login-1'})
        return await self.read()

    async def read_until(self, pred, timeout=2.0) -> list[Msg]:
        msgs = []
        while not msgs or not pred(msgs[-1]):
            msgs.append(await self.read(timeout))
        return msgs

    async def barrier(self, action_id='barrier') -> None:
        """Assert the next message is the answer to a fresh Ping: nothing else was queued."""
        self.send({'Action': 'Ping', 'ActionID': action_id})
        msg = await self.read()
        assert (msg.get('Response'), msg.get('ActionID')) == ('Success', action_id), msg

    async def eof(self, timeout=2.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b''

    async def close(self):
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def logged_in_client(server) -> RawClient:
    client = await RawClient.connect(server)
    assert (await client.login())['Response'] == 'Success'
    assert (await client.read())['Event'] == 'FullyBooted'
    return client


def originate(action_id, channel='PJSIP/101', **extra):
    return {'Action': 'Originate', 'ActionID': action_id, 'ChannelId': action_id,
            'Channel': channel, 'Context': 'c2c-out', 'Exten': '0612345678', 'Priority': '1',
            'CallerID': '"Hotline" <0899000000>', 'Timeout': '30000', 'Async': 'true', **extra}


def summary(events):
    """(Event, Channel-tech, key detail) for comparing sequences."""
    out = []
    for e in events:
        detail = {'Newstate': e.get('ChannelStateDesc'), 'Hangup': e.get('Cause'),
                  'OriginateResponse': f"{e.get('Response')}/{e.get('Reason')}",
                  'DialEnd': e.get('DialStatus'), 'DialState': e.get('DialStatus')}
        out.append((e['Event'], e.get('Channel', '').split('-')[0], detail.get(e['Event'])))
    return out


# ---- login, ping, getvar -----------------------------------------------------------------
async def test_banner_login_and_fully_booted(server):
    client = await RawClient.connect(server)
    assert client.banner == b'Asterisk Call Manager/7.0.0\r\n'
    resp = await client.login()
    assert resp.pairs == [('Response', 'Success'), ('ActionID', 'login-1'),
                          ('Message', 'Authentication accepted')]
    booted = await client.read()
    assert booted.pairs == [('Event', 'FullyBooted'), ('Privilege', 'system,all'),
                            ('Uptime', '5'), ('LastReload', '5'), ('Status', 'Fully Booted')]
    assert server.logged_in_count == 1 and server.connection_count == 1
    await client.close()


@pytest.mark.parametrize('secret,reject', [('wrong', False), (SECRET, True)])
async def test_refused_login_closes_connection(server, secret, reject):
    server.reject_logins = reject
    client = await RawClient.connect(server)
    client.send({'Action': 'Login', 'Username': USER, 'Secret': secret, 'ActionID': 'x'})
    resp = await client.read()
    assert resp.pairs == [('Response', 'Error'), ('ActionID', 'x'),
                          ('Message', 'Authentication failed')]
    assert await client.eof()
    await server.wait_for(lambda: server.connection_count == 0)
    await client.close()


async def test_actions_before_login_are_denied(server):
    client = await RawClient.connect(server)
    client.send({'Action': 'Ping', 'ActionID': 'p'})
    assert (await client.read()).pairs == [('Response', 'Error'), ('ActionID', 'p'),
                                           ('Message', 'Permission denied')]
    assert (await client.login())['Response'] == 'Success'
    await client.close()


async def test_ping_and_unknown_action(server):
    client = await logged_in_client(server)
    client.send({'Action': 'Ping', 'ActionID': 'p1'})
    assert (await client.read()).pairs == [('Response', 'Success'), ('ActionID', 'p1'),
                                           ('Ping', 'Pong'), ('Timestamp', '1700000000.000000')]
    client.send({'Action': 'NoSuchThing', 'ActionID': 'n'})
    assert (await client.read())['Message'] == ('Invalid/unknown command: NoSuchThing. '
                                                'Use Action: ListCommands to show available commands.')
    await client.close()


async def test_getvar_device_state(server):
    server.device_states['PJSIP/101'] = 'NOT_INUSE'
    server.device_states['PJSIP/102'] = 'INUSE'
    client = await logged_in_client(server)
    for var, expected in [('DEVICE_STATE(PJSIP/101)', 'NOT_INUSE'),
                          ('DEVICE_STATE(PJSIP/102)', 'INUSE'),
                          ('DEVICE_STATE(PJSIP/999)', 'INVALID'), ('FOO', '')]:
        client.send({'Action': 'Getvar', 'ActionID': 'g', 'Variable': var})
        assert (await client.read()).pairs == [('Response', 'Success'), ('ActionID', 'g'),
                                               ('Variable', var), ('Value', expected)]
    await client.close()


async def test_getvar_channels_sip_call_ids_and_refused_functions(server):
    """CHANNELS(regex) lists matching live channels; each driver's Call-ID item answers on its
    own channels only (the other one is empty, as Asterisk after "Unknown or unavailable
    item"); a refused function is an Error."""
    for name in ('SIP/101-0000000a', 'SIP/1010-0000000b', 'PJSIP/101-0000000c'):
        server.add_channel(name)                  # before login: no events to read past
    server.sip_call_ids.update({'SIP/101-0000000a': 'a@h', 'PJSIP/101-0000000c': 'c@h'})
    server.refused_functions.add('CHANNELS')
    client = await logged_in_client(server)
    client.send({'Action': 'Getvar', 'ActionID': 'r', 'Variable': 'CHANNELS(^SIP/101-)'})
    assert (await client.read()).pairs == [('Response', 'Error'), ('ActionID', 'r'),
                                           ('Message', 'GetVar Access Forbidden: Variable')]
    server.refused_functions.clear()
    for channel, var, expected in [
            ('', 'CHANNELS(^SIP/101-)', 'SIP/101-0000000a'),
            ('', 'CHANNELS(^SIP/10)', 'SIP/101-0000000a SIP/1010-0000000b'),
            ('', 'CHANNELS(^sip/10)', ''),                       # regcomp: case matters
            ('', 'CHANNELS(^PJSIP/1\\.1-)', ''),
            ('SIP/101-0000000a', 'SIPCALLID', 'a@h'), ('SIP/101-0000000a', 'CHANNEL(pjsip,call-id)', ''),
            ('PJSIP/101-0000000c', 'CHANNEL(pjsip,call-id)', 'c@h'), ('PJSIP/101-0000000c', 'SIPCALLID', '')]:
        client.send({'Action': 'Getvar', 'ActionID': 'g', 'Variable': var, **({'Channel': channel} if channel else {})})
        assert (await client.read()).pairs == [('Response', 'Success'), ('ActionID', 'g'),
                                               ('Variable', var), ('Value', expected)]
    server.hang_up('SIP/101-0000000a')
    assert 'SIP/101-0000000a' not in server.live_channels
    await client.close()


# ---- originate sequences -------------------------------------------------------------------
async def test_answer_full_sequence_ids(server):
    server.behaviours['PJSIP/101'] = Behaviour('answer')
    client = await logged_in_client(server)
    client.send(originate('call-1'))
    ack = await client.read()
    assert ack.pairs == [('Response', 'Success'), ('ActionID', 'call-1'),
                         ('Message', 'Originate successfully queued')]
    events = await client.read_until(lambda m: m.get('Event') == 'Hangup'
                                     and m['Channel'].startswith('PJSIP/101-'))
    assert summary(events) == [
        ('Newchannel', 'PJSIP/101', None), ('Newstate', 'PJSIP/101', 'Ringing'),
        ('Newstate', 'PJSIP/101', 'Up'), ('OriginateResponse', 'PJSIP/101', 'Success/4'),
        ('Newchannel', 'PJSIP/trunk', None), ('DialBegin', 'PJSIP/101', None),
        ('Newstate', 'PJSIP/trunk', 'Ringing'), ('DialState', 'PJSIP/101', 'RINGING'),
        ('Newstate', 'PJSIP/trunk', 'Up'), ('DialEnd', 'PJSIP/101', 'ANSWER'),
        ('Hangup', 'PJSIP/trunk', '16'), ('Hangup', 'PJSIP/101', '16')]
    ext = [e for e in events if e.get('Channel', '').startswith('PJSIP/101-')]
    assert {(e['Uniqueid'], e['Linkedid']) for e in ext} == {('call-1', 'call-1')}
    trunk = [e for e in events if e.get('Channel', '').startswith('PJSIP/trunk-')]
    assert len({e['Uniqueid'] for e in trunk}) == 1
    assert trunk[0]['Uniqueid'].startswith('1700000000.') and trunk[0]['Linkedid'] == 'call-1'
    resp = events[3]
    assert resp.pairs == [
        ('Event', 'OriginateResponse'), ('Privilege', 'call,all'), ('ActionID', 'call-1'),
        ('Response', 'Success'), ('Channel', 'PJSIP/101'), ('Context', 'c2c-out'),
        ('Exten', '0612345678'), ('Application', ''), ('Data', ''), ('Reason', '4'),
        ('Uniqueid', 'call-1'), ('CallerIDNum', '0899000000'), ('CallerIDName', 'Hotline')]
    dial_begin = events[5]
    assert dial_begin['DestUniqueid'] == trunk[0]['Uniqueid']
    assert dial_begin['DestLinkedid'] == 'call-1'
    assert events[-1]['Cause-txt'] == 'Normal Clearing'
    assert 300 < len(events[0].raw) < 500          # realistic channel event size
    await client.barrier()
    assert server.live_channels == {}
    await client.close()


@pytest.mark.parametrize('behaviour,expected', [
    (Behaviour('reject'), [('Newchannel', 'PJSIP/101', None),
                           ('Newstate', 'PJSIP/101', 'Ringing'), ('Hangup', 'PJSIP/101', '17'),
                           ('OriginateResponse', 'PJSIP/101', 'Failure/0')]),
    (Behaviour('no_answer'), [('Newchannel', 'PJSIP/101', None),
                              ('Newstate', 'PJSIP/101', 'Ringing'),
                              ('Hangup', 'PJSIP/101', '19'),
                              ('OriginateResponse', 'PJSIP/101', 'Failure/3')]),
    (Behaviour('no_answer', ring_timeout=0.01, hangup_cause=0),
     [('Newchannel', 'PJSIP/101', None), ('Newstate', 'PJSIP/101', 'Ringing'),
      ('Hangup', 'PJSIP/101', '0'), ('OriginateResponse', 'PJSIP/101', 'Failure/3')]),
    (Behaviour('unregistered'), [('OriginateResponse', 'PJSIP/101', 'Failure/0')]),
    (Behaviour('busy_reason5'), [('Newchannel', 'PJSIP/101', None),
                                 ('Hangup', 'PJSIP/101', '17'),
                                 ('OriginateResponse', 'PJSIP/101', 'Failure/5')]),
    (Behaviour('congestion'), [('Newchannel', 'PJSIP/101', None),
                               ('Hangup', 'PJSIP/101', '34'),
                               ('OriginateResponse', 'PJSIP/101', 'Failure/8')]),
    (Behaviour('answer', dial='none', ring_delay=0.01),
     [('Newchannel', 'PJSIP/101', None), ('Newstate', 'PJSIP/101', 'Ringing'),
      ('Newstate', 'PJSIP/101', 'Up'), ('OriginateResponse', 'PJSIP/101', 'Success/4'),
      ('Hangup', 'PJSIP/101', '16')]),
], ids=['reject', 'no_answer_timeout_header', 'no_answer_override', 'unregistered',
        'busy_reason5', 'congestion', 'answer_no_dial'])
async def test_behaviour_sequences(server, behaviour, expected):
    server.behaviours['PJSIP/101'] = behaviour
    client = await logged_in_client(server)
    client.send(originate('c-9', Timeout='20'))
    assert (await client.read())['Message'] == 'Originate successfully queued'
    last_event, last_chan, _ = expected[-1]
    events = await client.read_until(lambda m: m.get('Event') == last_event
                                     and m['Channel'].startswith(last_chan))
    assert summary(events) == expected
    assert all(e['Uniqueid'] == 'c-9' for e in events)
    assert events[-1 if last_event == 'OriginateResponse' else -2]['ActionID'] == 'c-9'
    await client.barrier()
    assert server.live_channels == {}
    await client.close()


@pytest.mark.parametrize('status,cause', [('BUSY', '17'), ('NOANSWER', '19'),
                                          ('CONGESTION', '34'), ('CHANUNAVAIL', '20')])
async def test_dial_failure_statuses(server, status, cause):
    server.default_behaviour = Behaviour('answer', dial_status=status, dial_delay=0.01)
    client = await logged_in_client(server)
    client.send(originate('d-1'))
    await client.read()
    events = await client.read_until(lambda m: m.get('Event') == 'Hangup'
                                     and m['Channel'].startswith('PJSIP/101-'))
    assert summary(events)[-3:] == [('DialEnd', 'PJSIP/101', status),
                                    ('Hangup', 'PJSIP/trunk', cause),
                                    ('Hangup', 'PJSIP/101', cause)]
    await client.barrier()
    await client.close()


async def test_silent_endpoint_sends_only_the_ack(server):
    server.behaviours['PJSIP/101'] = Behaviour('silent')
    client = await logged_in_client(server)
    client.send(originate('s-1'))
    assert (await client.read())['Message'] == 'Originate successfully queued'
    await client.barrier()
    await client.close()


async def test_originate_without_async_is_recorded_and_acked(server):
    client = await logged_in_client(server)
    action = originate('na-1', dial='none')
    del action['Async']
    client.send(action)
    assert (await client.read())['Message'] == 'Originate successfully queued'
    assert 'Async' not in server.actions_named('Originate')[0]
    await client.close()


async def test_talk_until_hangup_action(server):
    server.default_behaviour = Behaviour('answer', talk_time=None)
    client = await logged_in_client(server)
    client.send(originate('t-1'))
    await client.read_until(lambda m: m.get('DialStatus') == 'ANSWER')
    assert len(server.live_channels) == 2
    ext = next(n for n in server.live_channels if n.startswith('PJSIP/101-'))
    client.send({'Action': 'Hangup', 'ActionID': 'h1', 'Channel': 'PJSIP/nope-00000001'})
    assert (await client.read())['Message'] == 'No such channel'
    client.send({'Action': 'Hangup', 'ActionID': 'h2', 'Channel': ext, 'Cause': '21'})
    assert (await client.read()).pairs == [('Response', 'Success'), ('ActionID', 'h2'),
                                           ('Message', 'Channel Hungup')]
    events = [await client.read(), await client.read()]
    assert summary(events) == [('Hangup', 'PJSIP/101', '21'), ('Hangup', 'PJSIP/trunk', '16')]
    await client.barrier()
    assert server.live_channels == {}
    await client.close()


async def test_hangup_while_ringing_fails_the_originate(server):
    server.default_behaviour = Behaviour('answer', ring_delay=60)
    client = await logged_in_client(server)
    client.send(originate('r-1'))
    await client.read_until(lambda m: m.get('ChannelStateDesc') == 'Ringing')
    (name,) = server.live_channels
    client.send({'Action': 'Hangup', 'ActionID': 'h', 'Channel': name})
    assert (await client.read())['Message'] == 'Channel Hungup'
    assert summary([await client.read(), await client.read()]) == [
        ('Hangup', 'PJSIP/101', '16'), ('OriginateResponse', 'PJSIP/101', 'Failure/1')]
    await server.wait_for(lambda: server.scheduled_calls == 0)     # the 60 s timer is cancelled
    await client.barrier()
    await client.close()


async def test_live_channelid_is_refused(server):
    server.default_behaviour = Behaviour('answer', dial='none', talk_time=None)
    client = await logged_in_client(server)
    client.send(originate('dup'))
    await client.read_until(lambda m: m.get('Event') == 'OriginateResponse')
    client.send(originate('dup'))
    assert (await client.read())['Message'] == 'Originate successfully queued'
    resp = await client.read()
    assert summary([resp]) == [('OriginateResponse', 'PJSIP/101', 'Failure/0')]
    assert resp['Uniqueid'] == 'dup'
    await client.barrier()
    assert len(server.live_channels) == 1
    await client.close()


async def test_hangup_of_ringing_trunk_ends_the_dial(server):
    server.default_behaviour = Behaviour('answer', dial_delay=60)
    client = await logged_in_client(server)
    client.send(originate('tr-1'))
    await client.read_until(lambda m: m.get('DialStatus') == 'RINGING')
    trunk = next(n for n in server.live_channels if n.startswith('PJSIP/trunk-'))
    client.send({'Action': 'Hangup', 'ActionID': 'h', 'Channel': trunk, 'Cause': '17'})
    assert (await client.read())['Message'] == 'Channel Hungup'
    events = [await client.read() for _ in range(3)]
    assert summary(events) == [('DialEnd', 'PJSIP/101', 'BUSY'),
                               ('Hangup', 'PJSIP/trunk', '17'), ('Hangup', 'PJSIP/101', '16')]
    await client.barrier()
    await client.close()


async def test_waits_are_bounded(server):
    with pytest.raises(asyncio.TimeoutError):
        await server.wait_for_action('Originate', timeout=0.01)
    with pytest.raises(asyncio.TimeoutError):
        await server.wait_logged_in(timeout=0.01)
    assert server._waiters == []


# ---- parsing like Asterisk -----------------------------------------------------------------
async def test_bare_lf_splits_lines_and_first_header_wins(server):
    server.default_behaviour = Behaviour('silent')
    client = await logged_in_client(server)
    injected = (b'Action: Originate\r\nActionID: inj\r\nAsync: true\r\n'
                b'CallerID: "Bob"\nChannel: PJSIP/evil\r\nChannel: PJSIP/101\r\n'
                b'Context: c2c-out\r\nExten: 100\r\n\r\n')
    client.send(injected)
    action = await server.wait_for_action('Originate')
    assert isinstance(action, AmiAction)
    assert action['CallerID'] == '"Bob"'
    assert action['Channel'] == action['channel'] == 'PJSIP/evil'
    assert [v for k, v in action.pairs if k == 'Channel'] == ['PJSIP/evil', 'PJSIP/101']
    assert (await client.read())['Message'] == 'Originate successfully queued'
    client.send(b'Action: Ping\r\nActionID: a\nAction: Logoff\n\nAction: Ping\r\nActionID: b\r\n\r\n')
    assert [m['ActionID'] for m in (await client.read(), await client.read())] == ['a', 'b']
    assert [a.name for a in server.received_actions[-2:]] == ['Ping', 'Ping']
    await client.close()


async def test_variable_accumulates_nul_truncates_long_lines_dumped(server):
    client = await logged_in_client(server)
    client.send(b'Action: Originate\r\nActionID: v\r\nChannel: PJSIP/101\r\nAsync: true\r\n'
                b'Variable: A=1,B="x,y"\r\nVariable: C=3\r\nExten: 12\x0034\r\n'
                b'Context: ' + b'z' * 1030 + b'\r\n\r\n')
    action = await server.wait_for_action('Originate', where=lambda a: a['ActionID'] == 'v')
    assert action['Variable'] == ['A=1,B="x,y"', 'C=3']
    assert action.variables == [('A', '1'), ('B', 'x,y'), ('C', '3')]
    assert action['Exten'] == '12'
    assert 'Context' not in action and 'z' * 15 in action.lines   # first 1024 bytes dumped
    await client.close()


async def test_received_bytes_records_everything_across_connections(server):
    first = await logged_in_client(server)
    first.send(b'Action: Ping\r\nActionID: 1\r\n\r\n')
    await first.read()
    await first.close()
    second = await RawClient.connect(server)
    second.send(b'\x00garbage\r\nno colon\n\r\n')
    await server.wait_for(lambda: server.received_bytes.endswith(b'no colon\n\r\n'))
    login = b''.join(f'{k}: {v}\r\n'.encode() for k, v in
                     {'Action': 'Login', 'Username': USER, 'Secret': SECRET,
                      'Events': 'on', 'ActionID': 'login-1'}.items()) + b'\r\n'
    assert bytes(server.received_bytes) == (login + b'Action: Ping\r\nActionID: 1\r\n\r\n'
                                            + b'\x00garbage\r\nno colon\n\r\n')
    assert server.received_actions[-1].lines == ['no colon']
    await second.close()


# ---- fault injection ------------------------------------------------------------------------
async def test_drop_connections_resets(server):
    client = await logged_in_client(server)
    await server.drop_connections()
    assert server.connection_count == 0 and server.logged_in_count == 0
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(client.reader.read(), 2)
    await client.close()
    client = await logged_in_client(server)
    await server.drop_connections(reset=False)
    assert await client.eof()
    await client.close()


async def test_go_silent_records_but_answers_nothing(server):
    client = await logged_in_client(server)
    server.go_silent(True)
    client.send({'Action': 'Ping', 'ActionID': 'lost'})
    await server.wait_for_action('Ping', where=lambda a: a['ActionID'] == 'lost')
    server.emit_event({'Event': 'Lost'})
    server.go_silent(False)
    await client.barrier('after')          # neither the Ping nor the event was answered
    await client.close()


async def test_send_garbage_and_emit_event_routing(server):
    a = await logged_in_client(server)
    b = await logged_in_client(server)
    anonymous = await RawClient.connect(server)
    server.send_garbage(b'\xff\xfegarbage\r\n\r\n')
    for c in (a, b, anonymous):
        assert (await c.read()).raw == b'\xff\xfegarbage'
    server.emit_event({'Event': 'UserEvent', 'UserEvent': 'X', 'Uniqueid': '1.2'})
    for c in (a, b):
        assert (await c.read()).pairs == [('Event', 'UserEvent'), ('UserEvent', 'X'),
                                          ('Uniqueid', '1.2')]
    anonymous.send({'Action': 'Ping', 'ActionID': 'anon'})
    assert (await anonymous.read())['Message'] == 'Permission denied'   # no event before it
    for c in (a, b, anonymous):
        await c.close()


async def test_events_off_session_gets_no_events(server):
    client = await RawClient.connect(server)
    assert (await client.login(events='off'))['Response'] == 'Success'
    server.emit_event({'Event': 'UserEvent'})
    await client.barrier()                 # no FullyBooted, no UserEvent
    await client.close()


async def test_restart_on_same_port(server):
    client = await logged_in_client(server)
    port = server.port
    await server.stop()
    assert await client.eof()              # FIN, like a dying process
    with pytest.raises(OSError):
        await RawClient.connect(server)
    await server.start()
    assert server.port == port
    again = await logged_in_client(server)
    await again.barrier()
    await again.close()
    await client.close()


async def test_pause_accepting_keeps_sessions(server):
    client = await logged_in_client(server)
    await server.pause_accepting()
    with pytest.raises(OSError):
        await RawClient.connect(server)
    await client.barrier()
    await server.resume_accepting()
    other = await RawClient.connect(server)
    await other.close()
    await client.close()


# ---- panoramisk ------------------------------------------------------------------------------
class Collector:
    """panoramisk event callback that keeps events and counts them per name."""

    def __init__(self):
        self.items = []
        self.counts = {}
        self._changed = asyncio.Event()

    def __call__(self, manager, event):
        self.items.append(event)
        self.counts[event.event] = self.counts.get(event.event, 0) + 1
        self._changed.set()

    async def wait(self, pred, timeout=2.0):
        """Wait until pred(self) holds (checked once per wake-up, so keep it O(1))."""
        async def until():
            while not pred(self):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)
        return self.items


async def connect_manager(server, secret=SECRET, **config):
    loop = asyncio.get_running_loop()
    logins = asyncio.Queue()
    events = Collector()
    manager = Manager(host='127.0.0.1', port=server.port, username=USER, secret=secret,
                      ping_delay=3600, reconnect_timeout=3600, loop=loop,
                      forgetable_actions=('ping', 'login', 'originate', 'getvar'),
                      on_login=logins.put_nowait, **config)
    manager.register_event('*', events)
    manager.connect()
    return manager, events, logins


async def test_panoramisk_login_getvar_and_originate(server):
    server.device_states['PJSIP/101'] = 'NOT_INUSE'
    manager, events, logins = await connect_manager(server)
    await asyncio.wait_for(logins.get(), 2)
    resp = await asyncio.wait_for(manager.send_action(
        {'Action': 'Getvar', 'Variable': 'DEVICE_STATE(PJSIP/101)'}), 2)
    assert resp.value == 'NOT_INUSE'
    ack = await asyncio.wait_for(manager.send_action(originate('pk-1'), as_list=False), 2)
    assert (ack.response, ack.actionid) == ('Success', 'pk-1')
    await events.wait(lambda ev: ev.counts.get('Hangup') == 2)
    names = [e.event for e in events.items]
    assert names[0] == 'FullyBooted'
    assert names[1:] == ['Newchannel', 'Newstate', 'Newstate', 'OriginateResponse',
                         'Newchannel', 'DialBegin', 'Newstate', 'DialState', 'Newstate',
                         'DialEnd', 'Hangup', 'Hangup']
    resp = events.items[4]
    assert (resp.response, resp.reason, resp.uniqueid, resp.actionid) == \
        ('Success', '4', 'pk-1', 'pk-1')
    manager.close()


async def test_panoramisk_wrong_password_is_closed(server):
    disconnects = asyncio.Queue()
    manager, _, logins = await connect_manager(
        server, secret='nope', on_disconnect=lambda m, exc: disconnects.put_nowait(exc))
    await asyncio.wait_for(disconnects.get(), 2)    # after the Error response was read
    assert server.actions_named('Login') and server.connection_count == 0
    assert manager.authenticated is False and logins.empty()
    manager.close()


async def test_panoramisk_reconnects_after_drop(server):
    manager, _, logins = await connect_manager(server)
    manager.reconnect_timeout = 0
    await asyncio.wait_for(logins.get(), 2)
    await server.drop_connections()
    await asyncio.wait_for(logins.get(), 2)
    assert server.logged_in_count == 1
    manager.close()


async def test_panoramisk_flood(server):
    manager, events, logins = await connect_manager(server)
    await asyncio.wait_for(logins.get(), 2)
    assert await server.flood(20_000) == 20_000
    await events.wait(lambda ev: len(ev.items) == 20_001, timeout=30)
    assert events.items[-1].uniqueid == '1600000000.19999'
    manager.close()


async def test_throughput_10k_originates(server):
    server.default_behaviour = Behaviour('answer', dial='none')
    manager, events, logins = await connect_manager(server)
    await asyncio.wait_for(logins.get(), 2)
    n = 10_000
    acks = await asyncio.wait_for(asyncio.gather(*(
        manager.send_action(originate(f'bulk-{i}', channel=f'PJSIP/{i}'), as_list=False)
        for i in range(n))), 60)
    assert {a.response for a in acks} == {'Success'}
    await events.wait(lambda ev: ev.counts.get('Hangup') == n, timeout=60)
    assert len(events.items) == 1 + 5 * n
    responses = [e for e in events.items if e.event == 'OriginateResponse']
    assert len(responses) == n and {r.reason for r in responses} == {'4'}
    assert {r.actionid for r in responses} == {f'bulk-{i}' for i in range(n)}
    assert server.live_channels == {}
    manager.close()


# ---- command line ----------------------------------------------------------------------------
async def test_cli_serves_until_sigterm():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, '-m', 'c2c_ami.testing.fake_ami', '--port', '0', '--answer-delay', '0',
        stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line.startswith('listening on 127.0.0.1:')
        port = int(line.rsplit(':', 1)[1])
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        assert await reader.readline() == b'Asterisk Call Manager/7.0.0\r\n'
        writer.write(b'Action: Login\r\nUsername: c2c\r\nSecret: change-me\r\n\r\n')
        assert b'Authentication accepted' in await reader.readuntil(b'\r\n\r\n')
        writer.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_rights_phones_dialplan_and_modules_are_answered_as_asterisk_does(server):
    """The actions of the agent monitor and the PBX check, worded as Asterisk 22 answers them
    (compared on the rig: tests/e2e/test_pbx_check_rig.py, test_guard_rails_rig.py)."""
    server.write_classes = frozenset({'call', 'reporting'})
    server.register_phone('PJSIP/101', 'Yealink SIP-T46S', '10.0.0.15')
    client = await logged_in_client(server)
    client.send({'Action': 'ListCommands', 'ActionID': 'l'})
    listed = await client.read()
    assert 'Getvar' in listed and 'Originate' not in listed and 'ModuleCheck' not in listed
    client.send({'Action': 'Originate', 'ActionID': 'o', 'Channel': 'PJSIP/101'})
    assert (await client.read())['Message'] == 'Permission denied'
    client.send({'Action': 'ShowDialPlan', 'ActionID': 'd', 'Context': 'nope'})
    assert (await client.read())['Message'] == 'Did not find context nope'
    client.send({'Action': 'ShowDialPlan', 'ActionID': 'd2', 'Context': 'c2c-outbound', 'Extension': '0899'})
    lines = await client.read_until(lambda m: m.get('Event') == 'ShowDialPlanComplete')
    assert [m.get('Application') for m in lines[1:-1]] == ['NoOp', 'Set', 'Set', 'Dial', 'Hangup']
    client.send({'Action': 'Getvar', 'ActionID': 'a', 'Variable': 'PJSIP_AOR(101,contact)'})
    contact = (await client.read())['Value']
    client.send({'Action': 'Getvar', 'ActionID': 'u', 'Variable': f'PJSIP_CONTACT({contact},user_agent)'})
    assert (await client.read())['Value'] == 'Yealink SIP-T46S'
    client.send({'Action': 'Setvar', 'ActionID': 's', 'Variable': 'DEVICE_STATE(Custom:x)', 'Value': 'INUSE'})
    got = await client.read_until(lambda m: m.get('Event') == 'DeviceStateChange')
    assert got[-1]['Device'] == 'Custom:x' and got[-1]['State'] == 'INUSE'
    await client.close()
