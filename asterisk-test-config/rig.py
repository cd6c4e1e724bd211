#!/usr/bin/env python3
"""c2c-ami test rig: a real Asterisk with sipp phones and carrier trunks on loopback.

    rig.py install                 get Asterisk (host, cached Debian sid root, or bullseye's 16) and sipp
    rig.py up [--offset N] [--json] [--foreground]
                                   start an isolated instance (own ports, own state dir)
    rig.py down [--offset N | --all]
                                   stop it, by PID; verifies no process and no port is left
    rig.py status [--json]         what runs (exit 0 if an instance is fully up, else 3)
    rig.py busy EXT / free EXT [--offset N]
                                   put an extension in a call (device state INUSE) / end it

Stdlib only.  Importable as `import rig` with asterisk-test-config/ on sys.path: tests use
`Rig.up()`, `Rig.down()`, the device-state helpers and the SIP trace readers (see README.md).
Environment: C2C_RIG_CACHE (default /var/cache/c2c-ami) holds the Asterisk root and runtime.json.
"""

import argparse
import contextlib
import fcntl
import glob
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.environ.get("C2C_RIG_CACHE", "/var/cache/c2c-ami")
SID_ROOT = "asterisk-sid"              # inside CACHE_DIR
RUNTIME_JSON = "runtime.json"          # inside CACHE_DIR: what `up` runs
CHROOT_STATE = "/var/lib/c2c-rig"      # instance dirs, as Asterisk sees them in the chroot

AMI_USER = "c2c"
AMI_SECRET = os.environ.get("C2C_RIG_AMI_SECRET", "change-me")
RIG_USER, RIG_SECRET = "rig", "rig-internal"

# ---------------------------------------------------------------- the extension table
# behaviour group -> extensions; one sipp UAS per group (Request-URI user = extension).
PHONE_GROUPS = {
    "answer": ["101", "105", "106"] + [str(e) for e in range(201, 231)],
    "busy": ["102"],
    "noanswer": ["103", "107", "108", "109"],
}
UNREGISTERED = ["104"]                 # in pjsip.conf, never registered: UNAVAILABLE
EXTENSIONS = sorted(PHONE_GROUPS["answer"] + PHONE_GROUPS["busy"] + PHONE_GROUPS["noanswer"]
                    + UNREGISTERED)
BEHAVIOUR = {"answer": "rings ~0.5 s, answers, stays up until BYE",
             "busy": "rejects with 486 Busy Here",
             "noanswer": "rings, never answers (CANCEL: 200 + 487)",
             "unregistered": "never registered (UNAVAILABLE)"}
HOTLINES = {"02873001234": "hotline-trunk", "02873005678": "hotline-trunk-2"}
TRUNKS = list(HOTLINES.values())
# Trunk answer by the LAST 3 digits of the dialed number (sipp/trunk.xml).
TRUNK_RESULTS = {"486": "486 Busy Here (DialStatus BUSY)",
                 "408": "180, never answers (DialStatus NOANSWER when C2C_DIAL_TIMEOUT expires)",
                 "503": "503 Service Unavailable (DialStatus CONGESTION, cause 34)",
                 "404": "404 Not Found (DialStatus NOANSWER on Asterisk 22, cause 1)",
                 "other": "180, 200 after ~1 s, trunk sends BYE ~3 s later (DialStatus ANSWER)"}


def password(ext):
    return f"pass{ext}"


def group_of(ext):
    for group, exts in PHONE_GROUPS.items():
        if ext in exts:
            return group
    raise RigError(f"extension {ext} has no SIP peer (registered extensions: "
                   f"{', '.join(e for e in EXTENSIONS if e not in UNREGISTERED)})")


class RigError(Exception):
    """Anything that stops the rig from doing its job; the message is one line for users."""


# ---------------------------------------------------------------- ports

MAX_OFFSET = 99


class Ports:
    """Every port of one instance, derived from its offset: 100 ports at 20000+100*N
    (AMI, SIP, sipp signalling/media/control) and 200 RTP ports at 40000+200*N."""

    def __init__(self, offset):
        if not 0 <= offset <= MAX_OFFSET:
            raise RigError(f"offset must be 0..{MAX_OFFSET}, got {offset}")
        self.offset = offset
        b = self.base = 20000 + 100 * offset
        self.ami = b + 38
        self.sip = b + 60
        self.uas = {"answer": b + 61, "busy": b + 62, "noanswer": b + 63,
                    "hotline-trunk": b + 71, "hotline-trunk-2": b + 72}
        self.register = b + 70
        # sipp binds -mp and -mp+2 (audio, video): 4 apart.
        self.media = {"answer": b + 80, "busy": b + 84, "noanswer": b + 88,
                      "hotline-trunk": b + 92, "hotline-trunk-2": b + 96, "register": b + 76}
        self.control = {"answer": b + 41, "busy": b + 42, "noanswer": b + 43,
                        "hotline-trunk": b + 44, "hotline-trunk-2": b + 45, "register": b + 46}
        self.rtp = (40000 + 200 * offset, 40000 + 200 * offset + 199)

    def listening(self):
        """(proto, port) pairs that must be free before `up` and after `down`."""
        pairs = [("tcp", self.ami), ("udp", self.sip)]
        for name, port in list(self.uas.items()) + [("register", self.register)]:
            pairs += [("udp", port), ("udp", self.media[name]), ("udp", self.media[name] + 2),
                      ("udp", self.control[name])]
        return pairs

    def as_dict(self):
        return {"offset": self.offset, "ami": self.ami, "sip": self.sip, "uas": self.uas,
                "register": self.register, "media": self.media, "control": self.control,
                "rtp": list(self.rtp)}


def port_free(proto, port, host="127.0.0.1"):
    """True if nobody listens on PORT (loopback or wildcard).  TCP uses SO_REUSEADDR so
    TIME_WAIT leftovers of closed AMI sessions do not count: only a listener does."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    for addr in (host, "0.0.0.0"):
        with socket.socket(socket.AF_INET, kind) as s:
            if proto == "tcp":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def busy_ports(ports):
    return [f"{proto}/{port}" for proto, port in ports.listening() if not port_free(proto, port)]


# ---------------------------------------------------------------- install

def say(msg):
    print(f"rig: {msg}", file=sys.stderr, flush=True)


def _run(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(cmd, **kw)


def apt_entries():
    """(uri, suites) of the enabled `deb` entries of the host's apt sources (one-line and deb822)."""
    entries = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            lines = open(path).read().splitlines()
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
            text = open(path).read()
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
        for line in open("/etc/os-release"):
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def apt_install(*packages):
    """apt-get install; on failure run apt-get update once and retry."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if _run(cmd, env=env).returncode == 0:
        return True
    _run(["apt-get", "update"], env=env)
    return _run(cmd, env=env).returncode == 0


def module_dir(root):
    for d in ["usr/lib/x86_64-linux-gnu/asterisk/modules", "usr/lib/aarch64-linux-gnu/asterisk/modules",
              "usr/lib/asterisk/modules"] + [p[len(root.rstrip("/")) + 1:] for p in
                                             glob.glob(os.path.join(root, "usr/lib/*/asterisk/modules"))]:
        if os.path.exists(os.path.join(root, d, "chan_pjsip.so")):
            return "/" + d
    return None


def asterisk_version(runtime):
    cmd = _wrap(runtime, [runtime["asterisk"], "-V"])
    r = _run(cmd, capture_output=True, text=True, timeout=20)
    return r.stdout.strip()


def _wrap(runtime, cmd):
    return (["chroot", runtime["root"]] + cmd) if runtime["kind"] == "chroot" else cmd


def runtime_path():
    return os.path.join(CACHE_DIR, RUNTIME_JSON)


def load_runtime():
    try:
        with open(runtime_path()) as f:
            rt = json.load(f)
    except (OSError, ValueError):
        return None
    exe = os.path.join(rt.get("root", "/"), rt.get("asterisk", "").lstrip("/"))
    if not os.path.exists(exe) or not rt.get("sipp") or not os.path.exists(rt["sipp"]):
        return None
    return rt


def _save_runtime(rt):
    os.makedirs(CACHE_DIR, exist_ok=True)
    tmp = runtime_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rt, f, indent=1)
    os.replace(tmp, runtime_path())


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
            if shutil.which("unshare") and _run(private + ["true"], capture_output=True).returncode == 0:
                cmd = private + cmd
            ok = _run(cmd, env=dict(os.environ, TMPDIR=work)).returncode == 0 and _sid_root_ok(target)
        if not ok:
            ok = _debootstrap_sid(target, mirror, work)
        if not ok:
            return False
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(target, dest)
        return True
    finally:
        _run(["rm", "-rf", "--one-file-system", work])


def _debootstrap_sid(target, mirror, work):
    """Fallback: debootstrap minbase sid, then apt-get install asterisk inside (no daemon start)."""
    shutil.rmtree(target, ignore_errors=True)
    if not shutil.which("debootstrap") and not apt_install("debootstrap"):
        return False
    say("mmdebstrap failed: trying debootstrap")
    if _run(["debootstrap", "--variant=minbase", "sid", target, mirror],
            env=dict(os.environ, TMPDIR=work)).returncode != 0:
        return False
    policy = os.path.join(target, "usr/sbin/policy-rc.d")
    with open(policy, "w") as f:
        f.write("#!/bin/sh\nexit 101\n")
    os.chmod(policy, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    opts = ["-o", 'Acquire::Check-Valid-Until=false']
    ok = (_run(["chroot", target, "apt-get", *opts, "update"], env=env).returncode == 0 and
          _run(["chroot", target, "apt-get", *opts, "install", "-y", "--no-install-recommends",
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
        ok = (_run(["apt-get", *opts, "update"], env=env).returncode == 0 and
              _run(["apt-get", *opts, "install", "-y", "--no-install-recommends", "asterisk"],
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
        _run(["systemctl", "disable", "--now", "asterisk.service"], capture_output=True)


def install(verbose=True):
    """Idempotent: pick (or build once) an Asterisk, make sure sipp exists, write runtime.json."""
    rt = load_runtime()
    if rt:
        if verbose:
            say(f"already installed: {rt['version']} ({rt['kind']} {rt['root']})")
        return rt
    if os.geteuid() != 0:
        raise RigError("rig.py install must run as root (it uses apt-get, mmdebstrap and chroot)")
    with _locked(os.path.join(CACHE_DIR, ".install.lock")):
        return _install(verbose)


def _install(verbose):
    rt = load_runtime()                              # another process may have just finished
    if rt:
        if verbose:
            say(f"already installed: {rt['version']} ({rt['kind']} {rt['root']})")
        return rt
    t0 = time.monotonic()
    for stale in glob.glob(os.path.join(CACHE_DIR, f".{SID_ROOT}.build-*")):   # a killed build's
        _run(["rm", "-rf", "--one-file-system", stale])                         # (we hold the lock)
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
    _save_runtime(rt)
    if verbose:
        say(f"installed in {rt['install_seconds']} s: {rt['version']} ({rt['kind']} {rt['root']})")
    return rt


# ---------------------------------------------------------------- processes

def _start_time(pid):
    """Kernel start time of PID (field 22 of /proc/PID/stat): tells a reused PID apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(proc):
    _reap(proc["pid"])
    start = _start_time(proc["pid"])
    return start is not None and start == proc["start"]


def _wait(predicate, timeout, step=0.05):
    """Poll PREDICATE until true or TIMEOUT seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


@contextlib.contextmanager
def _locked(path):
    """Exclusive flock on PATH: concurrent installs/ups (two pytest runs) take turns."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------- minimal AMI client

class Ami:
    """Synchronous AMI client (stdlib) for the rig's own needs: events off, one action at a time."""

    _ids = itertools.count(1)

    def __init__(self, port, username=RIG_USER, secret=RIG_SECRET, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.file.readline()                                  # "Asterisk Call Manager/x.y"
        r = self.action("Login", Username=username, Secret=secret, Events="off")
        if r.get("Response") != "Success":
            self.close()
            raise RigError(f"AMI login as {username} failed: {r.get('Message')}")

    def action(self, name, variables=(), **fields):
        aid = f"rig-{os.getpid()}-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        lines += [f"Variable: {k}={v}" for k, v in variables]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            msg = self._read()
            if msg.get("ActionID") == aid and "Response" in msg:
                return msg

    def _read(self):
        msg = {}
        while True:
            line = self.file.readline()
            if not line:
                raise RigError("AMI connection closed")
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if msg:
                    return msg
                continue
            key, _, value = line.partition(":")
            msg.setdefault(key.strip(), value.strip())

    def getvar(self, variable):
        return self.action("Getvar", Variable=variable).get("Value", "")

    def close(self):
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- SIP traces

class Headers:
    """Case-insensitive, multi-valued SIP headers in message order (compact forms expanded)."""

    COMPACT = {"i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via",
               "l": "content-length", "c": "content-type", "k": "supported", "s": "subject"}

    def __init__(self, pairs):
        self.pairs = [(self._norm(k), k, v) for k, v in pairs]

    def _norm(self, name):
        name = name.strip().lower()
        return self.COMPACT.get(name, name)

    def get(self, name, default=None):
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name):
        n = self._norm(name)
        return [v for k, _, v in self.pairs if k == n]

    def __contains__(self, name):
        return bool(self.get_all(name))

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def items(self):
        return [(orig, v) for _, orig, v in self.pairs]


_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>|^\s*([^;\s]+)')


def parse_name_addr(value):
    """'"Name" <sip:user@host>;tag=x' -> (display name or '', uri)."""
    m = _NAME_ADDR.match(value or "")
    if not m:
        return "", ""
    if m.group(3) is not None:
        name = m.group(1) if m.group(1) is not None else (m.group(2) or "")
        return re.sub(r"\\(.)", r"\1", name).strip(), m.group(3)
    return "", m.group(4)


def uri_user(uri):
    """User part of a SIP URI ('' when it has none, e.g. sip:127.0.0.1:5060)."""
    m = re.match(r"^\s*<?sips?:([^@;>]+)@", uri or "") or re.match(r"^\s*<?tel:([^;>]+)", uri or "")
    return m.group(1) if m else ""


class SipMessage:
    """One SIP message a peer received, as sipp's -trace_msg logged it."""

    def __init__(self, raw, time_, index, peer):
        self.raw, self.time, self.index, self.peer = raw, time_, index, peer
        head, _, self.body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        self.start_line = lines[0].strip()
        pairs = []
        for line in lines[1:]:
            if line[:1] in " \t" and pairs:                        # folded header
                pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            elif ":" in line:
                k, _, v = line.partition(":")
                pairs.append((k, v.strip()))
        self.headers = Headers(pairs)
        parts = self.start_line.split(" ", 2)
        if parts[0].startswith("SIP/"):
            self.method, self.request_uri = None, None
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        else:
            self.method, self.request_uri, self.status = parts[0], parts[1] if len(parts) > 1 else "", None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def headers_all(self, name):
        return self.headers.get_all(name)

    @property
    def request_user(self):
        return uri_user(self.request_uri)

    @property
    def from_display_name(self):
        return parse_name_addr(self.header("From", ""))[0]

    @property
    def from_user(self):
        return uri_user(parse_name_addr(self.header("From", ""))[1])

    @property
    def to_user(self):
        return uri_user(parse_name_addr(self.header("To", ""))[1])

    @property
    def call_id(self):
        return self.header("Call-ID")

    @property
    def cseq(self):
        return self.header("CSeq")

    def __repr__(self):
        return f"<SipMessage #{self.index} {self.start_line!r} at {self.peer}>"


_SEPARATOR = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)?\s*$", re.M)


def read_trace(path, peer=""):
    """Received messages of a sipp -trace_msg file, in order, retransmissions dropped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out, seen = [], set()
    marks = list(_SEPARATOR.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        block = text[m.end():end].lstrip("\n")
        kind, _, msg = block.partition("\n")
        if "message received" not in kind:
            continue
        msg = msg.strip("\n")
        if not msg:
            continue
        stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + float(m.group(2) or 0)
        sm = SipMessage(msg + "\n", stamp, len(out), peer)
        key = (sm.call_id, sm.cseq, sm.start_line, (sm.headers_all("Via") or [""])[0])
        if key in seen:                                            # a retransmission
            continue
        seen.add(key)
        out.append(sm)
    return out


# ---------------------------------------------------------------- the rig

def _render(text, values):
    def sub(m):
        if m.group(1) not in values:
            raise RigError(f"template field @{m.group(1)}@ has no value")
        return str(values[m.group(1)])
    return re.sub(r"@([A-Z0-9_]+)@", sub, text)


def instances_parent(runtime):
    """Host path of the directory holding instance state dirs."""
    if runtime["kind"] == "chroot":
        return os.path.join(runtime["root"], CHROOT_STATE.lstrip("/"))
    return os.path.join(CACHE_DIR, "instances")


class Rig:
    """One running rig instance.  Create with Rig.up(); Rig.attach(offset) for a running one."""

    def __init__(self, runtime, offset):
        self.runtime = runtime
        self.ports = Ports(offset)
        self.offset = offset
        self.name = f"rig{offset}"
        self.dir = os.path.join(instances_parent(runtime), self.name)   # host path
        # the same directory as Asterisk sees it
        self.inner_dir = (f"{CHROOT_STATE}/{self.name}" if runtime["kind"] == "chroot" else self.dir)
        self.procs = {}
        self._load_state()

    # -- public facts
    @property
    def sip_port(self):
        return self.ports.sip

    @property
    def ami(self):
        """What the gateway needs to connect to AMI."""
        return {"host": "127.0.0.1", "port": self.ports.ami, "username": AMI_USER, "secret": AMI_SECRET}

    def info(self):
        return {"name": self.name, "offset": self.offset, "dir": self.dir, "ami": self.ami,
                "sip": {"host": "127.0.0.1", "port": self.ports.sip},
                "asterisk_version": self.runtime.get("version"),
                "extensions": [{"ext": e, "password": password(e),
                                "behaviour": "unregistered" if e in UNREGISTERED else group_of(e)}
                               for e in EXTENSIONS],
                "hotlines": HOTLINES,
                "trunk_results": TRUNK_RESULTS,
                "ports": self.ports.as_dict(),
                "pids": {k: v["pid"] for k, v in self.procs.items()}}

    # -- state file
    def _state_path(self):
        return os.path.join(self.dir, "instance.json")

    def _load_state(self):
        try:
            with open(self._state_path()) as f:
                self.procs = json.load(f).get("procs", {})
        except (OSError, ValueError):
            self.procs = {}

    def _save_state(self):
        tmp = self._state_path() + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"offset": self.offset, "procs": self.procs, "ports": self.ports.as_dict()}, f)
        os.replace(tmp, self._state_path())

    def running(self):
        """name -> alive? for every process this instance started."""
        return {name: _alive(p) for name, p in self.procs.items()}

    def is_up(self):
        r = self.running()
        return bool(r) and all(r.values())

    # -- lifecycle
    @classmethod
    def up(cls, offset=None, runtime=None):
        """Start an instance (first free offset by default); returns once every phone is registered."""
        runtime = runtime or load_runtime()
        if not runtime:
            raise RigError("rig is not installed: run `rig.py install` (as root) first")
        with _locked(os.path.join(instances_parent(runtime), ".up.lock")):
            if offset is None:
                offset = free_offset(runtime)
            rig = cls(runtime, offset)
            if any(rig.running().values()):
                raise RigError(f"instance {rig.name} is already up: `rig.py down --offset {offset}` first")
            taken = busy_ports(rig.ports)
            if taken:
                raise RigError(f"offset {offset}: ports in use: {', '.join(taken)}")
            try:
                rig._start()
            except BaseException:
                rig.down(quiet=True)
                raise
        return rig

    @classmethod
    def attach(cls, offset, runtime=None):
        runtime = runtime or load_runtime()
        if not runtime:
            raise RigError("rig is not installed: run `rig.py install` first")
        return cls(runtime, offset)

    def _spawn(self, name, cmd, log):
        with open(os.path.join(self.dir, "log", log), "ab") as out:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 cwd=os.path.join(self.dir, "sipp"), start_new_session=True)
        self.procs[name] = {"pid": p.pid, "start": _wait(lambda: _start_time(p.pid), 2, 0.005),
                            "cmd": cmd}
        self._save_state()
        return p

    def _start(self):
        self._write_config()
        rt = self.runtime
        conf = f"{self.inner_dir}/etc/asterisk.conf"
        self._spawn("asterisk", _wrap(rt, [rt["asterisk"], "-f", "-n", "-C", conf]), "asterisk.out")
        for name in list(PHONE_GROUPS) + TRUNKS:
            self._spawn(f"sipp-{name}", self._sipp_cmd(name), f"sipp-{name}.out")
        self._wait_booted()

        def missing():
            return [n for n in list(PHONE_GROUPS) + TRUNKS if port_free("udp", self.ports.uas[n])]
        if not _wait(lambda: not missing(), 5):
            raise RigError(f"sipp peers did not start: {missing()}; see {self.dir}/log")
        self._register()

    def _write_config(self):
        shutil.rmtree(self.dir, ignore_errors=True)                 # fresh astdb every time
        for d in ("etc", "lib", "db", "keys", "data", "agi-bin", "spool", "run", "log", "sipp"):
            os.makedirs(os.path.join(self.dir, d))
        p = self.ports
        values = {"STATE": self.inner_dir, "MODDIR": self.runtime["moddir"], "SIP_BIND": "127.0.0.1",
                  "SIP_PORT": p.sip, "AMI_PORT": p.ami, "AMI_USER": AMI_USER, "AMI_SECRET": AMI_SECRET,
                  "RIG_SECRET": RIG_SECRET, "RTP_START": p.rtp[0], "RTP_END": p.rtp[1],
                  "TRUNK1_PORT": p.uas["hotline-trunk"], "TRUNK2_PORT": p.uas["hotline-trunk-2"]}
        src = os.path.join(HERE, "asterisk")
        for fn in sorted(os.listdir(src)):
            if fn.endswith(".conf"):
                with open(os.path.join(src, fn)) as f:
                    text = _render(f.read(), values)
                with open(os.path.join(self.dir, "etc", fn), "w") as f:
                    f.write(text)
        phones, hints = [], []
        for e in EXTENSIONS:
            phones.append(f"[{e}](phone-endpoint)\nauth = {e}\naors = {e}\ncallerid = \"Ext {e}\" <{e}>\n\n"
                          f"[{e}](phone-auth)\nusername = {e}\npassword = {password(e)}\n\n"
                          f"[{e}](phone-aor)\n\n")
            hints.append(f"exten => {e},hint,PJSIP/{e}\n")
        with open(os.path.join(self.dir, "etc", "pjsip_phones.conf"), "w") as f:
            f.write("; generated by rig.py from its extension table\n\n" + "".join(phones))
        with open(os.path.join(self.dir, "etc", "extensions_hints.conf"), "w") as f:
            f.write("; generated by rig.py from its extension table\n" + "".join(hints))

    def _sipp_cmd(self, name, scenario=None, extra=()):
        p = self.ports
        scenario = scenario or ("trunk" if name in TRUNKS else f"phone_{name}")
        port = p.register if name == "register" else p.uas[name]
        return [self.runtime["sipp"], *extra, "-sf", os.path.join(HERE, "sipp", f"{scenario}.xml"),
                "-i", "127.0.0.1", "-p", str(port), "-mp", str(p.media[name]),
                "-cp", str(p.control[name]), "-nostdin", "-aa",
                "-trace_msg", "-message_file", self.trace_file(name),
                "-trace_err", "-error_file", os.path.join(self.dir, "log", f"sipp-{name}.errors")]

    def trace_file(self, peer):
        """Host path of the sipp message log of PEER (a group name, trunk name or 'register')."""
        return os.path.join(self.dir, "sipp", f"{peer}.msg")

    def asterisk_rx(self, command, timeout=10):
        """Run an Asterisk CLI command on this instance (asterisk -rx) and return its output."""
        rt = self.runtime
        cmd = _wrap(rt, [rt["asterisk"], "-C", f"{self.inner_dir}/etc/asterisk.conf", "-rx", command])
        r = _run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RigError(f"asterisk -rx {command!r} failed: {(r.stdout + r.stderr).strip()[:200]}")
        return r.stdout

    def _wait_booted(self, timeout=10):
        def booted():
            if not _alive(self.procs["asterisk"]):
                raise RigError(f"Asterisk exited at start; see {self.dir}/log/messages.log "
                               f"and {self.dir}/log/asterisk.out: {self._log_tail()}")
            try:
                self.asterisk_rx("core waitfullybooted", timeout=5)
                return True
            except RigError:
                return False
        if not _wait(booted, timeout):
            raise RigError(f"Asterisk did not boot within {timeout} s: {self._log_tail()}")

    def _log_tail(self):
        """The last error lines of Asterisk's logs (or its last output lines), for one-line errors."""
        errors, last = [], []
        for fn in ("asterisk.out", "messages.log"):
            try:
                with open(os.path.join(self.dir, "log", fn), errors="replace") as f:
                    lines = [ln.strip() for ln in f if ln.strip()]
            except OSError:
                continue
            errors += [ln for ln in lines if "ERROR" in ln or "EXITING" in ln]
            last = lines[-2:] or last
        return " | ".join(errors[-3:] or last) or "(empty logs)"

    def _register(self, exts=None, expires=86400):
        """REGISTER (expires > 0) or unregister (expires 0) EXTS with one sipp client run."""
        exts = exts or [e for g in PHONE_GROUPS for e in PHONE_GROUPS[g]]
        inf = os.path.join(self.dir, "sipp", "register.csv")
        with open(inf, "w") as f:
            f.write("SEQUENTIAL\n")
            for e in exts:
                f.write(f"{e};{password(e)};{self.ports.uas[group_of(e)]};"
                        f"[authentication username={e} password={password(e)}];{expires}\n")
        cmd = self._sipp_cmd("register", "register",
                             extra=[f"127.0.0.1:{self.ports.sip}"]) + \
            ["-inf", inf, "-m", str(len(exts)), "-r", "200", "-l", "40", "-timeout", "10s",
             "-timeout_error", "-recv_timeout", "3000"]
        with open(os.path.join(self.dir, "log", "sipp-register.out"), "ab") as out:
            r = _run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=20,
                     cwd=os.path.join(self.dir, "sipp"))
        if r.returncode != 0:
            raise RigError(f"registering the extensions failed (sipp exit {r.returncode}); "
                           f"see {self.trace_file('register')}")
        want = "NOT_INUSE" if expires else "UNAVAILABLE"
        with Ami(self.ports.ami) as ami:
            def unregistered():
                states = {e: ami.getvar(f"DEVICE_STATE(PJSIP/{e})") for e in exts}
                return {e: s for e, s in states.items() if s != want and not (expires and s == "INUSE")}
            if not _wait(lambda: not unregistered(), 5):
                raise RigError(f"extensions not {want} (device state): {unregistered()}")

    def unregister(self, ext):
        """The phone of EXT unregisters (REGISTER Expires: 0); its device becomes UNAVAILABLE."""
        self._register([ext], expires=0)

    def register(self, ext):
        self._register([ext])

    # -- faults
    def kill_asterisk(self):
        """SIGKILL Asterisk (a PBX crash); the sipp peers keep running."""
        if not self.procs:
            self._load_state()
        proc = self.procs["asterisk"]
        os.kill(proc["pid"], signal.SIGKILL)
        if not _wait(lambda: not _alive(proc), 5):
            raise RigError("Asterisk survived SIGKILL")
        _reap(proc["pid"])

    def start_asterisk(self):
        """Start Asterisk again on the same ports and state (after kill_asterisk), wait until
        it is fully booted and every phone is registered again."""
        rt = self.runtime
        conf = f"{self.inner_dir}/etc/asterisk.conf"
        self._spawn("asterisk", _wrap(rt, [rt["asterisk"], "-f", "-n", "-C", conf]), "asterisk.out")
        self._wait_booted()
        self._register()

    def down(self, quiet=False, timeout=8):
        """Stop every process of this instance by PID (TERM, then KILL after TIMEOUT s);
        raise RigError if a process or a listening port is left (unless QUIET)."""
        if not self.procs:
            self._load_state()
        alive = {n: p for n, p in self.procs.items() if _alive(p)}
        for p in alive.values():
            os.kill(p["pid"], signal.SIGTERM)

        def left():
            return [n for n, p in alive.items() if _alive(p)]
        killed = [] if _wait(lambda: not left(), timeout) else left()
        for n in killed:
            os.kill(alive[n]["pid"], signal.SIGKILL)
        _wait(lambda: not left(), 3)
        _wait(lambda: not busy_ports(self.ports), 3)
        still, ports = left(), busy_ports(self.ports)
        self.procs = {}
        if os.path.isdir(self.dir):
            self._save_state()
        if (still or ports) and not quiet:
            raise RigError(f"{self.name} left behind: processes {still}, ports {ports}")
        return {"stopped": sorted(alive), "killed": killed}

    # -- device states and calls
    def device_state(self, ext):
        with Ami(self.ports.ami) as ami:
            return ami.getvar(f"DEVICE_STATE(PJSIP/{ext})")

    def device_states(self, exts=None):
        with Ami(self.ports.ami) as ami:
            return {e: ami.getvar(f"DEVICE_STATE(PJSIP/{e})") for e in (exts or EXTENSIONS)}

    def wait_device_state(self, ext, want, timeout=5):
        """Poll until EXT's device state is WANT (a string or a set); returns the last state."""
        want = {want} if isinstance(want, str) else set(want)
        with Ami(self.ports.ami) as ami:
            last = [None]

            def check():
                last[0] = ami.getvar(f"DEVICE_STATE(PJSIP/{ext})")
                return last[0] in want
            if not _wait(check, timeout):
                raise RigError(f"{ext}: device state {last[0]}, wanted {sorted(want)} within {timeout} s")
            return last[0]

    def busy(self, ext, timeout=5):
        """Put EXT in a call (Originate into rig-hold; it answers) so its device state is INUSE."""
        with Ami(self.ports.ami) as ami:
            r = ami.action("Originate", Channel=f"PJSIP/{ext}", Context="rig-hold", Exten="s",
                           Priority="1", Async="true", Timeout="5000",
                           CallerID=f'"rig hold" <{ext}>')
        if r.get("Response") != "Success":
            raise RigError(f"busy {ext}: Originate refused: {r.get('Message')}")
        return self.wait_device_state(ext, "INUSE", timeout)

    def free(self, ext, timeout=5):
        """End the call(s) of EXT (AMI Hangup by channel regex); waits for NOT_INUSE."""
        with Ami(self.ports.ami) as ami:
            ami.action("Hangup", Channel=f"/^PJSIP\\/{ext}-/")
        return self.wait_device_state(ext, "NOT_INUSE", timeout)

    # -- what the peers received
    def messages(self, peer):
        """Every message PEER received (phone group, trunk name, or an extension), in order."""
        if peer in EXTENSIONS:
            return [m for m in read_trace(self.trace_file(group_of(peer)), peer)
                    if (m.request_user or m.to_user) == peer]
        return read_trace(self.trace_file(peer), peer)

    def invites_to(self, ext, after=None):
        return [m for m in self.messages(ext) if m.method == "INVITE" and (after is None or m.time > after)]

    def last_invite(self, ext):
        invites = self.invites_to(ext)
        return invites[-1] if invites else None

    def trunk_invites(self, number=None, trunk="hotline-trunk", after=None):
        return [m for m in read_trace(self.trace_file(trunk), trunk)
                if m.method == "INVITE" and (number is None or m.request_user == number)
                and (after is None or m.time > after)]

    def wait_for_invite(self, ext, after=None, timeout=5):
        """First INVITE to EXT received after time AFTER (epoch seconds); RigError on timeout."""
        found = _wait(lambda: self.invites_to(ext, after), timeout)
        if not found:
            raise RigError(f"no INVITE reached {ext} within {timeout} s")
        return found[0]

    def wait_for_trunk_invite(self, number=None, trunk="hotline-trunk", after=None, timeout=5):
        found = _wait(lambda: self.trunk_invites(number, trunk, after), timeout)
        if not found:
            raise RigError(f"no INVITE for {number or 'any number'} reached {trunk} within {timeout} s")
        return found[0]

    def wait_for_message(self, peer, method, call_id=None, after=None, timeout=5):
        """First request METHOD (e.g. 'CANCEL', 'BYE') PEER received, optionally in CALL_ID."""
        def find():
            return [m for m in self.messages(peer) if m.method == method
                    and (call_id is None or m.call_id == call_id) and (after is None or m.time > after)]
        found = _wait(find, timeout)
        if not found:
            raise RigError(f"no {method} reached {peer} within {timeout} s")
        return found[0]


def all_instances(runtime):
    parent = instances_parent(runtime)
    out = []
    for d in sorted(glob.glob(os.path.join(parent, "rig*", "instance.json"))):
        m = re.search(r"/rig(\d+)/instance\.json$", d)
        if m:
            out.append(Rig(runtime, int(m.group(1))))
    return sorted(out, key=lambda r: r.offset)


def free_offset(runtime):
    """First offset whose instance is not running and whose ports are all free."""
    for offset in range(MAX_OFFSET + 1):
        rig = Rig(runtime, offset)
        if not any(rig.running().values()) and not busy_ports(rig.ports):
            return offset
    raise RigError("no free offset (0..99): every port block is taken")


# ---------------------------------------------------------------- CLI

def _print_info(rig, as_json, elapsed=None):
    info = rig.info()
    if elapsed is not None:
        info["up_seconds"] = round(elapsed, 2)
    if as_json:
        print(json.dumps(info, indent=1))
        return
    a = info["ami"]
    print(f"rig {rig.name} up{f' in {elapsed:.1f} s' if elapsed else ''}: {info['asterisk_version']}")
    print(f"  AMI  {a['host']}:{a['port']}  user {a['username']}  secret {a['secret']}")
    print(f"  SIP  127.0.0.1:{rig.ports.sip} (udp)   state dir {rig.dir}")
    print("  trunks: " + ", ".join(f"{h} -> {t} (sipp udp/{rig.ports.uas[t]})" for h, t in HOTLINES.items()))
    print("  extensions (user = extension, password = pass<ext>):")
    for group, exts in list(PHONE_GROUPS.items()) + [("unregistered", UNREGISTERED)]:
        print(f"    {_span(exts):<22} {BEHAVIOUR[group]}")


def _span(exts):
    """'101, 105, 201-230' for a list of extensions."""
    nums, out = sorted(int(e) for e in exts), []
    for n in nums:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def _one_instance(runtime, offset):
    if offset is not None:
        return Rig(runtime, offset)
    up = [r for r in all_instances(runtime) if any(r.running().values())]
    if len(up) != 1:
        raise RigError(f"{len(up)} instances run ({', '.join(r.name for r in up) or 'none'}): "
                       f"say which with --offset N")
    return up[0]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="rig.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="get Asterisk and sipp (idempotent, cached)")
    p = sub.add_parser("up", help="start an instance")
    p.add_argument("--offset", type=int, help=f"port block 0..{MAX_OFFSET} (default: first free)")
    p.add_argument("--json", action="store_true", help="print the instance facts as JSON")
    p.add_argument("--foreground", action="store_true", help="stay attached; `down` on SIGTERM/SIGINT")
    p = sub.add_parser("down", help="stop an instance")
    p.add_argument("--offset", type=int)
    p.add_argument("--all", action="store_true")
    p = sub.add_parser("status", help="what runs")
    p.add_argument("--json", action="store_true")
    for name in ("busy", "free"):
        p = sub.add_parser(name, help=f"{name} EXT: {'put EXT in a call' if name == 'busy' else 'end its call'}")
        p.add_argument("ext")
        p.add_argument("--offset", type=int)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "install":
            install()
            return 0
        runtime = load_runtime()
        if not runtime:
            raise RigError("rig is not installed: run `rig.py install` (as root) first")
        if args.cmd == "up":
            t0 = time.monotonic()
            rig = Rig.up(args.offset, runtime)
            _print_info(rig, args.json, time.monotonic() - t0)
            if args.foreground:
                return _foreground(rig)
        elif args.cmd == "down":
            rigs = all_instances(runtime) if args.all else [_one_instance(runtime, args.offset)]
            for rig in rigs:
                t0 = time.monotonic()
                r = rig.down()
                if r["stopped"] or not args.all:
                    print(f"{rig.name} down in {time.monotonic() - t0:.1f} s "
                          f"(stopped {len(r['stopped'])} processes, killed {len(r['killed'])})")
        elif args.cmd == "status":
            rigs = all_instances(runtime)
            rows = [{"name": r.name, "offset": r.offset, "ami": r.ports.ami, "sip": r.ports.sip,
                     "dir": r.dir, "processes": r.running()} for r in rigs if r.procs]
            if args.json:
                print(json.dumps({"runtime": runtime, "instances": rows}, indent=1))
            else:
                print(f"runtime: {runtime['version']} ({runtime['kind']} {runtime['root']})")
                for row in rows:
                    n_up = sum(row["processes"].values())
                    print(f"{row['name']}: AMI {row['ami']} SIP {row['sip']} "
                          f"{n_up}/{len(row['processes'])} processes up")
                if not rows:
                    print("no instance runs")
            if not any(all(row["processes"].values()) for row in rows):
                return 3                                   # nothing up (a healthcheck's "no")
        elif args.cmd in ("busy", "free"):
            rig = _one_instance(runtime, args.offset)
            state = getattr(rig, args.cmd)(args.ext)
            print(f"{args.ext}: {state}")
        return 0
    except RigError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 1


def _foreground(rig):
    """Keep the rig up until SIGTERM/SIGINT (a container's main process), then `down`."""
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    while not stop and rig.running().get("asterisk"):
        time.sleep(0.5)
    rig.down(quiet=True)
    return 0 if stop else 1


if __name__ == "__main__":
    sys.exit(main())
