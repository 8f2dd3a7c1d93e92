"""Platform test helpers: run the real reference platform as a subprocess on 127.0.0.1 and
talk HTTP to it.

Every JSON answer to a documented operation is checked against openapi.yaml, so each test also
checks that the document describes what the server really sends."""

import hashlib
import hmac
import os
import re
import secrets
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from reference_platform.contract import Contract  # noqa: E402
from reference_platform.process import (  # noqa: E402
    OperatorDevice, PlatformProcess, Reply, http_json)

OPERATOR_TOKEN = "op-" + "x" * 29
CONTRACT = Contract()
_TEMPLATES = []
for (method, path), op in CONTRACT.operations.items():
    rx = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
    _TEMPLATES.append((method, rx, op))


def find_operation(method, path):
    for m, rx, op in _TEMPLATES:
        if m == method and rx.match(path):
            return op
    return None


Resp = Reply


class Server(PlatformProcess):
    """One platform process on a port it picks; restartable on the same port and database."""

    def __init__(self, tmp_path, extra_args=()):
        self.device_class = Device
        # the interpreter running the tests: it already imports the server's packages
        super().__init__(tmp_path, OPERATOR_TOKEN, extra_args=extra_args, python=sys.executable)

    # ---- HTTP ----

    def call(self, method, path, json_body=None, data=None, token=None, headers=None,
             content_type=None, check_contract=True):
        resp = http_json(method, self.url + path, json_body, token, data=data,
                         content_type=content_type, headers=headers)
        if check_contract:
            check_response(method, path.split("?")[0], resp)
        return resp

    def op(self, method, path, **kw):
        return self.call(method, path, token=OPERATOR_TOKEN, **kw)


def check_response(method, path, resp):
    """Errors are always JSON Error bodies; documented answers match their documented schema."""
    if resp.status >= 400:
        assert resp.headers.get("Content-Type", "").startswith("application/json"), resp
        err = resp.json()
        problem = _first_error(CONTRACT.validator({"$ref": "#/components/schemas/Error"}), err)
        assert problem is None, (resp, problem)
    op = find_operation(method, path)
    if op is None:
        return
    assert str(resp.status) in op.spec["responses"], \
        "%s %s answered %d, not documented in openapi.yaml" % (method, path, resp.status)
    schema = op.response_schema(resp.status)
    if schema is not None and resp.body:
        problem = _first_error(CONTRACT.validator(schema), resp.json())
        assert problem is None, "%s %s %d does not match openapi.yaml: %s" % (
            method, path, resp.status, problem)


def _first_error(validator, instance):
    from reference_platform.validation import first_error
    return first_error(validator, instance)


# ---- device helpers ----

def proof(key, device_id, ts, nonce):
    msg = ("%s|%d|%s" % (device_id, ts, nonce)).encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def register_body(device_id, key, ts=None, nonce=None):
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or secrets.token_hex(8)
    return {"device_id": device_id, "timestamp": ts, "nonce": nonce,
            "proof": proof(key, device_id, ts, nonce)}


MIN_CONFIG = {"relays": {"pump": {"pin": 2}, "fan": {"pin": 3, "active_low": True}},
              "heartbeat_period_s": 10}


class Fleet:
    """Creates uniquely named tenants/namespaces/devices on a shared server."""

    def __init__(self, server):
        self.server = server

    def tenant(self, prefix="t"):
        return self.server.create_tenant(prefix=prefix)

    def namespace(self, tenant, name="lab"):
        return self.server.create_namespace(tenant, name)

    def device(self, tenant=None, namespace="lab", config=MIN_CONFIG):
        return self.server.provision(config, tenant, namespace)


def dev_path(tenant, namespace, device_id=None, tail=None):
    p = "/v1/operator/tenants/%s/namespaces/%s/devices" % (tenant, namespace)
    if device_id:
        p += "/" + device_id
    if tail:
        p += "/" + tail
    return p


class Device(OperatorDevice):
    """A device on `server`; call() registers first when it has no token yet."""

    def __init__(self, server, tenant, namespace, device_id, key):
        super().__init__(server, tenant, namespace, device_id, key)
        self.server = server
        self.token = None

    def register(self):
        r = self.server.call("POST", "/v1/devices/register",
                             json_body=register_body(self.device_id, self.key))
        assert r.status == 200, r
        self.token = r.json()["token"]
        return r.json()

    def call(self, method, path, **kw):
        if self.token is None:
            self.register()
        return self.server.call(method, path, token=self.token, **kw)
