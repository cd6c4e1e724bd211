"""The real process: start from the CLI, bad config, and SIGTERM while requests wait."""
import asyncio
import os
import signal
import socket
import sys

import aiohttp
import pytest
import yaml

from c2c_ami.testing.fake_ami import Behaviour

from .fixtures_gateway import TOKEN


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path, ami_port, http_port, grace=1.0):
    config = {
        "listen": {"host": "127.0.0.1", "port": http_port},
        "ami": {"host": "127.0.0.1", "port": ami_port, "username": "c2c", "secret": "${TEST_AMI_SECRET}"},
        "calls": {"ring_timeout": 30, "dial_timeout": 60, "sync_timeout": 45},
        "limits": {"shutdown_grace": grace},
        "storage": {"url": f"sqlite:///{tmp_path}/c2c.sqlite3"},
        "tenants": [{"domain": "default", "tokens": [TOKEN], "endpoint": "PJSIP/{ext}",
                     "context": "c2c-outbound", "extensions": "^[0-9]{2,6}$",
                     "hotlines": {"02873001234": "hotline-trunk"}}],
    }
    path = tmp_path / "c2c-ami.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def start_gateway(config_path, *, module=True):
    via_main = "import sys; from c2c_ami.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-m", "c2c_ami"] if module else [sys.executable, "-c", via_main]
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--config", str(config_path), stderr=asyncio.subprocess.PIPE,
        env={"TEST_AMI_SECRET": "change-me", "PATH": "/usr/bin:/bin"})
    seen = []

    async def until_ready():
        while not ("AMI logged in" in "".join(seen) and "Running on" in "".join(seen)):
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError("gateway exited:\n" + "".join(seen))
            seen.append(line.decode())
    await asyncio.wait_for(until_ready(), 10)
    return proc, seen


async def test_bad_config_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ami: {port: nope}\ntenants: []\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "c2c_ami", "--config", str(path),
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 2 and b"ami.port" in err


@pytest.mark.parametrize("ring_delay, expected", [(0.3, (200, "success")), (60, (503, "PBX_UNAVAILABLE"))])
async def test_sigterm_lets_waiting_requests_finish_then_answers_the_rest(tmp_path, fake_ami, ring_delay, expected):
    fake_ami.default_behaviour = Behaviour("answer", ring_delay=ring_delay, dial="none", talk_time=None)
    http_port = free_port()
    proc, log = await start_gateway(write_config(tmp_path, fake_ami.port, http_port, grace=1.0))
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{http_port}/v1/click2call?ext=101&phone=0899"
            request = asyncio.create_task(session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}))
            await fake_ami.wait_for_action("Originate", timeout=5)
            proc.send_signal(signal.SIGTERM)
            try:
                resp = await asyncio.wait_for(request, 5)
            except aiohttp.ClientError as exc:      # (aiohttp retries a GET cut before its answer
                await asyncio.wait_for(proc.wait(), 10)   # once: the gateway's log says why)
                raise AssertionError(f"{exc!r}; the gateway's log:\n" + "".join(log) +
                                     (await proc.stderr.read()).decode()) from exc
            body = await resp.json()
            assert (resp.status, body.get("error", body["status"])) == expected
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        await asyncio.wait_for(proc.wait(), 10)
        assert proc.returncode == 0
        log.append((await proc.stderr.read()).decode())
        await fake_ami.wait_for_action("Logoff", timeout=2)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "change-me" not in "".join(log) and TOKEN not in "".join(log)


@pytest.mark.parametrize("listen_flag", [True, False])
async def test_a_port_in_use_exits_at_once_naming_it(tmp_path, fake_ami, listen_flag):
    """Bound before the store and AMI: no login, one line naming host:port, exit status 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = write_config(tmp_path, fake_ami.port, 1 if listen_flag else port)
        flags = ["--listen", f"127.0.0.1:{port}"] if listen_flag else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "c2c_ami", "--config", str(config), *flags,
            stderr=asyncio.subprocess.PIPE, env={"TEST_AMI_SECRET": "change-me", "PATH": "/usr/bin:/bin"})
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1
    assert lines == [f"c2c-ami: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert fake_ami.actions_named("Login") == []


async def test_check_prints_each_finding_and_exits_1_then_0_once_fixed(tmp_path, fake_ami):
    fake_ami.device_states["PJSIP/101"] = "NOT_INUSE"
    fake_ami.dialplan = {"c2c-outbound": [("_X.", 1, "NoOp", ""), ("_X.", 2, "Hangup", "")]}
    path = write_config(tmp_path, fake_ami.port, free_port())

    async def run():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "c2c_ami", "check", "--config", str(path), stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "TEST_AMI_SECRET": "change-me"})
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        return proc.returncode, out.decode().splitlines()
    code, lines = await run()
    assert code == 1
    assert lines == [
        f"PBX default (127.0.0.1:{fake_ami.port}): 1 finding",
        "  - the context 'c2c-outbound' never runs Dial with ${C2C_TRUNK}: the agent's phone rings, but the number "
        "is never dialled [extensions.conf [c2c-outbound]]: same => n,Dial(PJSIP/${EXTEN}@${C2C_TRUNK},"
        "${C2C_DIAL_TIMEOUT})"]
    fake_ami.dialplan = {"c2c-outbound": [("_X.", 1, "Dial", "PJSIP/${EXTEN}@${C2C_TRUNK},30")]}
    code, lines = await run()
    assert (code, lines) == (0, [f"PBX default (127.0.0.1:{fake_ami.port}): no findings"])


async def test_check_with_a_bad_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: []\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "c2c_ami", "check", "--config", str(bad),
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"tenants:" in err
