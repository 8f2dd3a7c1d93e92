"""openapi.yaml is valid OpenAPI 3 and lists exactly the routes the server serves."""

import json
import os

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from platform_harness import ROOT, check_response, Resp

DOC = os.path.join(ROOT, "reference_platform", "openapi.yaml")


def test_openapi_document_is_valid():
    spec, _ = read_from_filename(DOC)
    assert spec["openapi"].startswith("3.0")
    validate(spec)


def test_every_served_route_is_documented_and_vice_versa(tmp_path):
    from reference_platform.app import Platform, build_app
    from reference_platform.contract import Contract
    app = build_app(Platform(str(tmp_path / "db.sqlite"), "t" * 16))
    contract = Contract()
    served = set()
    for route in app.routes:
        for method in route.methods - {"HEAD"}:
            served.add((method, route.path))
            assert route.endpoint.__name__ == contract.operation(method, route.path).id
    documented = set(contract.operations)
    assert served == documented
    assert all(path.startswith("/v1/") for _, path in served)
    ids = [op.id for op in contract.operations.values()]
    assert len(ids) == len(set(ids))


def test_every_device_operation_requires_the_device_jwt_or_is_public():
    from reference_platform.contract import Contract
    public = {"health", "registerDevice", "getConfigSchema"}
    for (method, path), op in Contract().operations.items():
        sec = op.spec.get("security")
        if path.startswith("/v1/operator/"):
            assert sec == [{"operatorToken": []}], op.id
        elif op.id in public:
            assert sec is None, op.id
        else:
            assert sec == [{"deviceJWT": []}], op.id


def test_config_schema_is_valid_draft7():
    with open(os.path.join(ROOT, "reference_platform", "config.schema.json")) as f:
        jsonschema.Draft7Validator.check_schema(json.load(f))


def test_the_contract_check_in_these_tests_catches_drift():
    # A response missing a required member must fail the check every test relies on.
    bad = Resp(200, {"Content-Type": "application/json"}, b'{"status": "ok"}')
    with pytest.raises(AssertionError):
        check_response("GET", "/v1/health", bad)
    undocumented = Resp(201, {"Content-Type": "application/json"}, b'{}')
    with pytest.raises(AssertionError):
        check_response("GET", "/v1/health", undocumented)
    not_json_error = Resp(400, {"Content-Type": "text/plain"}, b"oops")
    with pytest.raises(AssertionError):
        check_response("GET", "/v1/health", not_json_error)
