"""The reference: a bare aiohttp JSON handler (same routes, same JSON shape as the gateway's
success answer), run as its own process: ``python -m bench.bare_server --port N``."""
from __future__ import annotations

import argparse
import itertools

from aiohttp import web

_ids = itertools.count()


async def handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "success", "call_id": f"bare-{next(_ids)}"})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/v1/click2call/async", handler)
    app.router.add_get("/readyz", ready)
    # like the gateway under ``python -m c2c_ami`` (run_app, no access log configured = none shown)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
