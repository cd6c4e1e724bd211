"""The OpenAPI document is valid and matches the router and the error codes."""
from openapi_spec_validator import validate

from c2c_ami.api.openapi import build_openapi
from c2c_ami.errors import ERROR_CLASSES


def test_document_is_valid_openapi_3():
    validate(build_openapi())


async def test_every_route_is_documented_and_every_documented_path_routed(gateway):
    routed = set()
    for route in gateway.app.router.routes():
        if route.method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            routed.add((route.resource.canonical, route.method.lower()))
    spec = (await (await gateway.get("/v1/openapi.json")).json())
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routed == documented


def test_every_error_code_is_documented():
    spec = build_openapi()
    enum = spec["components"]["schemas"]["Failure"]["properties"]["error"]["enum"]
    assert enum == [cls.code for cls in ERROR_CLASSES]
