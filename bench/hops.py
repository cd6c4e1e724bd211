"""``python -m bench.hops``: the path of one synchronous click through the gateway's modules.

One ``GET /v1/click2call`` is served in-process against the fake AMI (the extension answers,
the number answers and hangs up at once). Every call of a function of ``c2c_ami`` is traced
(``sys.setprofile``); a *hop* is a call from one module of the package into another, and a
*stop* a run of consecutive calls inside one module. The request is traced from the moment
its handler starts until the call's CDR is queued, so the AMI events of that call are in it.

A *return* is a hop back into a module that is already further down the stack (a callback:
the registry calling into the event translator that called it, the reporter reading the call
that reported to it): the back-and-forth a clean one-way path does without. It also counts
how often the work that should happen once per request or per event happened: the tenant's
authorization, the call's durable facts and its record built.

It prints the modules entered, the hops, the stops, the returns, those counts, and with
``--route`` every hop in order. A developer tool for docs/architecture.md, not run by CI.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

PACKAGE = "c2c_ami"
_RESUMABLE = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


class Tracer:
    """Records the module of every ``c2c_ami`` function entered, in order, with its caller's."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []     # (caller module, callee module, callee name)
        self.returns: list[tuple[str, str, str]] = []   # hops into a module already down the stack
        self._started: set[Any] = set()                  # coroutine frames already entered once

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        if frame.f_code.co_flags & _RESUMABLE:
            if frame in self._started:
                return          # a coroutine or generator resumed: not a new call
            self._started.add(frame)
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(PACKAGE) or module.startswith(f"{PACKAGE}.testing"):
            return
        caller = _package_caller(frame.f_back)
        call = (caller, module, frame.f_code.co_qualname)
        self.calls.append(call)
        if caller and caller != module and module in _stack_modules(frame.f_back):
            self.returns.append(call)


def _package_caller(frame: Any) -> str:
    """The nearest ``c2c_ami`` module up the stack ("" if none: the event loop, aiohttp)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(PACKAGE) and not module.startswith(f"{PACKAGE}.testing"):
            return module
        frame = frame.f_back
    return ""


def _stack_modules(frame: Any) -> set[str]:
    """The ``c2c_ami`` modules on the stack below ``frame``'s nearest package caller."""
    found: set[str] = set()
    first = ""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(PACKAGE) and not module.startswith(f"{PACKAGE}.testing"):
            if not first:
                first = module
            elif module != first:
                found.add(module)
        frame = frame.f_back
    return found


ONCE = {   # work done once per request or per event, by the name of the function that does it
    "authorizations": ("CallService._authorize",),
    "facts built": ("Call.facts",),
    "records built": ("call_record",),
}


def hops(calls: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [c for c in calls if c[0] and c[0] != c[1]]


def stops(calls: list[tuple[str, str, str]]) -> list[str]:
    """Consecutive calls in one module count once."""
    out: list[str] = []
    for _, module, _ in calls:
        if not out or out[-1] != module:
            out.append(module)
    return out


def short(module: str) -> str:
    return module.removeprefix(f"{PACKAGE}.")


async def trace_click() -> Tracer:
    from c2c_ami.app import create_app
    from c2c_ami.config import parse_config
    from c2c_ami.testing.fake_ami import FakeAmiServer

    tracer = Tracer()
    async with FakeAmiServer(username="c2c", secret="change-me", default_device_state="NOT_INUSE") as ami:
        config = parse_config({
            "listen": {"host": "127.0.0.1", "port": 8080},
            "ami": {"host": "127.0.0.1", "port": ami.port, "username": "c2c", "secret": "change-me"},
            "calls": {"ring_timeout": 2, "sync_timeout": 4},
            "storage": {"path": ":memory:"},
            "tenants": [{"domain": "default", "tokens": ["hops-token-0123456789"], "endpoint": "PJSIP/{ext}",
                         "context": "c2c-outbound", "extensions": "^1[0-9]{2}$",
                         "hotlines": {"02873001234": "hotline-trunk"}}],
        }, {})
        app = create_app(config)
        server = TestServer(app)
        await server.start_server()
        try:
            for pbx_link in _links(app):
                await pbx_link.wait_ready(3)
            url = server.make_url("/v1/click2call?ext=101&phone=0899098899")
            traced = server.make_url("/v1/click2call?ext=101&phone=0899098800")   # no duplicate of the warm-up
            headers = {"Authorization": "Bearer hops-token-0123456789"}
            async with aiohttp.ClientSession() as session:
                async with session.get(url, headers=headers) as warmup:   # imports, first-use caches
                    await warmup.read()
                await _all_ended(app)
                sys.setprofile(tracer)
                try:
                    async with session.get(traced, headers=headers) as response:
                        await response.read()
                    await _all_ended(app)
                finally:
                    sys.setprofile(None)
        finally:
            await server.close()
    return tracer


def _links(app: Any) -> Iterator[Any]:
    for value in app.values() if hasattr(app, "values") else ():
        if isinstance(value, dict):
            for link in value.values():
                if hasattr(link, "wait_ready"):
                    yield link
        elif hasattr(value, "wait_ready"):
            yield value


async def _all_ended(app: Any) -> None:
    """Every call ended, then every write of it stored (its CDR and webhooks queued)."""
    for value in app.values():
        if hasattr(value, "wait_empty"):
            await value.wait_empty(5)
    for value in app.values():
        if hasattr(value, "flush") and hasattr(value, "unstored_end"):
            await value.flush(5)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--route", action="store_true", help="print every hop in order")
    args = parser.parse_args()
    tracer = asyncio.run(trace_click())
    crossing = hops(tracer.calls)
    entered = sorted({module for _, module, _ in tracer.calls})
    print(f"modules entered: {len(entered)}")
    print(f"hops between modules: {len(crossing)}")
    print(f"stops (runs of calls in one module): {len(stops(tracer.calls))}")
    print(f"returns (hops back into a module down the stack): {len(tracer.returns)}")
    for what, names in ONCE.items():
        print(f"{what}: {sum(1 for _, _, name in tracer.calls if name in names)}")
    pairs = collections.Counter((short(a), short(b)) for a, b, _ in crossing)
    print("\nhops by pair (caller -> callee: count):")
    for (a, b), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {a} -> {b}: {n}")
    print("\nmodules: " + ", ".join(short(m) for m in entered))
    backs = collections.Counter((short(a), short(b)) for a, b, _ in tracer.returns)
    print("\nreturns by pair:")
    for (a, b), n in sorted(backs.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {a} -> {b}: {n}")
    if args.route:
        print("\nroute:")
        for a, b, name in crossing:
            print(f"  {short(a)} -> {short(b)}.{name}")


if __name__ == "__main__":
    main()
