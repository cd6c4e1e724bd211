"""What ``c2c_ami/http_server.py`` relies on in aiohttp beyond its documented API, in one
place (its ``_Handler``): each named, so an upgrade that changes one fails here, saying which,
instead of aiohttp's plain-text 400 (echoing the request) coming back silently. The behaviour
itself is tested in tests/test_http_server.py (the failure body of what aiohttp refuses)."""
import asyncio
import inspect

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from c2c_ami.config import HttpConfig
from c2c_ami.http_server import Connections, _Guard, _Handler, handler_args


def test_the_handler_aiohttp_builds_per_connection_is_the_exported_request_handler():
    assert isinstance(getattr(web, "RequestHandler", None), type), \
        "aiohttp.web.RequestHandler is gone: http_server._Handler subclasses it"
    assert issubclass(_Handler, web.RequestHandler)


def test_handle_error_is_the_one_place_aiohttp_answers_what_it_refuses():
    params = list(inspect.signature(web.RequestHandler.handle_error).parameters)
    assert params[:5] == ["self", "request", "status", "exc", "message"], (
        "aiohttp's RequestHandler.handle_error(request, status, exc, message) changed: http_server._Handler "
        f"overrides it to answer refused requests in the failure body (now: {params})")
    source = inspect.getsource(web.RequestHandler)
    assert "_make_error_handler" in source and "self.handle_error(" in source, (
        "aiohttp no longer answers a request head it cannot parse through RequestHandler.handle_error: "
        "see http_server._Handler")


def test_a_request_handler_takes_the_manager_the_loop_and_the_limits_http_server_passes():
    params = inspect.signature(web.RequestHandler.__init__).parameters
    wanted = {"manager", "loop", "access_log_class", *handler_args(HttpConfig())}
    assert wanted <= set(params), f"RequestHandler no longer takes {sorted(wanted - set(params))}"


def test_the_parsers_errors_http_server_names_are_there():
    assert issubclass(LineTooLong, HttpProcessingError) and issubclass(BadHttpMessage, HttpProcessingError)
    assert "Too many headers" in inspect.getsource(__import__("aiohttp.http_parser", fromlist=["x"])), \
        "aiohttp's 'Too many headers' message changed: api/errors.malformed names http.max_headers by it"


async def test_the_handler_is_built_for_each_connection_with_its_guard():
    runner_app = web.Application()
    runner = web.AppRunner(runner_app)
    await runner.setup()
    try:
        assert runner.server is not None
        connections = Connections(HttpConfig())
        loop = asyncio.get_running_loop()
        made = []
        protocol = connections.factory(lambda guard: made.append(guard) or _Handler(
            runner.server, guard, loop=loop, **handler_args(HttpConfig())))()
        assert isinstance(protocol, _Guard) and made == []            # built once admitted
    finally:
        await runner.cleanup()
