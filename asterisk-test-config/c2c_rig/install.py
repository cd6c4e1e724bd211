"""Provisioning, run once as root: an Asterisk (the host's, else Asterisk 22 in a cached Debian
sid root, else bullseye's 16 on the host) and sipp, recorded in runtime.json.  Idempotent and
cached so every test run after the first starts in a fraction of a second."""

import glob
import os
import re
import shutil
import sys
import tempfile
import time

from .errors import RigError
from .runtime import CACHE_DIR, load_runtime, locked, run, save_runtime, wrap

SID_ROOT = "asterisk-sid"              # inside CACHE_DIR


def say(msg):
    print(f"rig: {msg}", file=sys.stderr, flush=True)


def apt_entries():
    """(uri, suites) of the enabled `deb` entries of the host's apt sources (one-line and deb822)."""
    entries = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split("#", 1)[0].split()
            if not parts or parts[0] != "deb":
                continue
            parts = parts[1:]
            if parts and parts[0].startswith("["):       # [arch=amd64 signed-by=...]
                while parts and not parts[0].endswith("]"):
                    parts.pop(0)
                parts = parts[1:]
            if len(parts) >= 2:
                entries.append((parts[0], [parts[1]]))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields, key = {}, None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                    continue
                key, _, val = line.partition(":")
                key = key.strip().lower()
                fields[key] = val.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split()))
    return [(u.rstrip("/"), s) for u, s in entries if re.match(r"https?://", u)]


DEBIAN_SUITES = ("oldstable", "stable", "testing", "unstable", "sid", "buster", "bullseye",
                 "bookworm", "trixie", "forky", "duke")


def debian_mirror():
    """URI of the host's entry serving the Debian main archive; deb.debian.org as last resort."""
    for uri, suites in apt_entries():
        if any(s.split("-")[0] in DEBIAN_SUITES and not s.endswith("-security") for s in suites) \
                and "security" not in uri:
            return uri
    return "http://deb.debian.org/debian"


def security_mirror():
    for uri, suites in apt_entries():
        if any(s.endswith("-security") for s in suites):
            return uri
    return "http://security.debian.org/debian-security"


def host_suite():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def apt_install(*packages):
    """apt-get install; on failure run apt-get update once and retry."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if run(cmd, env=env).returncode == 0:
        return True
    run(["apt-get", "update"], env=env)
    return run(cmd, env=env).returncode == 0


def module_dir(root):
    for d in ["usr/lib/x86_64-linux-gnu/asterisk/modules", "usr/lib/aarch64-linux-gnu/asterisk/modules",
              "usr/lib/asterisk/modules"] + [p[len(root.rstrip("/")) + 1:] for p in
                                             glob.glob(os.path.join(root, "usr/lib/*/asterisk/modules"))]:
        if os.path.exists(os.path.join(root, d, "chan_pjsip.so")):
            return "/" + d
    return None


def asterisk_version(runtime):
    cmd = wrap(runtime, [runtime["asterisk"], "-V"])
    r = run(cmd, capture_output=True, text=True, timeout=20)
    return r.stdout.strip()



def _sid_root_ok(root):
    return os.path.exists(os.path.join(root, "usr/sbin/asterisk")) and module_dir(root)


def build_sid_root(dest):
    """Debian sid root with Asterisk, built in a temp dir and renamed into place (atomic)."""
    mirror = debian_mirror()
    os.makedirs(CACHE_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{SID_ROOT}.build-", dir=CACHE_DIR)
    os.chmod(work, 0o755)                        # apt's _apt user downloads into it
    target = os.path.join(work, "root")
    try:
        if not shutil.which("mmdebstrap"):
            say("installing mmdebstrap")
            apt_install("mmdebstrap")
        ok = False
        if shutil.which("mmdebstrap"):
            cmd = ["mmdebstrap", "--mode=root", "--variant=minbase", "--include=asterisk",
                   '--aptopt=Acquire::Check-Valid-Until "false"',
                   '--aptopt=APT::Install-Recommends "false"', "sid", target, mirror]
            say(f"building a Debian sid root with Asterisk (once, cached in {dest}) from {mirror}")
            # private mount namespace: an interrupted build leaves no mount behind.  Not
            # possible inside a chroot whose / is no mount point (unshare says EINVAL).
            private = ["unshare", "--mount", "--propagation", "private", "--"]
            if shutil.which("unshare") and run(private + ["true"], capture_output=True).returncode == 0:
                cmd = private + cmd
            ok = run(cmd, env=dict(os.environ, TMPDIR=work)).returncode == 0 and _sid_root_ok(target)
        if not ok:
            ok = _debootstrap_sid(target, mirror, work)
        if not ok:
            return False
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(target, dest)
        return True
    finally:
        run(["rm", "-rf", "--one-file-system", work])


def _debootstrap_sid(target, mirror, work):
    """Fallback: debootstrap minbase sid, then apt-get install asterisk inside (no daemon start)."""
    shutil.rmtree(target, ignore_errors=True)
    if not shutil.which("debootstrap") and not apt_install("debootstrap"):
        return False
    say("mmdebstrap failed: trying debootstrap")
    if run(["debootstrap", "--variant=minbase", "sid", target, mirror],
            env=dict(os.environ, TMPDIR=work)).returncode != 0:
        return False
    policy = os.path.join(target, "usr/sbin/policy-rc.d")
    with open(policy, "w") as f:
        f.write("#!/bin/sh\nexit 101\n")
    os.chmod(policy, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    opts = ["-o", 'Acquire::Check-Valid-Until=false']
    ok = (run(["chroot", target, "apt-get", *opts, "update"], env=env).returncode == 0 and
          run(["chroot", target, "apt-get", *opts, "install", "-y", "--no-install-recommends",
                "asterisk"], env=env).returncode == 0)
    os.unlink(policy)
    return ok and bool(_sid_root_ok(target))


def install_bullseye_host():
    """Last resort: bullseye's Asterisk 16 on the host, via a private extra sources list."""
    mirror, sec = debian_mirror(), security_mirror()
    work = tempfile.mkdtemp(prefix=".bullseye-apt-", dir=CACHE_DIR)
    lists = os.path.join(work, "lists")
    os.makedirs(os.path.join(lists, "partial"))
    srcs = os.path.join(work, "sources.list")
    suite = host_suite()
    with open(srcs, "w") as f:
        f.write(f"deb {mirror} bullseye main\ndeb {sec} bullseye-security main\n")
        if suite:
            f.write(f"deb {mirror} {suite} main\n")
    opts = [f"-oDir::Etc::SourceList={srcs}", f"-oDir::State::Lists={lists}",
            "-oDir::Etc::SourceParts=/dev/null", "-oAcquire::Check-Valid-Until=false"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy, made_policy = "/usr/sbin/policy-rc.d", False
    try:
        if not os.path.exists(policy):               # keep postinst from starting asterisk
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
            made_policy = True
        say("falling back to bullseye's Asterisk 16 on the host")
        ok = (run(["apt-get", *opts, "update"], env=env).returncode == 0 and
              run(["apt-get", *opts, "install", "-y", "--no-install-recommends", "asterisk"],
                   env=env).returncode == 0)
    finally:
        if made_policy:
            os.unlink(policy)
        shutil.rmtree(work, ignore_errors=True)
    if ok:
        stop_system_asterisk()
    return ok


def stop_system_asterisk():
    """A package postinst may enable asterisk.service: never leave a system-wide Asterisk."""
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        run(["systemctl", "disable", "--now", "asterisk.service"], capture_output=True)


def install(verbose=True):
    """Idempotent: pick (or build once) an Asterisk, make sure sipp exists, write runtime.json."""
    rt = load_runtime()
    if rt:
        if verbose:
            say(f"already installed: {rt['version']} ({rt['kind']} {rt['root']})")
        return rt
    if os.geteuid() != 0:
        raise RigError("rig.py install must run as root (it uses apt-get, mmdebstrap and chroot)")
    with locked(os.path.join(CACHE_DIR, ".install.lock")):
        return _install(verbose)


def _install(verbose):
    rt = load_runtime()                              # another process may have just finished
    if rt:
        if verbose:
            say(f"already installed: {rt['version']} ({rt['kind']} {rt['root']})")
        return rt
    t0 = time.monotonic()
    for stale in glob.glob(os.path.join(CACHE_DIR, f".{SID_ROOT}.build-*")):   # a killed build's
        run(["rm", "-rf", "--one-file-system", stale])                         # (we hold the lock)
    sid = os.path.join(CACHE_DIR, SID_ROOT)
    host = shutil.which("asterisk") or ("/usr/sbin/asterisk" if os.path.exists("/usr/sbin/asterisk") else None)
    if host and module_dir("/"):                     # the user's own Asterisk: used, not touched
        rt = {"kind": "host", "root": "/", "asterisk": host, "moddir": module_dir("/"),
              "source": "asterisk already on the host"}
    elif _sid_root_ok(sid) or build_sid_root(sid):
        rt = {"kind": "chroot", "root": sid, "asterisk": "/usr/sbin/asterisk",
              "moddir": module_dir(sid), "source": f"Debian sid root from {debian_mirror()}"}
    elif install_bullseye_host() and module_dir("/"):
        rt = {"kind": "host", "root": "/", "asterisk": shutil.which("asterisk") or "/usr/sbin/asterisk",
              "moddir": module_dir("/"), "source": "bullseye Asterisk 16 on the host"}
    else:
        raise RigError("could not get Asterisk: no asterisk on PATH, the Debian sid root build "
                       "(mmdebstrap/debootstrap) failed and bullseye's package failed too")
    sipp = shutil.which("sipp")
    if not sipp:
        say("installing sipp (sip-tester)")
        apt_install("sip-tester")
        sipp = shutil.which("sipp")
    if not sipp:
        raise RigError("could not install sipp: apt-get install sip-tester failed")
    rt["sipp"] = sipp
    rt["version"] = asterisk_version(rt)
    rt["installed"] = time.strftime("%Y-%m-%d %H:%M:%S")
    rt["install_seconds"] = round(time.monotonic() - t0, 1)
    save_runtime(rt)
    if verbose:
        say(f"installed in {rt['install_seconds']} s: {rt['version']} ({rt['kind']} {rt['root']})")
    return rt
