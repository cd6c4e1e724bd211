"""``python -m bench`` (from the repo root): run the benchmarks, print a table, write JSON.

  python -m bench            items 1-3 + the fake-AMI latency proxy of item 4 (~2 min)
  python -m bench --rig      also item 4 against the real Asterisk rig and item 7, CPU per call
                             on the rig (both drivers, AMI read call,system / all, SQLite / PostgreSQL)
  python -m bench --smoke    tiny counts, a few seconds; checks the harness, not the speed
  --only async,stores,sync,ingest,latency,blacklist,stream,percall   run a subset (percall needs --rig)
  --out PATH  (default bench/results/latest.json)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback

from .common import REPO, workdir

TARGETS = {
    "async_percent_of_bare": 50.0, "sync_rss_peak_mib": 250.0, "sync_p99_ms": 20.0,
    "ingest_eps": 50_000, "gateway_p50_ms": 10.0, "percall_ratio_percent": 10.0,
}


def machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    import aiohttp
    import panoramisk
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "aiohttp": aiohttp.__version__, "panoramisk": getattr(panoramisk, "__version__", "1.4"),
            "loadavg_at_start": os.getloadavg()}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if v >= 100 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(results: dict) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, verdict) rows."""
    rows = []

    def row(name, value, target=None, ok=None):
        verdict = "" if ok is None else ("MET" if ok else "MISSED")
        rows.append((name, _fmt(value), target or "", verdict))

    a = results.get("async")
    if a and "runs" in a:
        for name, r in a["runs"].items():
            is_gw = name != "bare_aiohttp"
            row(f"1 async {name} req/s", r["rps"], ">= 50% of bare" if is_gw else None,
                (r["percent_of_bare"] >= TARGETS["async_percent_of_bare"]) if is_gw else None)
            row(f"1 async {name} % of bare", r["percent_of_bare"])
            row(f"1 async {name} p50 / p99 ms", f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}")
            row(f"1 async {name} non-200", r["non_200"])
            if r.get("cpu_percent"):
                row(f"1 async {name} CPU %", ", ".join(f"{k} {v}" for k, v in r["cpu_percent"].items()))
    s = results.get("sync")
    if s and "requests" in s:
        lat = s["answer_to_response_ms"]
        row("2 sync pending requests", s["requests"])
        row("2 sync all pending after s", s["all_pending_seconds"])
        row("2 sync gateway RSS all pending MiB", s["rss_all_pending_mib"])
        row("2 sync gateway RSS peak (VmHWM) MiB", s["rss_peak_mib"], "< 250 MB",
            s["rss_peak_mib"] * 1.048576 < TARGETS["sync_rss_peak_mib"])
        row("2 sync answer->response p50 / p90 ms", f"{lat['p50']} / {lat['p90']}")
        row("2 sync answer->response p99 ms", lat["p99"], "<= 20 ms",
            lat["p99"] is not None and lat["p99"] <= TARGETS["sync_p99_ms"])
        row("2 sync non-200 (of which no response)", f"{s['non_200']} ({s['no_response']})")
    i = results.get("ingest")
    if i and "by_live_calls" in i:
        for r in i["by_live_calls"]:
            n = r["live_calls"]
            row(f"3 ingest panoramisk parse only ev/s, {n} live", r["panoramisk_parse_only_eps"])
            row(f"3 ingest gateway w/ panoramisk parser ev/s, {n} live", r["gateway_panoramisk_parser_eps"])
            row(f"3 ingest ami_parser parse only ev/s, {n} live", r["fast_parse_only_eps"])
            row(f"3 ingest gateway ev/s, {n} live", r["gateway_eps"], ">= 50,000/s",
                r["gateway_eps"] >= TARGETS["ingest_eps"])
    lt = results.get("latency")
    if lt and "fake" in lt:
        f = lt["fake"]
        row("4 fake AMI: HTTP->Originate p50 / p99 ms",
            f"{f['http_to_originate_ms']['p50']} / {f['http_to_originate_ms']['p99']}", "p50 <= 10 ms",
            _within(f["http_to_originate_ms"]["p50"], TARGETS["gateway_p50_ms"]))
        row("4 fake AMI: HTTP response p50 / p99 ms",
            f"{f['http_response_ms']['p50']} / {f['http_response_ms']['p99']}")
        rg = lt.get("rig")
        if rg and "skipped" in rg:
            row("4 rig", "skipped: " + rg["skipped"][:60])
        elif rg:
            row("4 rig: HTTP->Originate (gateway) p50 / p99 ms",
                f"{rg['http_to_originate_ms']['p50']} / {rg['http_to_originate_ms']['p99']}", "p50 <= 10 ms",
                _within(rg["http_to_originate_ms"]["p50"], TARGETS["gateway_p50_ms"]))
            row("4 rig: Originate->INVITE (Asterisk) p50 / p99 ms",
                f"{rg['originate_to_invite_ms']['p50']} / {rg['originate_to_invite_ms']['p99']}")
            row("4 rig: HTTP->INVITE p50 / p99 ms",
                f"{rg['http_to_invite_ms']['p50']} / {rg['http_to_invite_ms']['p99']}")
    st = results.get("stores")
    if st and "runs" in st:
        for name, r in st["runs"].items():
            each = " + ".join(f"{x:,.0f}" for x in r["per_instance_rps"])
            row(f"1b stores {name} req/s", f"{r['rps']:,.1f}" + (f" ({each})" if r["instances"] > 1 else ""))
            row(f"1b stores {name} p50 / p99 ms, non-200", f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}, {r['non_200']}")
            row(f"1b stores {name} CPU %", ", ".join(f"{k} {v}" for k, v in r["cpu_percent"].items()))
    bl = results.get("blacklist")
    if bl and "stores" in bl:
        for store, r in bl["stores"].items():
            for name in ("none", "listed"):
                c = r["clicks"][name]["http_to_originate"]
                label = "empty list" if name == "none" else f"{bl['listed']:,} listed"
                row(f"5 do-not-call {store}, {label}: HTTP->Originate p50 / p99 ms", f"{c['p50_ms']} / {c['p99_ms']}")
            refusal = r["clicks"]["listed"]["refusal_response"]
            if refusal:
                row(f"5 do-not-call {store}, {bl['listed']:,} listed: refusal p50 / p99 ms",
                    f"{refusal['p50_ms']} / {refusal['p99_ms']}")
            row(f"5 do-not-call {store}: lookup alone p50 us (empty / listed)",
                f"{r['lookup']['none']['p50_us']} / {r['lookup']['listed']['p50_us']}")
    sm = results.get("stream")
    if sm and "streams" in sm:
        n = sm["streams"]
        row(f"6 stream: {n:,} open streams, gateway RSS KiB per stream", sm["kib_per_stream"])
        row(f"6 stream: events/s fanned out to {n:,} streams", sm["fanned_out_per_second"])
        row("6 stream: AMI event -> SSE frame p50 / p99 ms",
            f"{sm['ami_to_frame_ms']['p50']} / {sm['ami_to_frame_ms']['p99']}")
        row("6 stream: streams that got every event", f"{sm['streams_complete']:,} of {n:,}")
        wc = sm["write_cost"]
        row("6 stream: write one event, us per stream (aiohttp-sse send / encoded once)",
            f"{wc['send_us']} / {wc['encoded_once_us']}")
    pc = results.get("percall")
    if pc and "skipped" in pc:
        row("7 per call", "skipped: " + pc["skipped"][:60])
    elif pc and "settings" in pc:
        for name, r in pc["settings"].items():
            if "skipped" in r:
                row(f"7 {name}", "skipped: " + r["skipped"][:60])
                continue
            cpu = r["cpu_ms_per_call"]
            row(f"7 {name} CPU ms/call gateway / Asterisk", f"{cpu['gateway']:.2f} / {cpu['asterisk']:.2f}")
            row(f"7 {name} gateway / Asterisk", f"{r['ratio_percent']} %", "<= 10 %",
                r["ratio_percent"] is not None and r["ratio_percent"] <= TARGETS["percall_ratio_percent"])
            row(f"7 {name} AMI events per call", r["ami_events_per_call"])
            if "postgresql" in cpu:
                row(f"7 {name} PostgreSQL CPU ms/call", f"{cpu['postgresql']:.2f}")
            if r.get("failures"):
                row(f"7 {name} failures", f"{len(r['failures'])}: {r['failures'][0][:60]}")
    for part, r in results.items():
        if isinstance(r, dict) and "error" in r:
            row(f"{part}", "ERROR: " + r["error"][:80], "", False)
    return rows


def _within(value, limit) -> bool:
    return value is not None and value <= limit


def render(rows) -> str:
    widths = [max(len(r[k]) for r in rows + [("measure", "value", "target", "")]) for k in range(4)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(("measure", "value", "target", "verdict"), widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check the harness works")
    parser.add_argument("--rig", action="store_true", help="also item 4 on the real Asterisk rig")
    parser.add_argument("--only", default="async,stores,sync,ingest,latency,blacklist,stream")
    parser.add_argument("--out", default=None, help="JSON output (default bench/results/latest.json, "
                                                      "smoke: bench/results/smoke.json)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--pending", type=int, default=10_000, help="concurrent sync requests")
    parser.add_argument("--answer-rate", type=float, default=2000.0, help="answers per second (item 2)")
    parser.add_argument("--calls", type=int, default=150, help="click-to-calls per setting (item 7, --rig)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting, median reported (item 7)")
    parser.add_argument("--drivers", default="pjsip,chan_sip", help="item 7: the rig's drivers")
    parser.add_argument("--reads", default="call,system;all", help="item 7: the AMI users' read= (';'-separated)")
    parser.add_argument("--stores", default="sqlite,postgresql", help="item 7: the gateway's stores")
    parser.add_argument("--profile", default=None, help="item 7: py-spy each gateway into this directory")
    args = parser.parse_args(argv)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if args.rig and args.only == parser.get_default("only") and not args.smoke:
        parts.append("percall")
    out_path = args.out or os.path.join(REPO, "bench", "results", "smoke.json" if args.smoke else "latest.json")
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "smoke": args.smoke,
                     "machine": machine()}
    failed = False
    from . import async_bench, blacklist_bench, ingest, latency_bench, percall, stream_bench, sync_bench
    with workdir() as wd:
        for part in parts:
            started = time.monotonic()
            print(f"[bench] {part} ...", file=sys.stderr, flush=True)
            try:
                if part == "async":
                    results[part] = (async_bench.run_smoke(wd) if args.smoke else
                                     async_bench.run(wd, duration=args.duration))
                elif part == "stores":
                    results[part] = (async_bench.run_stores(wd, duration=1, connections=8) if args.smoke else
                                     async_bench.run_stores(wd, duration=args.duration))
                elif part == "sync":
                    results[part] = sync_bench.run(wd, n=200 if args.smoke else args.pending,
                                                   answer_rate=args.answer_rate,
                                                   timeout=30 if args.smoke else 180)
                elif part == "ingest":
                    results[part] = (ingest.run([10, 100], 2000, repeat=1) if args.smoke else
                                     ingest.run([100, 1000, 10_000], 100_000, repeat=5))
                elif part == "latency":
                    results[part] = latency_bench.run(wd, samples=10 if args.smoke else 200,
                                                      rig=args.rig, rig_samples=30)
                elif part == "blacklist":
                    results[part] = (blacklist_bench.run(wd, listed=2000, samples=10, postgres=False) if args.smoke
                                     else blacklist_bench.run(wd))
                elif part == "stream":
                    results[part] = (stream_bench.run(wd, streams=20, calls=2, rate=5) if args.smoke
                                     else stream_bench.run(wd))
                elif part == "percall":
                    results[part] = (percall.run(wd, calls=args.calls, repeat=args.repeat,
                                                 drivers=tuple(args.drivers.split(",")),
                                                 reads=tuple(args.reads.split(";")),
                                                 stores=tuple(args.stores.split(",")),
                                                 profile=args.profile)
                                     if args.rig else {"skipped": "needs --rig (the real Asterisk rig)"})
                else:
                    raise ValueError(f"unknown part {part!r}")
            except Exception as exc:
                failed = True
                traceback.print_exc()
                results[part] = {"error": f"{type(exc).__name__}: {exc}"}
            results.setdefault(part, {})["seconds"] = round(time.monotonic() - started, 1)
    results["table"] = [dict(zip(("measure", "value", "target", "verdict"), r, strict=True)) for r in table(results)]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1, default=str)
    m = results["machine"]
    print(f"\nc2c-ami bench ({'smoke' if args.smoke else 'full'}) on {m['nproc']} x {m['cpu_model']}, "
          f"Python {m['python']}, load avg at start {m['loadavg_at_start'][0]:.2f}")
    print(render(table(results)))
    print(f"\nwritten: {os.path.relpath(out_path, os.getcwd())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
