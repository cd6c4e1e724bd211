"""Running instances: each on its own block of loopback ports (by offset) with its own state
dir, so several rigs and test sessions run side by side; processes are tracked by PID and
kernel start time so `down` never kills a stranger and can prove nothing is left."""

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import wave

from .ami import Ami
from .audio import write_raw_ulaw, write_ulaw_wav
from .errors import RigError
from .plan import (
    AMI_READ_ALL_USER,
    AMI_SECRET,
    AMI_USER,
    DEFAULT_DRIVER,
    DRIVERS,
    EXTENSIONS,
    HOTLINES,
    NO_CALLCOUNTER,
    PHONE_GROUPS,
    QUALIFIED,
    RIG_SECRET,
    SOFTPHONE,
    TRUNK_RESULTS,
    TRUNKS,
    UNREGISTERED,
    group_of,
    password,
    ready_state,
    user_agent,
)
from .runtime import CACHE_DIR, load_runtime, locked, run, wrap
from .sip_trace import read_trace

# The config templates and sipp scenarios sit next to the package: asterisk-test-config/{asterisk,sipp}.
RIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROOT_STATE = "/var/lib/c2c-rig"      # instance dirs, as Asterisk sees them in the chroot

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
                    "aa-callinfo": b + 64, "aa-alertinfo": b + 65, "aa-answermode": b + 66, "dead": b + 67,
                    "hangup": b + 69, "aa-polycom": b + 73,
                    "hotline-trunk": b + 71, "hotline-trunk-2": b + 72}
        self.register = b + 70
        # sipp binds -mp and -mp+2 (audio, video): 4 apart.
        self.media = {"answer": b + 80, "busy": b + 84, "noanswer": b + 88,
                      "aa-callinfo": b + 10, "aa-alertinfo": b + 14, "aa-answermode": b + 18, "dead": b + 22,
                      "hangup": b + 30, "aa-polycom": b + 34,
                      "hotline-trunk": b + 92, "hotline-trunk-2": b + 96, "register": b + 76}
        self.control = {"answer": b + 41, "busy": b + 42, "noanswer": b + 43,
                        "aa-callinfo": b + 47, "aa-alertinfo": b + 48, "aa-answermode": b + 49, "dead": b + 50,
                        "hangup": b + 51, "aa-polycom": b + 52,
                        "hotline-trunk": b + 44, "hotline-trunk-2": b + 45, "register": b + 46}
        self.softphone = b + 68             # baresip's SIP port; its RTP at b+26..b+29
        self.softphone_rtp = (b + 26, b + 29)
        self.rtp = (40000 + 200 * offset, 40000 + 200 * offset + 199)

    def listening(self):
        """(proto, port) pairs that must be free before `up` and after `down`."""
        pairs = [("tcp", self.ami), ("udp", self.sip)]
        for name, port in list(self.uas.items()) + [("register", self.register)]:
            pairs += [("udp", port), ("udp", self.media[name]), ("udp", self.media[name] + 2),
                      ("udp", self.control[name])]
        return pairs + [("udp", self.softphone)]

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
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


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


# baresip 1.1 headless: no sound card (aufile plays into a file and sends silence), no UI.
_BARESIP_CONFIG = """poll_method epoll
sip_listen 127.0.0.1:@SIP@
sip_trans_def udp
audio_player aufile,@DIR@/heard.wav
audio_source aufile,@DIR@/silence.wav
audio_alert aufile,@DIR@/alert.wav
rtp_ports @RTP_START@-@RTP_END@
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module_app account.so
module_app menu.so
"""


def _silence(path, seconds):
    """A µ-law-friendly 8 kHz mono WAV of silence: baresip ends a call when its source ends."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000 * seconds)


def _render(text, values):
    def sub(m):
        if m.group(1) not in values:
            raise RigError(f"template field @{m.group(1)}@ has no value")
        return str(values[m.group(1)])
    return re.sub(r"@([A-Z0-9_]+)@", sub, text)


def instances_parent(asterisk):
    """Host path of the directory holding the instance state dirs of one Asterisk."""
    if asterisk["kind"] == "chroot":
        return os.path.join(asterisk["root"], CHROOT_STATE.lstrip("/"))
    return os.path.join(CACHE_DIR, "instances")


class Rig:
    """One running rig instance.  Create with Rig.up(); Rig.attach(offset) for a running one."""

    def __init__(self, runtime, offset, driver=DEFAULT_DRIVER):
        if driver not in DRIVERS:
            raise RigError(f"driver must be one of {', '.join(DRIVERS)}, got {driver!r}")
        if driver not in runtime["asterisks"]:
            raise RigError(f"no Asterisk for {driver} is installed (the host's Asterisk lacks it): "
                           "`rig.py install` without --host-asterisk builds one")
        self.runtime = runtime
        self.driver = driver
        self.asterisk = runtime["asterisks"][driver]
        self.tech = DRIVERS[driver]["tech"]        # PJSIP or SIP: the phones' dial strings
        self.ports = Ports(offset)
        self.offset = offset
        self.name = f"rig{offset}"
        self.dir = os.path.join(instances_parent(self.asterisk), self.name)   # host path
        # the same directory as Asterisk sees it
        self.inner_dir = (f"{CHROOT_STATE}/{self.name}" if self.asterisk["kind"] == "chroot" else self.dir)
        # call recordings: where Asterisk writes them (recording.dir) and the same directory as
        # the host reads it (recording.local_dir): they differ when Asterisk runs in a chroot
        self.recordings_dir = f"{self.inner_dir}/recordings"
        self.recordings_local_dir = os.path.join(self.dir, "recordings")
        self.procs: dict[str, dict] = {}
        self.options: dict = {"ami_write": None, "noload": (), "no_dial": False}   # see up()
        self._load_state()

    # -- public facts
    @property
    def sip_port(self):
        return self.ports.sip

    @property
    def ami(self):
        """What the gateway needs to connect to AMI (its user: read = call,system)."""
        return {"host": "127.0.0.1", "port": self.ports.ami, "username": AMI_USER, "secret": AMI_SECRET}

    @property
    def ami_read_all(self):
        """The same, as the user with read = all."""
        return {**self.ami, "username": AMI_READ_ALL_USER}

    def info(self):
        return {"name": self.name, "offset": self.offset, "dir": self.dir, "ami": self.ami,
                "sip": {"host": "127.0.0.1", "port": self.ports.sip},
                "driver": self.driver, "endpoint": f"{self.tech}/{{ext}}",
                "asterisk_version": self.asterisk.get("version"),
                "extensions": [{"ext": e, "password": password(e),
                                "behaviour": "unregistered" if e in UNREGISTERED else
                                "softphone" if e == SOFTPHONE else group_of(e)}
                               for e in EXTENSIONS],
                "hotlines": HOTLINES,
                "trunk_results": TRUNK_RESULTS,
                "recordings": {"dir": self.recordings_dir, "local_dir": self.recordings_local_dir},
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
            json.dump({"offset": self.offset, "driver": self.driver, "procs": self.procs,
                       "ports": self.ports.as_dict(), "options": self.options}, f)
        os.replace(tmp, self._state_path())

    def running(self):
        """name -> alive? for every process this instance started."""
        return {name: _alive(p) for name, p in self.procs.items()}

    def is_up(self):
        r = self.running()
        return bool(r) and all(r.values())

    # -- lifecycle
    @classmethod
    def up(cls, offset=None, runtime=None, driver=DEFAULT_DRIVER, *, ami_write=None, noload=(), no_dial=False):
        """Start an instance of DRIVER's Asterisk (first free offset by default); returns once
        every phone is registered.  A broken PBX on purpose, for the gateway's check of the
        Asterisk side: AMI_WRITE replaces the gateway user's ``write =`` classes (e.g.
        ``"call,reporting"``: no originate; ``"originate,call,reporting,system"``: ModuleCheck
        allowed), NOLOAD names modules not to load (``["app_mixmonitor"]``), NO_DIAL drops the
        Dial line of the click-to-call context."""
        runtime = runtime or load_runtime()
        if not runtime:
            raise RigError("rig is not installed: run `rig.py install` (as root) first")
        with locked(os.path.join(CACHE_DIR, ".up.lock")):
            if offset is None:
                offset = free_offset(runtime)
            elif any(any(r.running().values()) for r in _at_offset(runtime, offset)):
                raise RigError(f"offset {offset} is already up: `rig.py down --offset {offset}` first")
            rig = cls(runtime, offset, driver)
            rig.options = {"ami_write": ami_write, "noload": tuple(noload), "no_dial": bool(no_dial)}
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
        """The instance at OFFSET, whichever driver it runs."""
        runtime = runtime or load_runtime()
        if not runtime:
            raise RigError("rig is not installed: run `rig.py install` first")
        found = [r for r in _at_offset(runtime, offset) if r.procs]
        return found[0] if found else cls(runtime, offset)

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
        ast = self.asterisk
        conf = f"{self.inner_dir}/etc/asterisk.conf"
        self._spawn("asterisk", wrap(ast, [ast["asterisk"], "-f", "-n", "-C", conf]), "asterisk.out")
        for name in list(PHONE_GROUPS) + TRUNKS:
            self._spawn(f"sipp-{name}", self._sipp_cmd(name), f"sipp-{name}.out")
        softphone = self._softphone_cmd()
        self._wait_booted()
        if softphone:
            self._spawn("baresip", softphone, "baresip.out")

        def missing():
            return [n for n in list(PHONE_GROUPS) + TRUNKS if port_free("udp", self.ports.uas[n])]
        if not _wait(lambda: not missing(), 5):
            raise RigError(f"sipp peers did not start: {missing()}; see {self.dir}/log")
        self._register()
        if softphone:
            try:
                self.wait_device_state(SOFTPHONE, "NOT_INUSE", 10)
            except RigError as e:
                raise RigError(f"baresip did not register as {SOFTPHONE}: {e}; "
                               f"see {self.dir}/log/baresip.out") from None

    def _softphone_cmd(self):
        """baresip as 115 (in the sid root, sharing the host's network), configured in a
        directory next to the instance's; None if the runtime has no baresip."""
        bs = self.runtime.get("baresip") or {}
        if not bs.get("path"):
            return None
        inner = f"{CHROOT_STATE}/{self.name}.baresip"        # as baresip sees it
        host = os.path.join(bs["root"], inner.lstrip("/"))
        shutil.rmtree(host, ignore_errors=True)
        os.makedirs(host)
        p = self.ports
        with open(os.path.join(host, "config"), "w") as f:
            f.write(_render(_BARESIP_CONFIG, {"SIP": p.softphone, "RTP_START": p.softphone_rtp[0],
                                              "RTP_END": p.softphone_rtp[1], "DIR": inner}))
        with open(os.path.join(host, "accounts"), "w") as f:
            f.write(f"<sip:{SOFTPHONE}@127.0.0.1:{p.sip}>;auth_pass={password(SOFTPHONE)};regint=86400;"
                    "sip_autoanswer=yes;answermode=manual\n")
        _silence(os.path.join(host, "silence.wav"), seconds=120)
        return ["chroot", bs["root"], bs["path"], "-f", inner]

    def _write_config(self):
        shutil.rmtree(self.dir, ignore_errors=True)                 # fresh astdb every time
        for d in ("etc", "lib", "db", "keys", "data", "agi-bin", "spool", "run", "log", "sipp", "moh",
                  "recordings"):
            os.makedirs(os.path.join(self.dir, d))
        write_ulaw_wav(os.path.join(self.dir, "sipp", "talk.wav"))      # the talking trunk's voice
        write_raw_ulaw(os.path.join(self.dir, "moh", "hold.ulaw"))      # music on hold
        p = self.ports
        trunk_dial = "PJSIP/${EXTEN}@${C2C_TRUNK}" if self.driver == "pjsip" else "SIP/${C2C_TRUNK}/${EXTEN}"
        values = {"STATE": self.inner_dir, "MODDIR": self.asterisk["moddir"], "SIP_BIND": "127.0.0.1",
                  "SIP_PORT": p.sip, "AMI_PORT": p.ami, "AMI_USER": AMI_USER, "AMI_SECRET": AMI_SECRET,
                  "RIG_SECRET": RIG_SECRET, "RTP_START": p.rtp[0], "RTP_END": p.rtp[1],
                  "TRUNK1_PORT": p.uas["hotline-trunk"], "TRUNK2_PORT": p.uas["hotline-trunk-2"],
                  "TECH": self.tech, "TRUNK_DIAL": trunk_dial}
        # the common files, then the driver's own (modules.conf and pjsip.conf or sip.conf)
        for src in (os.path.join(RIG_DIR, "asterisk"), os.path.join(RIG_DIR, "asterisk", self.driver)):
            for fn in sorted(os.listdir(src)):
                if fn.endswith(".conf"):
                    with open(os.path.join(src, fn)) as f:
                        text = self._broken(fn, _render(f.read(), values))
                    with open(os.path.join(self.dir, "etc", fn), "w") as f:
                        f.write(text)
        phones = [self._phone_section(e) for e in EXTENSIONS]
        hints = [f"exten => {e},hint,{self.tech}/{e}\n" for e in EXTENSIONS]
        name = "pjsip_phones.conf" if self.driver == "pjsip" else "sip_phones.conf"
        with open(os.path.join(self.dir, "etc", name), "w") as f:
            f.write("; generated by the rig (c2c_rig) from its extension table\n\n" + "".join(phones))
        with open(os.path.join(self.dir, "etc", "extensions_hints.conf"), "w") as f:
            f.write("; generated by the rig (c2c_rig) from its extension table\n" + "".join(hints))

    def _broken(self, name, text):
        """The config file NAME as the instance's options break it (see up())."""
        opts = self.options
        if name == "manager.conf" and opts.get("ami_write"):
            head, sep, rest = text.partition(f"[{AMI_USER}]")
            rest = re.sub(r"(?m)^write = .*$", f"write = {opts['ami_write']}", rest, count=1)
            text = head + sep + rest
        if name == "modules.conf" and opts.get("noload"):
            for module in opts["noload"]:
                text = re.sub(rf"(?m)^load => {re.escape(module)}\.so.*\n", "", text)
                text += f"noload => {module}.so\n"
        if name == "extensions.conf" and opts.get("no_dial"):
            head, sep, rest = text.partition("[c2c-outbound]")
            rest = re.sub(r"(?m)^ same => n,Dial\(.*\n", "", rest, count=1)
            text = head + sep + rest
        return text

    def _phone_section(self, ext):
        """EXT's phone in the driver's own words.  Qualify: every 2 s with a 1 s timeout for
        QUALIFIED (a dead phone noticed within ~3 s); off for the others (the dead 110 is one
        that died between two qualifies)."""
        if self.driver == "pjsip":
            aor = "qualify_frequency = 2\nqualify_timeout = 1.0\n" if ext in QUALIFIED else ""
            return (f"[{ext}](phone-endpoint)\nauth = {ext}\naors = {ext}\ncallerid = \"Ext {ext}\" <{ext}>\n\n"
                    f"[{ext}](phone-auth)\nusername = {ext}\npassword = {password(ext)}\n\n"
                    f"[{ext}](phone-aor)\n{aor}\n")
        qualify = "qualify = 1000\nqualifyfreq = 2\n" if ext in QUALIFIED else ""
        counter = "callcounter = no\n" if ext in NO_CALLCOUNTER else ""
        return f"[{ext}](phone)\nsecret = {password(ext)}\ncallerid = \"Ext {ext}\" <{ext}>\n{qualify}{counter}\n"

    def _sipp_cmd(self, name, scenario=None, extra=()):
        p = self.ports
        scenario = scenario or ("trunk" if name in TRUNKS else f"phone_{name.replace('-', '_')}")
        port = p.register if name == "register" else p.uas[name]
        answers_options = [] if name == "dead" else ["-aa"]      # a dead phone answers nothing
        return [self.runtime["sipp"], *extra, "-sf", os.path.join(RIG_DIR, "sipp", f"{scenario}.xml"),
                "-i", "127.0.0.1", "-p", str(port), "-mp", str(p.media[name]),
                "-cp", str(p.control[name]), "-nostdin", *answers_options,
                "-trace_msg", "-message_file", self.trace_file(name),
                "-trace_err", "-error_file", os.path.join(self.dir, "log", f"sipp-{name}.errors")]

    def trace_file(self, peer):
        """Host path of the sipp message log of PEER (a group name, trunk name or 'register')."""
        return os.path.join(self.dir, "sipp", f"{peer}.msg")

    def asterisk_rx(self, command, timeout=10):
        """Run an Asterisk CLI command on this instance (asterisk -rx) and return its output."""
        ast = self.asterisk
        cmd = wrap(ast, [ast["asterisk"], "-C", f"{self.inner_dir}/etc/asterisk.conf", "-rx", command])
        r = run(cmd, capture_output=True, text=True, timeout=timeout)
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
        errors: list[str] = []
        last: list[str] = []
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
                        f"[authentication username={e} password={password(e)}];{expires};{user_agent(e)}\n")
        cmd = self._sipp_cmd("register", "register",
                             extra=[f"127.0.0.1:{self.ports.sip}"]) + \
            ["-inf", inf, "-m", str(len(exts)), "-r", "200", "-l", "40", "-timeout", "10s",
             "-timeout_error", "-recv_timeout", "3000"]
        with open(os.path.join(self.dir, "log", "sipp-register.out"), "ab") as out:
            r = run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=20,
                     cwd=os.path.join(self.dir, "sipp"))
        if r.returncode != 0:
            raise RigError(f"registering the extensions failed (sipp exit {r.returncode}); "
                           f"see {self.trace_file('register')}")
        with Ami(self.ports.ami) as ami:
            def unregistered():
                states = {e: ami.getvar(f"DEVICE_STATE({self.tech}/{e})") for e in exts}
                return {e: s for e, s in states.items()
                        if s != (ready_state(e) if expires else "UNAVAILABLE") and not (expires and s == "INUSE")}
            if not _wait(lambda: not unregistered(), 8):
                raise RigError(f"extensions not in their registered state (device state): {unregistered()}")

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
        ast = self.asterisk
        conf = f"{self.inner_dir}/etc/asterisk.conf"
        self._spawn("asterisk", wrap(ast, [ast["asterisk"], "-f", "-n", "-C", conf]), "asterisk.out")
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
            return ami.getvar(f"DEVICE_STATE({self.tech}/{ext})")

    def device_states(self, exts=None):
        with Ami(self.ports.ami) as ami:
            return {e: ami.getvar(f"DEVICE_STATE({self.tech}/{e})") for e in (exts or EXTENSIONS)}

    def wait_device_state(self, ext, want, timeout=5):
        """Poll until EXT's device state is WANT (a string or a set); returns the last state."""
        want = {want} if isinstance(want, str) else set(want)
        with Ami(self.ports.ami) as ami:
            last: list[str | None] = [None]

            def check():
                last[0] = ami.getvar(f"DEVICE_STATE({self.tech}/{ext})")
                return last[0] in want
            if not _wait(check, timeout):
                raise RigError(f"{ext}: device state {last[0]}, wanted {sorted(want)} within {timeout} s")
            return last[0]

    def _uncounted(self, ext):
        """EXT's device state does not follow its calls (a chan_sip peer without callcounter)."""
        return self.driver == "chan_sip" and ext in NO_CALLCOUNTER

    def channels_of(self, ext):
        """Names of EXT's channels now (CHANNELS() of func_channel)."""
        with Ami(self.ports.ami) as ami:
            return ami.getvar(f"CHANNELS(^{self.tech}/{ext}-)").split()

    def busy(self, ext, timeout=5):
        """Put EXT in a call (Originate into rig-hold; it answers) so its device state is INUSE
        (or, for a peer without call counter, so it has a channel while still NOT_INUSE)."""
        with Ami(self.ports.ami) as ami:
            r = ami.action("Originate", Channel=f"{self.tech}/{ext}", Context="rig-hold", Exten="s",
                           Priority="1", Async="true", Timeout="5000",
                           CallerID=f'"rig hold" <{ext}>')
        if r.get("Response") != "Success":
            raise RigError(f"busy {ext}: Originate refused: {r.get('Message')}")
        if self._uncounted(ext):
            if not _wait(lambda: self.channels_of(ext), timeout):
                raise RigError(f"busy {ext}: no channel within {timeout} s")
            return self.wait_device_state(ext, "NOT_INUSE", timeout)
        return self.wait_device_state(ext, "INUSE", timeout)

    def free(self, ext, timeout=5):
        """End the call(s) of EXT (AMI Hangup by channel regex); waits for NOT_INUSE."""
        with Ami(self.ports.ami) as ami:
            ami.action("Hangup", Channel=f"/^{self.tech}\\/{ext}-/")
        if self._uncounted(ext) and not _wait(lambda: not self.channels_of(ext), timeout):
            raise RigError(f"free {ext}: its channels are still up after {timeout} s")
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
    """Every instance with a state dir, of either driver, by offset."""
    out: list[Rig] = []
    for driver, asterisk in runtime["asterisks"].items():
        for d in sorted(glob.glob(os.path.join(instances_parent(asterisk), "rig*", "instance.json"))):
            m = re.search(r"/rig(\d+)/instance\.json$", d)
            if m:
                rig = Rig(runtime, int(m.group(1)), driver)
                if rig.procs or not any(r.offset == rig.offset for r in out):
                    out.append(rig)
    return sorted(out, key=lambda r: r.offset)


def _at_offset(runtime, offset):
    """The instance state of OFFSET under each driver (at most one of them runs)."""
    return [Rig(runtime, offset, driver) for driver in runtime["asterisks"]]


def free_offset(runtime):
    """First offset no instance of either driver runs at and whose ports are all free."""
    for offset in range(MAX_OFFSET + 1):
        if not any(any(r.running().values()) for r in _at_offset(runtime, offset)) \
                and not busy_ports(Ports(offset)):
            return offset
    raise RigError("no free offset (0..99): every port block is taken")
