"""Helpers for the device REST API tests: the API served by the MicroPython unix build
(tests/rest/device_api_server.py) on 127.0.0.1, driven over real sockets.

- `DeviceApiServer(tmp, **settings)`: a running API with its control port (board view: pin
  levels, relay states, switch counts; and the simulated clock, identity, readiness, counters).
- `token(...)`: an HS256 JWT made here, with any header, claims or key.
- `refused(...)`: sends a request that must be refused, checks the status, the error JSON and
  that no relay moved (pin levels, states, switch counts), and counts the case in its group;
  the groups are summed up at the end of the run.
- Every JSON answer of a documented route is checked against docs/device_api.openapi.yaml.

Every wait is bounded; clients bind 127.0.0.x source addresses to act as several hosts."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
from reference_platform.process import free_port, stop_process  # noqa: E402,F401
from reference_platform.security import b64url, hs256, sign_hs256  # noqa: E402,F401
MICROPYTHON = os.path.join(ROOT, ".cache", "build", "unix", "micropython")
MICRODOT = os.path.join(ROOT, ".cache", "microdot", "2.7.0")
LAUNCHER = os.path.join(HERE, "device_api_server.py")
OPENAPI = os.path.join(ROOT, "docs", "device_api.openapi.yaml")
MICROPYPATH = ":".join([os.path.join(ROOT, "python"), MICRODOT, ".frozen"])

KEY = b"rest-api-test-key-0123456789abcdef"   # 34 bytes: above the 32-byte minimum
ISSUER = "https://platform.test"
AUDIENCE = "device-rest-1"
TENANT = "acme"
NAMESPACE = "plant-a"

DEVICE = {
    "relays": {
        "r1": {"pin": 2},
        "r2": {"pin": 3, "active_low": True},
        "slow": {"pin": 4, "min_interval_ms": 60000},
        "fwd": {"pin": 5},
        "rev": {"pin": 6},
    },
    "interlocks": [{"relays": ["fwd", "rev"], "dead_ms": 300}],
    "api": {"roles": {"switcher": {"permissions": ["relays:write"]},
                      "auditor": {"permissions": ["relays:read", "metrics:read"]}}},
    "rate_limits": {"default": {"requests": 2000, "window_s": 1}},
    "http": {"token_checks_per_s": 1000},   # the suites send hundreds of distinct tokens
}


def require_build():
    if not os.path.exists(MICROPYTHON):
        pytest.fail("no MicroPython unix build at %s: run `make unix`" % MICROPYTHON)
    if not os.path.exists(os.path.join(MICRODOT, "microdot", "__init__.py")):
        pytest.fail("microdot is not unpacked at %s: run `make deps`" % MICRODOT)


# ---- tokens ----

def sign(signing_input, key=KEY):
    return hs256(key, signing_input)


def claims(sub="alice", role="operator", **over):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant": TENANT, "namespace": NAMESPACE,
         "iat": now, "exp": now + 7200}  # outlives a long test session
    if role is not None:
        c["role"] = role
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token(sub="alice", role="operator", key=KEY, header=None, **over):
    return sign_hs256(key, claims(sub, role, **over), header)


# ---- the OpenAPI document as a checker of answers ----

class OpenApi:
    def __init__(self, path=OPENAPI):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.registry = Registry().with_resource("urn:device-api", Resource.from_contents(
            self.doc, default_specification=DRAFT202012))

    def routes(self):
        out = set()
        for p, item in self.doc["paths"].items():
            for m in item:
                if m in ("get", "post", "put", "patch", "delete"):
                    out.add((m.upper(), p))
        return out

    def template(self, path):
        # "/gpio/r1" -> "/gpio/{relay}"; None when no documented path matches
        parts = path.split("?")[0].split("/")
        for p in self.doc["paths"]:
            tp = p.split("/")
            if len(tp) == len(parts) and all(a == b or (a.startswith("{") and b)
                                             for a, b in zip(tp, parts)):
                return p
        return None

    def response(self, method, template, status):
        op = self.doc["paths"][template].get(method.lower())
        if op is None:
            return None
        r = op["responses"].get(str(status))
        if r is not None and "$ref" in r:
            r = self.doc["components"]["responses"][r["$ref"].rsplit("/", 1)[1]]
        return r

    def check(self, method, path, answer):
        t = self.template(path)
        if t is None or self.doc["paths"][t].get(method.lower()) is None:
            return
        r = self.response(method, t, answer.status)
        assert r is not None, "%s %s answered %d, not documented for %s" % (
            method, path, answer.status, t)
        ctype = (answer.headers.get("Content-Type") or "").split(";")[0]
        assert ctype in r.get("content", {}), "%s %s %d: Content-Type %s not documented" % (
            method, path, answer.status, ctype)
        for h in r.get("headers", {}):
            assert h in answer.headers, "%s %s %d: header %s missing" % (
                method, path, answer.status, h)
        schema = r["content"][ctype]["schema"]
        if ctype == "application/json":
            if "$ref" in schema:
                schema = {"$ref": "urn:device-api#" + schema["$ref"][1:]}
            v = Draft202012Validator(schema, registry=self.registry)
            errors = sorted(v.iter_errors(answer.json), key=lambda e: e.path)
            assert not errors, "%s %s %d: %s does not match the document: %s" % (
                method, path, answer.status, answer.json, errors[0].message)


OPENAPI_DOC = OpenApi()


# ---- the server ----

class Answer:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        self.json = None
        if raw and headers.get("Content-Type", "").startswith("application/json"):
            self.json = json.loads(self.text)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.text[:200])


class DeviceApiServer:
    # heap: a MicroPython heap size ("200K"): the board-sized heap, with the frozen modules
    # (as on the board) instead of the .py sources
    def __init__(self, tmp, device=None, heap=None, **settings):
        require_build()
        self.heap = heap
        self.dir = str(tmp)
        self.port = free_port()
        self.control_port = free_port()
        self.settings = {"port": self.port, "control_port": self.control_port,
                         "data_dir": os.path.join(self.dir, "data"),
                         "device": device if device is not None else DEVICE,
                         "jwt": {"key": KEY.decode(), "issuer": ISSUER, "audience": AUDIENCE},
                         "tenant": TENANT, "namespace": NAMESPACE, "synced": True, "missing": []}
        self.settings.update(settings)
        self.proc = None

    def start(self):
        path = os.path.join(self.dir, "settings.json")
        with open(path, "w") as f:
            json.dump(self.settings, f)
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        argv, path_ = [MICROPYTHON], MICROPYPATH
        if self.heap:
            argv += ["-X", "heapsize=" + self.heap]
            path_ = ".frozen"
        self.proc = subprocess.Popen(argv + [LAUNCHER, path], cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, MICROPYPATH=path_))
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, "the API server exited: %s" % self.output()
            try:
                self.board()
                return self
            except OSError:
                assert time.monotonic() < deadline, \
                    "the API server did not start: %s" % self.output()
                time.sleep(0.05)

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.log.close()

    def output(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    # ---- HTTP ----

    def http(self, port, method, path, body=None, headers=None, source="127.0.0.1", timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                       source_address=(source, 0))
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Answer(r.status, {k: v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def request(self, method, path, json_body=None, token=None, raw=None,
                content_type="application/json", headers=None, source="127.0.0.1"):
        # json_body: sent as JSON; raw: bytes sent as they are; token: a bearer token
        h = {}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if body is not None and content_type is not None:
            h["Content-Type"] = content_type
        h.update(headers or {})
        a = self.http(self.port, method, path, body, h, source)
        OPENAPI_DOC.check(method, path, a)
        if a.status >= 400 and a.json is not None:
            check_error_shape(a)
        return a

    def raw(self, data, source="127.0.0.1", timeout=10):
        # bytes sent as they are, then our side shut (the request is all there is);
        # -> (status or None, parsed JSON body or None, raw answer)
        with socket.create_connection(("127.0.0.1", self.port), timeout, (source, 0)) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:  # the server answered and closed before taking all of it
                pass
            chunks = []
            while True:
                try:
                    c = s.recv(4096)
                except ConnectionResetError:
                    break
                if not c:
                    break
                chunks.append(c)
        out = b"".join(chunks)
        if not out.startswith(b"HTTP/"):
            return None, None, out
        head, _, body = out.partition(b"\r\n\r\n")
        status = int(head.split(None, 2)[1])
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        return status, doc, out

    def get(self, path, tok=None, **kw):
        return self.request("GET", path, token=tok, **kw)

    def post(self, path, body, tok=None, **kw):
        return self.request("POST", path, json_body=body, token=tok, **kw)

    # ---- the board and the simulated controller ----

    def board(self):
        return self.http(self.control_port, "GET", "/board", timeout=5).json

    def relays(self):
        # what must not move on a refusal: pin levels, logical states, switch counts
        b = self.board()
        return {"pins": b["pins"], "states": b["states"], "switches": b["switches"]}

    def sim(self, **kw):
        a = self.http(self.control_port, "POST", "/sim", json.dumps(kw).encode(),
                      {"Content-Type": "application/json"}, timeout=5)
        assert a.status == 200, a
        return a.json

    def calls(self):
        return self.http(self.control_port, "GET", "/calls", timeout=5).json

    def api_state(self):
        return self.http(self.control_port, "GET", "/api", timeout=5).json

    def settle(self, state_write=True, timeout=5):
        """The API state once no write is waiting: every audit line of the earlier requests
        on file, and (state_write) the relay state file written (polled, bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.api_state()
            if not st["audit_pending"] and not (state_write and st["state_write_pending"]):
                return st
            assert time.monotonic() < deadline, "writes still waiting after %s s: %s" % (
                timeout, st)
            time.sleep(0.02)

    def audit(self):
        path = os.path.join(self.settings["data_dir"], "log", "audit.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_board(self, predicate, what, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            b = self.board()
            if predicate(b):
                return b
            assert time.monotonic() < deadline, "timed out waiting for %s: %s" % (what, b)
            time.sleep(0.02)


def check_error_shape(a):
    body = a.json
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], a
    assert isinstance(body.get("message"), str) and body["message"], a
    extra = set(body) - {"error", "message", "field"}
    assert extra <= ({"missing"} if body["error"] == "not_ready" else set()), a
    if "field" in body:
        assert isinstance(body["field"], str) and body["field"], a


# ---- refusals, counted by group ----

class Tally:
    def __init__(self):
        self.groups = {}

    def add(self, group, ok, status):
        g = self.groups.setdefault(group, {"cases": 0, "bad": 0, "statuses": set()})
        g["cases"] += 1
        g["statuses"].add(status)
        if not ok:
            g["bad"] += 1

    def lines(self):
        out = []
        for name in sorted(self.groups):
            g = self.groups[name]
            statuses = "/".join(str(s) for s in sorted(g["statuses"], key=str))
            if g["bad"]:
                out.append("%s: %d cases, %d NOT as expected (statuses seen %s)" % (
                    name, g["cases"], g["bad"], statuses))
            else:
                out.append("%s: %d cases, all %s as expected, no relay moved" % (
                    name, g["cases"], statuses))
        return out


TALLY = Tally()
FIGURES = []   # (test, text): measured figures, printed at the end of the run
_MISSING = object()


def refused(api, group, method, path, status, error, field=_MISSING, **kw):
    """Send a request that must be refused; check status, error code, field, and that no
    relay moved. Counted in `group` for the summary."""
    before = api.relays()
    a = api.request(method, path, **kw)
    after = api.relays()
    ok = (a.status == status and a.json is not None and a.json.get("error") == error
          and (field is _MISSING or a.json.get("field") == field) and before == after)
    TALLY.add(group, ok, a.status)
    assert a.status == status, "%s %s: want %d %s, got %r" % (method, path, status, error, a)
    assert a.json["error"] == error, "%s %s: want %s, got %r" % (method, path, error, a)
    if field is not _MISSING:
        assert a.json.get("field") == field, "%s %s: want field %r, got %r" % (
            method, path, field, a)
    assert before == after, "%s %s was refused but relays moved: %s -> %s" % (
        method, path, before, after)
    if status == 429:
        assert int(a.headers["Retry-After"]) >= 1, a.headers
    return a


def refused_raw(api, group, data, status, error):
    """refused() for bytes sent as they are (requests http.client will not make)."""
    before = api.relays()
    st, doc, out = api.raw(data)
    after = api.relays()
    ok = st == status and doc is not None and doc.get("error") == error and before == after
    TALLY.add(group, ok, st)
    assert st == status and doc is not None and doc.get("error") == error, out[:300]
    assert before == after, "refused but relays moved: %s -> %s" % (before, after)
    return doc
