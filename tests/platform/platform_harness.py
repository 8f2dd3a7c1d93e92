"""Platform test helpers: run the real reference platform as a subprocess on 127.0.0.1 and
talk HTTP to it.

Every JSON answer to a documented operation is checked against openapi.yaml, so each test also
checks that the document describes what the server really sends."""

import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from reference_platform.contract import Contract  # noqa: E402

OPERATOR_TOKEN = "op-" + "x" * 29
START_TIMEOUT_S = 20
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


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.body[:300])


class Server:
    """One platform process; restartable on the same database."""

    def __init__(self, tmp_path, extra_args=()):
        self.db = str(tmp_path / "platform.sqlite")
        self.extra_args = list(extra_args)
        self.proc = None
        self.url = None
        self.log_path = str(tmp_path / "platform.log")

    def start(self, extra_args=None):
        args = [sys.executable, "-m", "reference_platform", "--host", "127.0.0.1", "--port", "0",
                "--db", self.db, "--operator-token", OPERATOR_TOKEN, "--log-level", "warning"]
        args += self.extra_args if extra_args is None else list(extra_args)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log)
        line = self._readline_with_timeout()
        m = re.match(rb"reference platform listening on (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError("platform did not start: %r; log: %s" % (line, self.read_log()))
        self.url = m.group(1).decode()
        return self

    def _readline_with_timeout(self):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=START_TIMEOUT_S):
            return b""
        return self.proc.stdout.readline()

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self._log.close()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    # ---- HTTP ----

    def call(self, method, path, json_body=None, data=None, token=None, headers=None,
             content_type=None, check_contract=True):
        hdrs = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                resp = Resp(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            resp = Resp(e.code, e.headers, e.read())
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
        name = "%s-%s" % (prefix, secrets.token_hex(4))
        r = self.server.op("POST", "/v1/operator/tenants", json_body={"name": name})
        assert r.status == 201, r
        return name

    def namespace(self, tenant, name="lab"):
        r = self.server.op("POST", "/v1/operator/tenants/%s/namespaces" % tenant,
                           json_body={"name": name})
        assert r.status == 201, r
        return name

    def device(self, tenant=None, namespace=None, config=MIN_CONFIG):
        tenant = tenant or self.tenant()
        if namespace is None:
            namespace = self.namespace(tenant)
        device_id = "pico-" + secrets.token_hex(4)
        key = secrets.token_hex(16)
        r = self.server.op("POST", dev_path(tenant, namespace),
                           json_body={"device_id": device_id, "device_key": key})
        assert r.status == 201, r
        if config is not None:
            r = self.server.op("PUT", dev_path(tenant, namespace, device_id, "config"),
                               json_body=config)
            assert r.status == 200, r
        return Device(self.server, tenant, namespace, device_id, key)


def dev_path(tenant, namespace, device_id=None, tail=None):
    p = "/v1/operator/tenants/%s/namespaces/%s/devices" % (tenant, namespace)
    if device_id:
        p += "/" + device_id
    if tail:
        p += "/" + tail
    return p


class Device:
    def __init__(self, server, tenant, namespace, device_id, key):
        self.server = server
        self.tenant = tenant
        self.namespace = namespace
        self.device_id = device_id
        self.key = key
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

    def op_path(self, tail=None):
        return dev_path(self.tenant, self.namespace, self.device_id, tail)
