"""The gateway as an operator runs it: ``python -m c2c_ami`` processes on the rig, one or
several (instances of one cluster), to kill, restart and stop like real ones."""
from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
import yaml

from c2c_rig import HOTLINES

from .conftest import OTHER_TOKEN, TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(rig, tmp_path, http_port: int, storage_url: str, *, second_rig=None, lease: float | None = None,
                 name: str = "c2c-ami.yaml"):
    """One PBX (``rig``), or two (``second_rig``: tenant ``other`` lives there)."""
    fast = {"reconnect_min": 0.05, "reconnect_max": 0.5}
    config = {
        "listen": {"host": "127.0.0.1", "port": http_port},
        "calls": {"ring_timeout": 4, "dial_timeout": 5, "sync_timeout": 8},
        "storage": {"url": storage_url},
        "limits": {"rate_per_minute": 100000, "rate_burst": 10000, "duplicate_window": 2,
                   "per_extension_per_minute": 0},
        "webhooks": {"backoff_base": 0.05, "backoff_max": 0.5, "allow_networks": ["127.0.0.0/8"]},
        "tenants": [{"domain": "default", "tokens": [TOKEN], "extensions": "^[0-9]{3}$",
                     "endpoint": f"{rig.tech}/{{ext}}", "hotlines": dict(HOTLINES)}],
    }
    if second_rig is None:
        config["ami"] = {**rig.ami, **fast}
    else:
        config["pbxs"] = [{"name": "pbx-a", "ami": {**rig.ami, **fast}},
                          {"name": "pbx-b", "ami": {**second_rig.ami, **fast}}]
        config["tenants"].append({"domain": "other", "tokens": [OTHER_TOKEN], "extensions": "^2[0-9]{2}$",
                                  "pbx": "pbx-b", "endpoint": f"{second_rig.tech}/{{ext}}",
                                  "hotlines": dict(HOTLINES)})
    if lease is not None:
        config["cluster"] = {"lease_seconds": lease}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayProcess:
    """``python -m c2c_ami --config FILE [--listen ...] [--instance-id ...]``."""

    def __init__(self, config_path, *, port: int | None = None, instance_id: str | None = None) -> None:
        self.config_path = config_path
        self.port = port
        self.instance_id = instance_id
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []          # this run's stderr lines
        self.history: list[str] = []      # earlier runs' (for a failing test's report)
        self._logged = asyncio.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, adopted: int = 0) -> None:
        args = ["--config", str(self.config_path)]
        if self.port is not None:
            args += ["--listen", f"127.0.0.1:{self.port}"]
        if self.instance_id is not None:
            args += ["--instance-id", self.instance_id]
        self.history += self.log
        self.log = []
        self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "c2c_ami", *args,
                                                         stderr=asyncio.subprocess.PIPE)
        wanted = ["AMI logged in", "Running on"] + ([f"adopted {adopted} live call"] if adopted else [])

        async def until_ready():
            while not all(w in "".join(self.log) for w in wanted):
                line = await self.proc.stderr.readline()
                if not line:
                    raise AssertionError("gateway exited:\n" + "".join(self.log))
                self.log.append(line.decode())
        await asyncio.wait_for(until_ready(), 15)
        asyncio.get_running_loop().create_task(self._drain(self.proc))

    async def wait_log(self, text: str, timeout: float = 15.0) -> None:
        """Until a line holding ``text`` was logged (the log is read as it comes)."""
        async def seen():
            while text not in "".join(self.log):
                self._logged.clear()
                await self._logged.wait()
        await asyncio.wait_for(seen(), timeout)

    async def _drain(self, proc) -> None:
        while line := await proc.stderr.readline():
            self.log.append(line.decode())
            self._logged.set()

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def get(self, http: aiohttp.ClientSession, path: str, **params) -> tuple[int, dict]:
        async with http.get(self.base + path, params=params) as resp:
            return resp.status, await resp.json()
