"""Provisioning, run once as root: two Asterisks, each in its own cached Debian root (Asterisk
22 with PJSIP from sid, Asterisk 16 with chan_sip from bullseye), sipp on the host and baresip
in the sid root, recorded in runtime.json.  A host Asterisk is used only when asked for
(`--host-asterisk`), never silently.  Idempotent and cached: every run after the first starts
in a fraction of a second."""

import glob
import os
import re
import shutil
import sys
import tempfile
import time

from .errors import RigError
from .plan import DRIVERS
from .runtime import CACHE_DIR, LAYOUT, load_runtime, locked, run, save_runtime, wrap

# driver -> its Debian root inside CACHE_DIR, and what goes in it
ROOTS = {"pjsip": "asterisk-sid", "chan_sip": "asterisk-bullseye"}
ROOT_PACKAGES = {"pjsip": ["asterisk", "baresip-core"], "chan_sip": ["asterisk"]}


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


def apt_install(*packages):
    """apt-get install; on failure run apt-get update once and retry."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if run(cmd, env=env).returncode == 0:
        return True
    run(["apt-get", "update"], env=env)
    return run(cmd, env=env).returncode == 0


def module_dir(root, driver="pjsip"):
    """Asterisk's module directory inside ROOT, if it has the channel driver's module."""
    module = "chan_pjsip.so" if driver == "pjsip" else "chan_sip.so"
    for d in ["usr/lib/x86_64-linux-gnu/asterisk/modules", "usr/lib/aarch64-linux-gnu/asterisk/modules",
              "usr/lib/asterisk/modules"] + [p[len(root.rstrip("/")) + 1:] for p in
                                             glob.glob(os.path.join(root, "usr/lib/*/asterisk/modules"))]:
        if os.path.exists(os.path.join(root, d, module)):
            return "/" + d
    return None


def asterisk_version(asterisk):
    cmd = wrap(asterisk, [asterisk["asterisk"], "-V"])
    r = run(cmd, capture_output=True, text=True, timeout=20)
    return r.stdout.strip()


def _root_ok(root, driver):
    return os.path.exists(os.path.join(root, "usr/sbin/asterisk")) and module_dir(root, driver)


ARCHIVE = "http://archive.debian.org/debian"       # where a suite goes when its support ends
ARCHIVE_SECURITY = "http://archive.debian.org/debian-security"


def _sources(suite, archived=False):
    """The apt sources of a root: the host's Debian mirror (or, once the suite has left it,
    archive.debian.org), and security for a released suite."""
    mirror, security = (ARCHIVE, ARCHIVE_SECURITY) if archived else (debian_mirror(), security_mirror())
    if suite in ("sid", "unstable"):
        return [f"deb {mirror} {suite} main"]
    return [f"deb {mirror} {suite} main", f"deb {security} {suite}-security main"]


def build_root(driver, dest):
    """A Debian root with Asterisk for DRIVER, built in a temp dir and renamed into place
    (atomic): sid for Asterisk 22 (PJSIP; also baresip, a real softphone), bullseye for
    Asterisk 16 (chan_sip)."""
    suite, packages = DRIVERS[driver]["suite"], ROOT_PACKAGES[driver]
    os.makedirs(CACHE_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.build-", dir=CACHE_DIR)
    os.chmod(work, 0o755)                        # apt's _apt user downloads into it
    target = os.path.join(work, "root")
    try:
        if not shutil.which("mmdebstrap"):
            say("installing mmdebstrap")
            apt_install("mmdebstrap")
        ok = False
        # bullseye (Asterisk 16) will leave the mirrors for archive.debian.org: try both
        for archived in ((False,) if suite in ("sid", "unstable") else (False, True)):
            if ok or not shutil.which("mmdebstrap"):
                break
            shutil.rmtree(target, ignore_errors=True)
            cmd = ["mmdebstrap", "--mode=root", "--variant=minbase", f"--include={','.join(packages)}",
                   '--aptopt=Acquire::Check-Valid-Until "false"',
                   '--aptopt=APT::Install-Recommends "false"', suite, target, *_sources(suite, archived)]
            say(f"building a Debian {suite} root with {', '.join(packages)} (once, cached in {dest})"
                + (" from archive.debian.org" if archived else ""))
            # private mount namespace: an interrupted build leaves no mount behind.  Not
            # possible inside a chroot whose / is no mount point (unshare says EINVAL).
            private = ["unshare", "--mount", "--propagation", "private", "--"]
            if shutil.which("unshare") and run(private + ["true"], capture_output=True).returncode == 0:
                cmd = private + cmd
            ok = run(cmd, env=dict(os.environ, TMPDIR=work)).returncode == 0 and bool(_root_ok(target, driver))
        if not ok:
            ok = _debootstrap(target, suite, packages, work, driver)
        if not ok:
            return False
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(target, dest)
        return True
    finally:
        run(["rm", "-rf", "--one-file-system", work])


def _debootstrap(target, suite, packages, work, driver):
    """Fallback: debootstrap minbase, then apt-get install the packages inside (no daemon start)."""
    shutil.rmtree(target, ignore_errors=True)
    if not shutil.which("debootstrap") and not apt_install("debootstrap"):
        return False
    say("mmdebstrap failed: trying debootstrap")
    if run(["debootstrap", "--variant=minbase", suite, target, debian_mirror()],
            env=dict(os.environ, TMPDIR=work)).returncode != 0:
        return False
    with open(os.path.join(target, "etc/apt/sources.list"), "w") as f:
        f.write("\n".join(_sources(suite)) + "\n")
    return _apt_in_root(target, packages) and bool(_root_ok(target, driver))


def _apt_in_root(root, packages):
    """apt-get install PACKAGES inside ROOT, with no daemon started by a postinst."""
    policy = os.path.join(root, "usr/sbin/policy-rc.d")
    with open(policy, "w") as f:
        f.write("#!/bin/sh\nexit 101\n")
    os.chmod(policy, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    opts = ["-o", "Acquire::Check-Valid-Until=false"]
    try:
        return (run(["chroot", root, "apt-get", *opts, "update"], env=env).returncode == 0 and
                run(["chroot", root, "apt-get", *opts, "install", "-y", "--no-install-recommends",
                     *packages], env=env).returncode == 0)
    finally:
        os.unlink(policy)


def _baresip(root):
    """baresip inside the sid root (added to a root cached before it was wanted); None if
    it does not install: the softphone test then fails, nothing else needs it."""
    path = "/usr/bin/baresip"
    if not os.path.exists(os.path.join(root, path.lstrip("/"))):
        say("adding baresip to the sid root")
        _apt_in_root(root, ["baresip-core"])
    return path if os.path.exists(os.path.join(root, path.lstrip("/"))) else None


def _host_asterisk(driver):
    host = shutil.which("asterisk") or ("/usr/sbin/asterisk" if os.path.exists("/usr/sbin/asterisk") else None)
    if host and module_dir("/", driver):
        return {"kind": "host", "root": "/", "asterisk": host, "moddir": module_dir("/", driver),
                "source": "the host's own Asterisk (rig.py install --host-asterisk)"}
    return None


def _asterisk_for(driver):
    """DRIVER's Asterisk in its cached Debian root (built once); a host Asterisk is noted,
    not used (only `install --host-asterisk` uses it)."""
    if _host_asterisk(driver):
        say(f"an Asterisk is installed on the host; the rig uses its own ({driver}) "
            "unless installed with --host-asterisk")
    root = os.path.join(CACHE_DIR, ROOTS[driver])
    if not (_root_ok(root, driver) or build_root(driver, root)):
        raise RigError(f"could not build the Debian {DRIVERS[driver]['suite']} root with Asterisk for "
                       f"{driver} (mmdebstrap and debootstrap failed; see the messages above)")
    return {"kind": "chroot", "root": root, "asterisk": "/usr/sbin/asterisk", "moddir": module_dir(root, driver),
            "source": f"Debian {DRIVERS[driver]['suite']} root from {debian_mirror()}"}


def stop_system_asterisk():
    """A package postinst may enable asterisk.service: never leave a system-wide Asterisk."""
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        run(["systemctl", "disable", "--now", "asterisk.service"], capture_output=True)


def _wanted(rt, use_host):
    """RT (runtime.json) is what was asked for: USE_HOST None takes whatever is installed."""
    return rt and (use_host is None or bool(rt.get("use_host")) == use_host)


def install(verbose=True, use_host=None):
    """Idempotent: both Asterisks (built once), sipp and baresip; writes runtime.json.
    USE_HOST True: the host's Asterisk for the drivers it has (nothing built); False: the
    Debian roots; None (tests): whatever is installed, else the roots."""
    rt = load_runtime()
    if _wanted(rt, use_host):
        if verbose:
            say(f"already installed: {describe(rt)}")
        return rt
    if os.geteuid() != 0:
        raise RigError("rig.py install must run as root (it uses apt-get, mmdebstrap and chroot)")
    with locked(os.path.join(CACHE_DIR, ".install.lock")):
        return _install(verbose, use_host)


def describe(rt):
    return "; ".join(f"{driver}: {a['version']} ({a['kind']} {a['root']})"
                     for driver, a in rt["asterisks"].items())


def _install(verbose, use_host):
    rt = load_runtime()                              # another process may have just finished
    if _wanted(rt, use_host):
        if verbose:
            say(f"already installed: {describe(rt)}")
        return rt
    t0 = time.monotonic()
    for stale in glob.glob(os.path.join(CACHE_DIR, ".asterisk-*.build-*")):    # a killed build's
        run(["rm", "-rf", "--one-file-system", stale])                         # (we hold the lock)
    if use_host:                                     # only what the host has: nothing is built
        asterisks = {driver: a for driver in DRIVERS if (a := _host_asterisk(driver))}
        if not asterisks:
            raise RigError("--host-asterisk: the host has no Asterisk with chan_pjsip or chan_sip")
        say(f"using the host's Asterisk for {', '.join(asterisks)}")
    else:
        asterisks = {driver: _asterisk_for(driver) for driver in DRIVERS}
    for a in asterisks.values():
        a["version"] = asterisk_version(a)
    stop_system_asterisk()
    sipp = shutil.which("sipp")
    if not sipp:
        say("installing sipp (sip-tester)")
        apt_install("sip-tester")
        sipp = shutil.which("sipp")
    if not sipp:
        raise RigError("could not install sipp: apt-get install sip-tester failed")
    sid = os.path.join(CACHE_DIR, ROOTS["pjsip"])
    rt = {"layout": LAYOUT, "asterisks": asterisks, "sipp": sipp, "use_host": bool(use_host),
          "baresip": {"root": sid, "path": _baresip(sid)} if not use_host and _root_ok(sid, "pjsip") else None,
          "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
          "install_seconds": round(time.monotonic() - t0, 1)}
    save_runtime(rt)
    if verbose:
        say(f"installed in {rt['install_seconds']} s: {describe(rt)}")
    return rt
