"""The operations console (``/console``) and the CRM widget (``/widget.js``): small static
files shipped in the package (``c2c_ami/static``, setup.cfg package_data), read once at start.
No token is needed to fetch them; everything they show comes from the API with the token the
console signs in for (or the widget is given). The console's page may only run its own
script and talk to its own origin (Content-Security-Policy), and may not be framed."""
from __future__ import annotations

from importlib.resources import files

from aiohttp import web

routes = web.RouteTableDef()

_STATIC = files("c2c_ami") / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_CONSOLE_ASSETS = ("console.js", "console.css")
# media-src: recordings play from their signed link, which may be recording.url_template's host
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "media-src *; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def _asset(name: str) -> tuple[bytes, str]:
    suffix = name[name.rindex("."):]
    return (_STATIC / name).read_bytes(), _TYPES[suffix]


_FILES = {name: _asset(name) for name in ("console.html", *_CONSOLE_ASSETS, "widget.js")}


def _serve(name: str, *, cache: int, headers: dict[str, str] | None = None) -> web.Response:
    body, kind = _FILES[name]
    return web.Response(body=body, content_type=kind, charset="utf-8",
                        headers={"Cache-Control": f"public, max-age={cache}", "X-Content-Type-Options": "nosniff",
                                 **(headers or {})})


@routes.get("/console")
async def console(request: web.Request) -> web.Response:
    return _serve("console.html", cache=60, headers={"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY",
                                                     "Referrer-Policy": "no-referrer"})


@routes.get("/console/{asset}")
async def console_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in _CONSOLE_ASSETS:
        raise web.HTTPNotFound()
    return _serve(name, cache=60)


@routes.get("/widget.js")
async def widget(request: web.Request) -> web.Response:
    """The script a CRM page includes (any origin may load a script)."""
    return _serve("widget.js", cache=300)
