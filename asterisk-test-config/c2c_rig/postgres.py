"""A private, throw-away PostgreSQL server (for the tests and the benchmarks), from
Debian's packages.

``initdb`` into a temporary directory (as the ``postgres`` user when run as root: initdb
refuses root), then ``postgres`` on a free loopback port with its socket in that directory;
durability is turned off (the data is thrown away). ``scripts/setup`` installs the package;
if the server cannot start, the tests that need it fail.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid


class PostgresError(RuntimeError):
    pass


def _bin_dir() -> str:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs or not os.path.exists(os.path.join(dirs[-1], "initdb")):
        raise PostgresError("PostgreSQL is not installed (scripts/setup installs Debian's postgresql)")
    return dirs[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running_in_group(group: int) -> bool:
    """Whether a process of ``group`` still runs (zombies, dead but not reaped, do not)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue                            # gone meanwhile
        if int(fields[2]) == group and fields[0] != "Z":     # state, ppid, pgrp
            return True
    return False


class PrivatePostgres:
    user = "c2c"

    def __init__(self, *, crash_safe: bool = False) -> None:
        """``crash_safe``: a commit has reached the OS when it returns (``synchronous_commit``
        on), so it survives the server being killed (the outage tests kill it; ``fsync`` stays
        off: nobody kills the machine). Else commits may sit in PostgreSQL's own memory for a
        few hundred ms, which a kill loses (a fresh database's schema, say)."""
        self.crash_safe = crash_safe
        self.bin = _bin_dir()
        self.dir = tempfile.mkdtemp(prefix="c2c-pg-")
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _cmd(self, *argv: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if self._as_postgres else []) + list(argv)

    def start(self, timeout: float = 30.0) -> PrivatePostgres:
        data = os.path.join(self.dir, "data")
        subprocess.run(self._cmd(f"{self.bin}/initdb", "-D", data, "-U", self.user, "-A", "trust",
                                 "-E", "UTF8", "--no-sync", "--no-instructions"),
                       check=True, capture_output=True, timeout=120)
        try:
            return self._serve(timeout)
        except PostgresError:
            self.stop()
            raise

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the server and every backend at once (an outage, not a shutdown: clients'
        connections just break), and return once none of them runs; the data stays for
        ``restart``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        group = self.proc.pid                   # its own process group (start_new_session)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + timeout
        while _running_in_group(group):
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL's processes still run {timeout:g} s after SIGKILL")
            time.sleep(0.02)
        # Its lock files name a postmaster that is dead, but maybe not reaped (a zombie, where
        # PID 1 does not reap): a new one would take it for running and refuse to start.
        socket = os.path.join(self.dir, f".s.PGSQL.{self.port}")
        for stale in (os.path.join(self.dir, "data", "postmaster.pid"), f"{socket}.lock", socket):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)

    def restart(self, timeout: float = 30.0) -> PrivatePostgres:
        """The server again, on the same data and port, after ``kill`` (crash recovery)."""
        return self._serve(timeout)

    def _serve(self, timeout: float) -> PrivatePostgres:
        data = os.path.join(self.dir, "data")
        log = open(os.path.join(self.dir, "postgres.log"), "ab")  # noqa: SIM115 - the server keeps it
        self.proc = subprocess.Popen(
            self._cmd(f"{self.bin}/postgres", "-D", data, "-k", self.dir, "-p", str(self.port),
                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                      "-c", f"synchronous_commit={'on' if self.crash_safe else 'off'}",
                      "-c", "full_page_writes=off", "-c", "max_connections=200"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while subprocess.run([f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise PostgresError(f"PostgreSQL did not start: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "postgres.log"), encoding="utf-8", errors="replace") as fh:
                return fh.read()[-2000:]
        except OSError:
            return "(no log)"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or "t_" + uuid.uuid4().hex[:12]
        subprocess.run([f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
                       check=True, capture_output=True, timeout=30)
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # its own process group (runuser and the postmaster): SIGINT is a fast shutdown
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
