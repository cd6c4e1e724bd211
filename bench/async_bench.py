"""Item 1: requests/s and latency of GET /v1/click2call/async, gateway vs a bare aiohttp
handler, same wrk, same Lua script, same run.

Processes: ``python -m c2c_ami.testing.fake_ami`` (answers at once, call ends at once),
``python -m c2c_ami --config <generated>`` and ``python -m bench.bare_server``; wrk drives
them one after the other. CPU seconds of each server process are read from /proc.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Any

from .common import (
    PYTHON,
    TOKEN,
    Processes,
    cpu_seconds,
    cpu_used,
    free_port,
    gateway_yaml,
    start_gateway,
    tree_cpu_seconds,
    wait_port,
    wait_ready,
)

LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk", "click2call.lua")


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, *, duration: float, connections: int, threads: int, base: int,
            watch: dict[str, int]) -> dict:
    """One wrk run; ``watch`` = {name: pid} whose CPU use during the run is reported."""
    env = dict(os.environ, C2C_TOKEN=TOKEN, C2C_PATH="/v1/click2call/async", C2C_BASE=str(base))
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
            "--timeout", "10s", "-s", LUA, url]
    before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    started = time.monotonic()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - started
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    data = json.loads(line[len("BENCH_JSON "):])
    seconds = data["duration_us"] / 1e6
    statuses = {int(k): v for k, v in data["statuses"].items()}
    result = {
        "requests": data["requests"],
        "rps": round(data["requests"] / seconds, 1),
        "p50_ms": data["latency_us"]["p50"] / 1000, "p90_ms": data["latency_us"]["p90"] / 1000,
        "p99_ms": data["latency_us"]["p99"] / 1000, "max_ms": data["latency_us"]["max"] / 1000,
        "non_200": sum(v for k, v in statuses.items() if k != 200) + sum(
            data["errors"][k] for k in ("connect", "read", "write", "timeout")),
        "statuses": statuses, "socket_errors": {k: v for k, v in data["errors"].items() if k != "status"},
        "cpu_percent": {},
    }
    for name, pid in watch.items():
        used = cpu_used(pid, before[name])
        if used is not None:
            result["cpu_percent"][name] = round(100 * used / wall, 1)
    return result


VARIANTS = (("trunk", "INFO"), ("none", "INFO"), ("none", "WARNING"))


def run(workdir: str, *, duration: float = 10.0, connections: int = 64, threads: int = 1,
        variants: tuple[tuple[str, str], ...] = VARIANTS) -> dict:
    """``variants``: (fake --dial, gateway --log-level). dial=trunk: 12 AMI events per call
    (both legs) and a Getvar for the trunk's SIP Call-ID; dial=none: 5 events, no trunk leg.
    INFO is the gateway's default (access log + one line per call); WARNING shows its cost."""
    if not wrk_available():
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    results: dict = {"duration_s": duration, "connections": connections, "wrk_threads": threads,
                     "load_generator": "wrk", "runs": {}}
    with Processes(workdir) as procs:
        bare_port = free_port()
        bare = procs.start("bare", [PYTHON, "-m", "bench.bare_server", "--port", str(bare_port)])
        wait_ready(bare_port, 20, bare)
        # warm-up of the reference, then the measured run
        run_wrk(f"http://127.0.0.1:{bare_port}", duration=1, connections=connections,
                threads=threads, base=0, watch={})
        results["runs"]["bare_aiohttp"] = run_wrk(
            f"http://127.0.0.1:{bare_port}", duration=duration, connections=connections,
            threads=threads, base=0, watch={"bare": bare.pid})
        procs.stop(bare)
        for n, (dial, level) in enumerate(variants):
            ami_port = free_port()
            fake = procs.start(f"fake_ami-{n}", [PYTHON, "-m", "c2c_ami.testing.fake_ami", "--port", str(ami_port),
                                                 "--answer-delay", "0", "--talk-time", "0", "--dial", dial,
                                                 "--device-state", "NOT_INUSE"])
            wait_port(ami_port, 20, fake)
            http_port = free_port()
            config = gateway_yaml(os.path.join(workdir, f"gateway-{n}.yaml"), http_port, ami_port)
            gateway = start_gateway(procs, config, level, name=f"gateway-{n}")
            wait_ready(http_port, 20, gateway)
            base = (n + 1) * 1_000_000_000
            run_wrk(f"http://127.0.0.1:{http_port}", duration=1, connections=connections,
                    threads=threads, base=base + 500_000_000, watch={})
            row = run_wrk(f"http://127.0.0.1:{http_port}", duration=duration,
                          connections=connections, threads=threads, base=base,
                          watch={"gateway": gateway.pid, "fake_ami": fake.pid})
            row["gateway_log_level"], row["fake_dial"] = level, dial
            results["runs"][f"gateway_dial-{dial}_log-{level.lower()}"] = row
            procs.stop(gateway)
            procs.stop(fake)
    bare_rps = results["runs"]["bare_aiohttp"]["rps"]
    for _name, row in results["runs"].items():
        row["percent_of_bare"] = round(100 * row["rps"] / bare_rps, 1) if bare_rps else None
    return results


STORE_VARIANTS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2))


def run_stores(workdir: str, *, duration: float = 10.0, connections: int = 64) -> dict:
    """Async throughput by store: SQLite (one instance), PostgreSQL (one instance), and two
    instances on one PostgreSQL database, each under its own wrk with half the connections,
    side by side; the fake AMI answers at once and ends at once (dial none, log WARNING).
    CPU % is per process: the gateways, the fake AMI, PostgreSQL (server and backends)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from c2c_rig.postgres import PrivatePostgres
    results: dict = {"duration_s": duration, "connections": connections, "runs": {},
                     "load_generator": "wrk" if wrk_available() else "python (wrk not installed)"}
    pg = PrivatePostgres().start()
    try:
        with Processes(workdir) as procs:
            for n, (store, instances) in enumerate(STORE_VARIANTS):
                ami_port = free_port()
                fake = procs.start(f"fake-{store}-{instances}", [
                    PYTHON, "-m", "c2c_ami.testing.fake_ami", "--port", str(ami_port), "--answer-delay", "0",
                    "--talk-time", "0", "--dial", "none", "--device-state", "NOT_INUSE"])
                wait_port(ami_port, 20, fake)
                url = pg.create_database() if store == "postgresql" else None
                gateways = []
                for i in range(instances):
                    port = free_port()
                    config = gateway_yaml(os.path.join(workdir, f"gw-{store}-{instances}-{i}.yaml"), port, ami_port,
                                          storage_url=url)
                    gateway = start_gateway(procs, config, "WARNING", name=f"gw-{store}-{instances}-{i}",
                                            extra=["--instance-id", f"bench-{i}"])
                    wait_ready(port, 20, gateway)
                    gateways.append((port, gateway))
                base = (n + 5) * 1_000_000_000
                share = max(1, connections // instances)

                def load(item: tuple[int, tuple[int, Any]], seconds: float, offset: int, share: int) -> dict:
                    i, (port, gateway) = item
                    if not wrk_available():       # the smoke run on a machine without wrk
                        row = asyncio.run(_python_load(port, seconds, min(share, 4), offset + i * 100_000_000))
                        return {**row, "cpu_percent": {}}
                    return run_wrk(f"http://127.0.0.1:{port}", duration=seconds, connections=share, threads=1,
                                   base=offset + i * 100_000_000, watch={f"gateway-{i}": gateway.pid})
                assert pg.proc is not None
                with ThreadPoolExecutor(instances) as pool:
                    warm = [pool.submit(load, item, 1, base + 500_000_000, share) for item in enumerate(gateways)]
                    [f.result() for f in warm]
                    pg_before, fake_before = tree_cpu_seconds(pg.proc.pid), cpu_seconds(fake.pid)
                    started = time.monotonic()
                    rows = [f.result() for f in [pool.submit(load, item, duration, base, share)
                                                 for item in enumerate(gateways)]]
                    wall = time.monotonic() - started
                cpu = {k: v for row in rows for k, v in row["cpu_percent"].items()}
                used = cpu_used(fake.pid, fake_before)
                if used is not None:
                    cpu["fake_ami"] = round(100 * used / wall, 1)
                pg_after = tree_cpu_seconds(pg.proc.pid)
                if store == "postgresql" and pg_before is not None and pg_after is not None:
                    cpu["postgresql"] = round(100 * (pg_after - pg_before) / wall, 1)
                results["runs"][f"{store}_{instances}_instance{'s' if instances > 1 else ''}"] = {
                    "store": store, "instances": instances, "rps": round(sum(r["rps"] for r in rows), 1),
                    "per_instance_rps": [r["rps"] for r in rows], "non_200": sum(r["non_200"] for r in rows),
                    "p50_ms": max(r["p50_ms"] for r in rows), "p99_ms": max(r["p99_ms"] for r in rows),
                    "cpu_percent": cpu}
                for _, gateway in gateways:
                    procs.stop(gateway)
                procs.stop(fake)
    finally:
        pg.stop()
    return results


async def _python_load(port: int, duration: float, connections: int, base: int) -> dict:
    """Fallback load generator when wrk is absent (CI smoke): keep-alive connections, each
    sending one request after the other. Much slower than wrk: only for checking the harness."""
    import asyncio

    from .common import percentile
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(base, base + 10**8))
    deadline = time.monotonic() + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                n = next(counter)
                started = time.perf_counter()
                writer.write(f"GET /v1/click2call/async?ext={n:010d}&phone=09{n:010d} HTTP/1.1\r\n"
                             f"Host: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                lines = head.decode("latin-1").split("\r\n")
                length = next(int(ln.split(":", 1)[1]) for ln in lines if ln.lower().startswith("content-length:"))
                await asyncio.wait_for(reader.readexactly(length), 10)
                latencies.append(time.perf_counter() - started)
                status = int(lines[0].split()[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return {"requests": len(latencies), "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 3), "p90_ms": round(percentile(latencies, 90) * 1000, 3),
            "p99_ms": round(percentile(latencies, 99) * 1000, 3), "max_ms": round(max(latencies) * 1000, 3),
            "non_200": sum(v for k, v in statuses.items() if k != 200), "statuses": statuses,
            "load_generator": "python (wrk not installed)"}


def run_smoke(workdir: str, duration: float = 1.0) -> dict:
    """Same processes as ``run``, tiny load; uses wrk if installed, else the Python client."""
    import asyncio
    out: dict = {"runs": {}}
    with Processes(workdir) as procs:
        ami_port = free_port()
        fake = procs.start("fake_ami", [PYTHON, "-m", "c2c_ami.testing.fake_ami", "--port", str(ami_port),
                                        "--talk-time", "0", "--dial", "trunk"])
        wait_port(ami_port, 20, fake)
        for name, argv_or_config in (("bare_aiohttp", None), ("gateway_info", "INFO")):
            port = free_port()
            if argv_or_config is None:
                proc = procs.start("bare", [PYTHON, "-m", "bench.bare_server", "--port", str(port)])
            else:
                proc = start_gateway(procs, gateway_yaml(os.path.join(workdir, "gw-smoke.yaml"), port, ami_port))
            wait_ready(port, 20, proc)
            if wrk_available():
                row = run_wrk(f"http://127.0.0.1:{port}", duration=duration, connections=8, threads=1,
                              base=0, watch={})
            else:
                row = asyncio.run(_python_load(port, duration, 4, 0))
            out["runs"][name] = row
            procs.stop(proc)
    bare = out["runs"]["bare_aiohttp"]["rps"]
    for row in out["runs"].values():
        row["percent_of_bare"] = round(100 * row["rps"] / bare, 1) if bare else None
    return out
