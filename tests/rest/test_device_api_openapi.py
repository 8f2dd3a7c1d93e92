"""docs/device_api.openapi.yaml is a valid OpenAPI document and names exactly the routes the
app serves: the app's url_map is printed by the MicroPython build and compared here. (Every
answer the other tests receive is checked against the document by rest_harness.)"""

import json
import os
import re
import subprocess

from openapi_spec_validator import validate

from rest_harness import LAUNCHER, MICROPYPATH, MICROPYTHON, OPENAPI_DOC, ROOT, require_build


def served_routes():
    require_build()
    p = subprocess.run([MICROPYTHON, LAUNCHER, "--routes"], cwd=ROOT, capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, MICROPYPATH=MICROPYPATH))
    assert p.returncode == 0, p.stderr + p.stdout
    routes = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert routes
    # microdot's <relay> is OpenAPI's {relay}
    return [(r["method"], re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", r["path"])) for r in routes]


def test_document_is_valid_openapi():
    validate(OPENAPI_DOC.doc)


def test_served_routes_equal_documented_routes():
    served = served_routes()
    assert len(served) == len(set(served)), "a route is served twice: %s" % served
    documented = OPENAPI_DOC.routes()
    assert set(served) - documented == set(), "served but not documented"
    assert documented - set(served) == set(), "documented but not served"


def test_every_route_documents_its_refusals():
    # the refusals every route can give, by its place in the order of checks
    doc = OPENAPI_DOC.doc["paths"]
    for method, path in OPENAPI_DOC.routes():
        op = doc[path][method.lower()]
        codes = set(op["responses"])
        assert "429" in codes, (method, path)
        if op.get("security", True) != []:
            assert {"401", "403", "503"} <= codes, (method, path)
        if "requestBody" in op:
            assert {"400", "411", "413", "415"} <= codes, (method, path)
