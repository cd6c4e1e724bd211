"""``python -m bench.profile [--seconds N] [--out DIR]``: py-spy (if installed) records the
gateway process and the fake AMI while wrk drives GET /v1/click2call/async; writes
speedscope/flamegraph files and prints the top frames. A developer tool, not run by CI."""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import threading

from .async_bench import run_wrk
from .common import PYTHON, Processes, free_port, gateway_yaml, start_gateway, wait_port, wait_ready, workdir


def top_frames(collapsed_path: str, n: int = 25) -> list[tuple[str, int, float]]:
    """(frame, self samples, percent) from a py-spy ``--format raw`` (collapsed) file."""
    own: collections.Counter = collections.Counter()
    total = 0
    with open(collapsed_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)
            own[stack.split(";")[-1]] += int(count)
    return [(frame, c, round(100 * c / total, 1)) for frame, c in own.most_common(n)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", default=os.path.join("bench", "results", "profile"))
    parser.add_argument("--dial", default="trunk", choices=("trunk", "none"))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    if shutil.which("py-spy") is None and not os.path.exists(os.path.join(os.path.dirname(PYTHON), "py-spy")):
        raise SystemExit("py-spy is not installed (pip install py-spy into the venv)")
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(PYTHON), "py-spy")
    os.makedirs(args.out, exist_ok=True)
    with workdir() as wd, Processes(wd) as procs:
        ami_port = free_port()
        fake = procs.start("fake_ami", [PYTHON, "-m", "c2c_ami.testing.fake_ami", "--port", str(ami_port),
                                        "--talk-time", "0", "--dial", args.dial])
        wait_port(ami_port, 20, fake)
        http_port = free_port()
        gateway = start_gateway(procs, gateway_yaml(os.path.join(wd, "gw.yaml"), http_port, ami_port),
                                args.log_level)
        wait_ready(http_port, 20, gateway)
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(run_wrk(
            f"http://127.0.0.1:{http_port}", duration=args.seconds + 2, connections=64, threads=1,
            base=0, watch={"gateway": gateway.pid, "fake_ami": fake.pid})))
        load.start()
        recorders = []
        for name, pid in (("gateway", gateway.pid), ("fake_ami", fake.pid)):
            raw = os.path.join(args.out, f"{name}.collapsed")
            recorders.append((name, raw, subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--rate", "200",
                 "--format", "raw", "--output", raw, "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        for _name, _raw, rec in recorders:
            try:
                rec.wait(args.seconds + 30)
            finally:
                if rec.poll() is None:
                    rec.kill()
                    rec.wait(5)
        load.join(args.seconds + 70)
    print(f"wrk: {result.get('rps')} req/s, p50 {result.get('p50_ms')} ms, "
          f"cpu {result.get('cpu_percent')}")
    for name, raw, _ in recorders:
        if os.path.exists(raw):
            print(f"\n{name}: top self-time frames ({raw})")
            for frame, _count, pct in top_frames(raw):
                print(f"  {pct:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
