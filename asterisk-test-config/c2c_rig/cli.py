"""The command line (rig.py, python -m c2c_rig, c2c-rig): install once as root, then bring
instances up and down, see what runs, and put extensions in and out of a call by hand."""

import argparse
import json
import os
import signal
import sys
import time

from .errors import RigError
from .install import describe, install
from .instance import MAX_OFFSET, Rig, all_instances
from .plan import BEHAVIOUR, DEFAULT_DRIVER, DRIVERS, HOTLINES, PHONE_GROUPS, SOFTPHONE, UNREGISTERED
from .runtime import load_runtime

DESCRIPTION = "c2c-ami test rig: a real Asterisk with sipp phones and carrier trunks on loopback."


def _print_info(rig, as_json, elapsed=None):
    info = rig.info()
    if elapsed is not None:
        info["up_seconds"] = round(elapsed, 2)
    if as_json:
        print(json.dumps(info, indent=1))
        return
    a = info["ami"]
    print(f"rig {rig.name} up{f' in {elapsed:.1f} s' if elapsed else ''}: {info['asterisk_version']} "
          f"({rig.driver}; endpoint {info['endpoint']})")
    print(f"  AMI  {a['host']}:{a['port']}  user {a['username']}  secret {a['secret']}")
    print(f"  SIP  127.0.0.1:{rig.ports.sip} (udp)   state dir {rig.dir}")
    print("  trunks: " + ", ".join(f"{h} -> {t} (sipp udp/{rig.ports.uas[t]})" for h, t in HOTLINES.items()))
    print("  extensions (user = extension, password = pass<ext>):")
    for group, exts in list(PHONE_GROUPS.items()) + [("unregistered", UNREGISTERED), ("softphone", [SOFTPHONE])]:
        print(f"    {_span(exts):<22} {BEHAVIOUR[group]}")


def _span(exts):
    """'101, 105, 201-230' for a list of extensions."""
    nums = sorted(int(e) for e in exts)
    out: list[list[int]] = []
    for n in nums:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def _one_instance(runtime, offset):
    if offset is not None:
        return Rig.attach(offset, runtime)
    up = [r for r in all_instances(runtime) if any(r.running().values())]
    if len(up) != 1:
        raise RigError(f"{len(up)} instances run ({', '.join(r.name for r in up) or 'none'}): "
                       f"say which with --offset N")
    return up[0]


def _prog():
    """How the user ran us, for usage lines: rig.py, c2c-rig or python3 -m c2c_rig."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name == "-c":
        return "rig.py"
    return "python3 -m c2c_rig" if name == "__main__.py" else name


def main(argv=None):
    ap = argparse.ArgumentParser(prog=_prog(), description=DESCRIPTION)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install", help="get both Asterisks, sipp and baresip (idempotent, cached)")
    p.add_argument("--host-asterisk", action="store_true",
                   help="use the host's own Asterisk for each driver it has (default: never)")
    p = sub.add_parser("up", help="start an instance")
    p.add_argument("--driver", choices=list(DRIVERS), default=DEFAULT_DRIVER,
                   help="pjsip: Asterisk 22 with PJSIP (default); chan_sip: Asterisk 16 with chan_sip")
    p.add_argument("--offset", type=int, help=f"port block 0..{MAX_OFFSET} (default: first free)")
    p.add_argument("--json", action="store_true", help="print the instance facts as JSON")
    p.add_argument("--foreground", action="store_true", help="stay attached; `down` on SIGTERM/SIGINT")
    p.add_argument("--ami-write", metavar="CLASSES", help="a broken PBX: the gateway user's write= classes "
                   "(e.g. call,reporting: no originate)")
    p.add_argument("--noload", metavar="MODULE", action="append", default=[],
                   help="a broken PBX: do not load MODULE (e.g. app_mixmonitor); repeatable")
    p.add_argument("--no-dial", action="store_true", help="a broken PBX: the click-to-call context has no Dial")
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
            install(use_host=args.host_asterisk)
            return 0
        runtime = load_runtime()
        if not runtime:
            raise RigError("rig is not installed: run `rig.py install` (as root) first")
        if args.cmd == "up":
            t0 = time.monotonic()
            rig = Rig.up(args.offset, runtime, args.driver, ami_write=args.ami_write, noload=args.noload,
                         no_dial=args.no_dial)
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
            rows = [{"name": r.name, "offset": r.offset, "driver": r.driver, "ami": r.ports.ami,
                     "sip": r.ports.sip, "dir": r.dir, "processes": r.running()} for r in rigs if r.procs]
            if args.json:
                print(json.dumps({"runtime": runtime, "instances": rows}, indent=1))
            else:
                print(f"runtime: {describe(runtime)}")
                for row in rows:
                    n_up = sum(row["processes"].values())
                    print(f"{row['name']} ({row['driver']}): AMI {row['ami']} SIP {row['sip']} "
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
