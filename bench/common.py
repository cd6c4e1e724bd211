"""Shared plumbing: child processes (always killed), free ports, the gateway's config,
percentiles, RSS and CPU time of a process."""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
TOKEN = "bench-token-0123456789"
AMI_USER, AMI_SECRET = "c2c", "change-me"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    """Raise this process's open-file soft limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait (bounded) until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on port {port} after {timeout} s") from None
            time.sleep(0.02)


class Processes:
    """Starts child processes and guarantees each is gone when the ``with`` block ends."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Processes:
        return self

    def start(self, name: str, argv: Sequence[str], **kw) -> subprocess.Popen:
        with open(os.path.join(self.logdir, f"{name}.log"), "wb") as log:   # the child keeps its copy
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    start_new_session=True, **kw)
        proc.bench_name = name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def log_of(self, name: str) -> str:
        with open(os.path.join(self.logdir, f"{name}.log"), encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """SIGTERM (the gateway drains), SIGKILL after ``timeout``; always reaped."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def __exit__(self, *exc) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def gateway_yaml(path: str, http_port: int, ami_port: int, *, ami_host: str = "127.0.0.1",
                 ami_user: str = AMI_USER, ami_secret: str = AMI_SECRET,
                 ring_timeout: float = 60, sync_timeout: float = 120,
                 extensions: str = r"^[0-9]{1,12}$", storage: str | None = None,
                 storage_url: str | None = None, tenant: dict | None = None, endpoint: str = "PJSIP/{ext}") -> str:
    """A gateway config: one tenant admitting many extensions, limits out of the way."""
    raw = {
        "listen": {"host": "127.0.0.1", "port": http_port},
        "ami": {"host": ami_host, "port": ami_port, "username": ami_user, "secret": ami_secret,
                "connect_timeout": 5.0, "action_timeout": 30.0, "ping_interval": 60.0,
                "ping_timeout": 30.0, "boot_wait": 2.0, "reconnect_min": 0.1, "reconnect_max": 1.0},
        "calls": {"ring_timeout": ring_timeout, "dial_timeout": 60, "sync_timeout": sync_timeout},
        "limits": {"rate_per_minute": 9_000_000, "rate_burst": 1_000_000_000,
                   "duplicate_window": 5, "shutdown_grace": 1.0, "per_extension_per_minute": 0},
        # the CDR store lives in the bench's temp dir, never in the repo's var/
        "storage": {"url": storage_url} if storage_url else {
            "path": storage or os.path.join(os.path.dirname(os.path.abspath(path)),
                                            os.path.basename(path) + ".sqlite3")},
        "tenants": [{"domain": "bench", "tokens": [TOKEN], "endpoint": endpoint,
                     "context": "c2c-outbound", "extensions": extensions,
                     "hotlines": {"02873001234": "hotline-trunk"}, **(tenant or {})}],
    }
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(raw, fh)
    # fail here, not in the child, if the config is unusable
    from c2c_ami.config import load_config
    load_config(path)
    return path


def start_gateway(procs: Processes, config_path: str, log_level: str = "INFO",
                  name: str = "gateway", extra: Sequence[str] = ()) -> subprocess.Popen:
    return procs.start(name, [PYTHON, "-m", "c2c_ami", "--config", config_path,
                              "--log-level", log_level, *extra])


def tree_cpu_seconds(root_pid: int) -> float | None:
    """CPU seconds of a process and all its descendants (a PostgreSQL server and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        used = cpu_seconds(pid)
        if used is not None:
            total += used
        todo += children.get(pid, [])
    return total


def wait_ready(http_port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait (bounded) until GET /readyz answers 200 (AMI logged in)."""
    import http.client
    wait_port(http_port, timeout, proc)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=1)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway on port {http_port} not ready after {timeout} s")
        time.sleep(0.05)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values (at least one)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def proc_status_kib(pid: int, field: str) -> int | None:
    """VmRSS / VmHWM (peak RSS) of a process in KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """VmRSS / VmHWM of a running process in MiB (a bench measures only live processes)."""
    kib = proc_status_kib(pid, field)
    if kib is None:
        raise RuntimeError(f"no {field} for process {pid}: it has exited")
    return round(kib / 1024, 1)


def cpu_seconds(pid: int) -> float | None:
    """user+system CPU seconds used so far by a process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


@contextlib.contextmanager
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="c2c-bench-") as d:
        yield d


def cpu_used(pid: int, since: float | None) -> float | None:
    """CPU seconds a process used since the reading ``since``; None if either is unknown."""
    now = cpu_seconds(pid)
    return None if now is None or since is None else round(now - since, 2)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
