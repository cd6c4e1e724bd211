"""The installed runtime (runtime.json in the cache dir: which Asterisk, host or chroot, which
sipp) and the small helpers both provisioning and instances need to run its programs."""

import contextlib
import fcntl
import json
import os
import subprocess

# env C2C_RIG_CACHE: holds the Asterisk root, runtime.json (and the instances of a host Asterisk).
CACHE_DIR = os.environ.get("C2C_RIG_CACHE", "/var/cache/c2c-ami")
RUNTIME_JSON = "runtime.json"          # inside CACHE_DIR: what `up` runs
LAYOUT = 2                             # runtime.json's shape: one Asterisk per channel driver


def run(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(cmd, **kw)


def wrap(asterisk, cmd):
    """CMD run where ASTERISK lives (runtime.json's entry of one driver): in its root or here."""
    return (["chroot", asterisk["root"]] + cmd) if asterisk["kind"] == "chroot" else cmd


def runtime_path():
    return os.path.join(CACHE_DIR, RUNTIME_JSON)


def load_runtime():
    try:
        with open(runtime_path()) as f:
            rt = json.load(f)
    except (OSError, ValueError):
        return None
    if rt.get("layout") != LAYOUT:         # an older rig's: install again (roots are reused)
        return None
    for asterisk in rt["asterisks"].values():
        exe = os.path.join(asterisk.get("root", "/"), asterisk.get("asterisk", "").lstrip("/"))
        if not os.path.exists(exe):
            return None
    if not rt.get("sipp") or not os.path.exists(rt["sipp"]):
        return None
    return rt


def save_runtime(rt):
    os.makedirs(CACHE_DIR, exist_ok=True)
    tmp = runtime_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rt, f, indent=1)
    os.replace(tmp, runtime_path())


@contextlib.contextmanager
def locked(path):
    """Exclusive flock on PATH: concurrent installs/ups (two pytest runs) take turns."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
