"""The OpenAPI document is valid and matches the router and the error codes."""
from openapi_spec_validator import validate

from c2c_ami import patterns
from c2c_ami.api.errors import HTTP_STATUS
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
    assert enum == [cls.code for cls in ERROR_CLASSES] + ["NOT_FOUND", "METHOD_NOT_ALLOWED"]


def test_v2_click2call_and_customer_id_are_documented():
    spec = build_openapi()
    v2 = spec["paths"]["/v2/click2call"]["post"]
    body = spec["components"]["schemas"]["ClickToCallV2"]
    assert body["allOf"] == [{"oneOf": [{"required": [v2]}, {"required": [v1]}]}
                             for v2, v1 in (("id", "customer_id"), ("mobile", "phone"), ("agent", "ext"))]
    assert {"customer_id", "phone", "ext"} <= set(body["properties"])
    assert {"src_cid_name", "hotline", "auto_answer", "is_encode"} <= set(body["properties"])
    assert body["properties"]["id"]["pattern"] == patterns.CUSTOMER_ID.anchored
    assert v2["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SuccessV2")
    assert all(r["content"]["application/json"]["schema"]["$ref"].endswith("/FailureV2")
               for status, r in v2["responses"].items() if status != "200")
    assert spec["components"]["schemas"]["FailureV2"]["properties"]["code"]["enum"] == ["1"]
    for path in ("/v1/click2call", "/v1/click2call/async", "/v1/cdr"):
        names = [p["name"] for p in spec["paths"][path]["get"]["parameters"]]
        assert "customer_id" in names, path


def test_the_documented_statuses_are_the_error_tables():
    """Every failure response lists the codes of its status, as ``api/errors.py`` maps them,
    and every code is documented under its status somewhere."""
    documented = set()
    for ops in build_openapi()["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                failure = schema.get("$ref", "").endswith(("/Failure", "/FailureV2"))
                if not failure or response["description"] == "error":
                    continue
                for code in response["description"].split(", "):
                    assert HTTP_STATUS[code] == int(status), (code, status)
                    documented.add(code)
    assert documented == set(HTTP_STATUS)
