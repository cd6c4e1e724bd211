"""Item 5 (``--rig``): CPU per click-to-call on a real Asterisk, the gateway's next to Asterisk's.

Measured as an operator would: the real rig (``c2c_rig``), its 30 answering extensions
(201-230), ``calls`` click-to-calls (``GET /v1/click2call/async``) in waves of 30; in each
call the extension rings ~0.5 s and answers, the trunk answers ~1 s later and hangs up ~3 s
after that (the phones' BYE ends the wave; on chan_sip the next wave waits ``SETTLE_SECONDS`` for the
rig's RTP ports). The CPU time of each process comes from /proc:
the gateway (and any child), Asterisk, and PostgreSQL (server and backends) when it is the
store. Each process's idle rate, measured for ``IDLE_SECONDS`` just before, is subtracted
(times the run's wall time); what is left, divided by the calls, is its CPU per call. The
gateway's ``c2c_ami_events_received_total`` (read outside the measured window) gives the AMI
events it received per call.

Settings, side by side in one run: the AMI user with ``read = call,system`` (``c2c``) and with
``read = all`` (``c2c-all``); Asterisk 22/PJSIP and Asterisk 16/chan_sip; SQLite and
PostgreSQL. The gateway logs at INFO (its default), as in production.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import time
from typing import Any

import aiohttp

from .common import PYTHON, TOKEN, Processes, free_port, gateway_yaml, start_gateway, tree_cpu_seconds, wait_ready
from .latency_bench import rig_module

DRIVERS = ("pjsip", "chan_sip")
READS = ("call,system", "all")
STORES = ("sqlite", "postgresql")
WAVE = 30                    # the rig's answering extensions 201-230
IDLE_SECONDS = 3.0           # each process's idle CPU rate is measured this long
TAIL_SECONDS = 1.0           # after the last BYE: the gateway's last events and writes
WAVE_TIMEOUT = 30.0
# chan_sip keeps a dialog, and its RTP ports, 64 x T1 (6.4 s on the rig) after its BYE; the
# rig has 100 RTP port pairs: the next wave waits for them (idle time, subtracted).
SETTLE_SECONDS = {"chan_sip": 7.0}
EXTS = [str(e) for e in range(201, 201 + WAVE)]
HOTLINE = "02873001234"
# A BYE the phone received: its To header names the extension (the Request-URI is the contact).
_BYE = re.compile(rb"^BYE [^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*?(?:To|t): [^<\r\n]*<sips?:(\d+)@", re.MULTILINE)
_SEPARATOR = b"\n----------------"


class _Byes:
    """The BYEs the answering phones received (their sipp trace, read as it grows): a call
    is over for the bench when its extension got its BYE."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self._tail = b""

    def new(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data, mark, tail = (self._tail + data).rpartition(_SEPARATOR)   # the last message may be partial
        self._tail = mark + tail
        return [m.group(1).decode() for m in _BYE.finditer(data)]


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: tree_cpu_seconds(pid) or 0.0 for name, pid in pids.items()}


async def _events_received(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/metrics") as reply:
        text = await reply.text()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("c2c_ami_events_received_total{")))


async def _wave(http: aiohttp.ClientSession, base: str, byes: _Byes, tag: str,
                exts: list[str]) -> tuple[list[str], list[str]]:
    """Place one call per extension at once; wait until each extension got its BYE.
    Returns (call_ids, failures)."""
    async def place(i: int, ext: str) -> tuple[str | None, str | None]:
        url = f"{base}/v1/click2call/async?ext={ext}&phone=09{tag}{i:03d}&hotline={HOTLINE}"
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
            body = await reply.json(content_type=None)
        if reply.status != 200:
            return None, f"{ext}: HTTP {reply.status} {str(body)[:120]}"
        return body.get("call_id"), None

    placed = await asyncio.gather(*(place(i, ext) for i, ext in enumerate(exts)))
    call_ids = [c for c, _ in placed if c]
    failures = [f for _, f in placed if f]
    waiting = {ext for ext, (call_id, _) in zip(exts, placed, strict=True) if call_id}
    deadline = time.monotonic() + WAVE_TIMEOUT
    while waiting and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        waiting -= set(byes.new())
    failures += [f"{ext}: no BYE within {WAVE_TIMEOUT:g} s" for ext in sorted(waiting)]
    return call_ids, failures


def _spy(pid: int, out: str) -> subprocess.Popen | None:
    """py-spy (a developer tool: ``pip install py-spy``) recording ``pid`` until stopped."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(PYTHON), "py-spy")
    if not os.path.exists(spy):
        raise RuntimeError("--profile needs py-spy (pip install py-spy into the venv)")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw",
                             "--output", out, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_spy(spy: subprocess.Popen | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)      # py-spy writes its file on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


async def _measure(rig: Any, workdir: str, name: str, *, read: str, storage_url: str | None,
                   pg_pid: int | None, calls: int, profile: str | None = None) -> dict:
    ami = rig.ami if read == "call,system" else rig.ami_read_all
    with Processes(workdir) as procs:
        port = free_port()
        config = gateway_yaml(os.path.join(workdir, f"{name}.yaml"), port, ami["port"], ami_user=ami["username"],
                              ami_secret=ami["secret"], ring_timeout=10, sync_timeout=20, storage_url=storage_url,
                              endpoint=f"{rig.tech}/{{ext}}")
        gateway = start_gateway(procs, config, "INFO", name=name)
        await asyncio.to_thread(wait_ready, port, 20, gateway)
        base = f"http://127.0.0.1:{port}"
        byes = _Byes(rig.trace_file("answer"))
        pids = {"gateway": gateway.pid, "asterisk": rig.procs["asterisk"]["pid"]}
        if pg_pid is not None and storage_url:
            pids["postgresql"] = pg_pid
        async with aiohttp.ClientSession() as http:
            warm, warm_failures = await _wave(http, base, byes, "99", EXTS[:5])       # warm-up, not measured
            await asyncio.sleep(SETTLE_SECONDS.get(rig.driver, 0.0))
            events_before = await _events_received(http, base)
            idle_start, idle_started = _cpu(pids), time.monotonic()
            await asyncio.sleep(IDLE_SECONDS)
            idle_end, idle_wall = _cpu(pids), time.monotonic() - idle_started
            idle_rate = {k: (idle_end[k] - idle_start[k]) / idle_wall for k in pids}
            loadavg = os.getloadavg()[0]
            call_ids: list[str] = []
            failures: list[str] = warm_failures
            spy = _spy(gateway.pid, os.path.join(profile, f"{name}.collapsed")) if profile else None
            started = time.monotonic()
            for wave in range(-(-calls // WAVE)):
                if wave:
                    await asyncio.sleep(SETTLE_SECONDS.get(rig.driver, 0.0))
                exts = EXTS[:min(WAVE, calls - wave * WAVE)]
                ids, failed = await _wave(http, base, byes, f"{wave:02d}", exts)
                call_ids += ids
                failures += failed
            await asyncio.sleep(TAIL_SECONDS)
            end, wall = _cpu(pids), time.monotonic() - started
            _stop_spy(spy)
            events = await _events_received(http, base) - events_before
            statuses: dict[str, int] = {}
            for call_id in call_ids + warm:
                async with http.get(f"{base}/v1/calls/{call_id}",
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
                    record = (await reply.json(content_type=None)).get("call") or {}
                status = str(record.get("status"))
                statuses[status] = statuses.get(status, 0) + 1
                if status != "ANSWERED" and len(failures) < 10:
                    failures.append(f"{record.get('extension')}: {status} ext_failure={record.get('ext_failure')} "
                                    f"number_failure={record.get('number_failure')} cause={record.get('cause')} "
                                    f"hangup_by={record.get('hangup_by')}")
        procs.stop(gateway)
    placed = len(call_ids)
    per_call = {k: round(1000 * (end[k] - idle_end[k] - idle_rate[k] * wall) / max(placed, 1), 3) for k in pids}
    return {"calls": placed, "wall_s": round(wall, 1), "loadavg_1m": round(loadavg, 2),
            "cpu_ms_per_call": per_call,
            "idle_cpu_percent": {k: round(100 * v, 2) for k, v in idle_rate.items()},
            "ratio_percent": round(100 * per_call["gateway"] / per_call["asterisk"], 1)
            if per_call["asterisk"] > 0 else None,
            "ami_events_per_call": round(events / max(placed, 1), 1),
            "statuses": statuses, "failures": failures[:10]}


def _median_of(runs: list[dict]) -> dict:
    """One setting's runs -> the median of each figure (and every run kept)."""
    if len(runs) == 1:
        return runs[0]
    keys = runs[0]["cpu_ms_per_call"]
    per_call = {k: round(statistics.median(r["cpu_ms_per_call"][k] for r in runs), 3) for k in keys}
    return {**runs[-1], "cpu_ms_per_call": per_call,
            "ratio_percent": round(statistics.median(r["ratio_percent"] for r in runs), 1),
            "ami_events_per_call": statistics.median(r["ami_events_per_call"] for r in runs),
            "loadavg_1m": [r["loadavg_1m"] for r in runs], "runs": runs}


def run(workdir: str, *, calls: int = 150, repeat: int = 1, drivers: tuple[str, ...] = DRIVERS,
        reads: tuple[str, ...] = READS, stores: tuple[str, ...] = STORES, profile: str | None = None) -> dict:
    """``profile``: a directory where py-spy's record of each gateway (collapsed stacks) is
    written (the CPU figures then include py-spy's sampling: use them for the profile only)."""
    rig_pkg = rig_module()
    if rig_pkg is None:
        return {"skipped": "the c2c_rig package is not installed (pip install -e ./asterisk-test-config)"}
    from c2c_rig.postgres import PrivatePostgres
    runtime = rig_pkg.install(False)
    out: dict = {"calls": calls, "wave": WAVE, "repeat": repeat, "settings": {}}
    pg = PrivatePostgres().start() if "postgresql" in stores else None
    try:
        for driver in drivers:
            try:
                rig = rig_pkg.Rig.up(None, runtime, driver)
            except Exception as exc:
                out["settings"][driver] = {"skipped": f"the {driver} rig is not available: {exc}"}
                continue
            try:
                runs: dict[str, list[dict]] = {}
                for _ in range(repeat):
                    for read in reads:
                        for store in stores:
                            name = f"{driver}_{'read-' + read.replace(',', '-')}_{store}"
                            url = pg.create_database() if store == "postgresql" and pg is not None else None
                            runs.setdefault(name, []).append(asyncio.run(_measure(
                                rig, workdir, name, read=read, storage_url=url,
                                pg_pid=pg.proc.pid if pg is not None and pg.proc is not None else None,
                                calls=calls, profile=profile)))
                for name, each in runs.items():
                    out["settings"][name] = {"driver": driver, "asterisk": rig.asterisk.get("version"),
                                             **_median_of(each)}
            finally:
                rig.down(quiet=True)
    finally:
        if pg is not None:
            pg.stop()
    return out
