"""End-to-end helpers: the reference platform as a real process on 127.0.0.1 (restartable on
the same port and database, so a device's service URLs and token survive an outage), operator
calls, and device provisioning."""

import json
import os
import re
import secrets
import selectors
import socket
import subprocess
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PY = os.path.join(ROOT, ".cache", "venv", "bin", "python")
OPERATOR_TOKEN = "e2e-operator-" + "t" * 20
START_TIMEOUT_S = 20


def python_for_platform():
    return VENV_PY if os.path.exists(VENV_PY) else sys.executable


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HTTPResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTPResult %d %r>" % (self.status, self.body[:300])


def http(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return HTTPResult(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, dict(e.headers), e.read())


class PlatformProc:
    """python -m reference_platform on a fixed loopback port; stop() and start() keep the data."""

    def __init__(self, workdir, port=None, extra_args=()):
        self.workdir = str(workdir)
        self.db = os.path.join(self.workdir, "platform.sqlite")
        self.log_path = os.path.join(self.workdir, "platform.log")
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.extra_args = list(extra_args)
        self.proc = None
        self._log = None

    def start(self):
        args = [python_for_platform(), "-m", "reference_platform", "--host", "127.0.0.1",
                "--port", str(self.port), "--db", self.db, "--operator-token", OPERATOR_TOKEN,
                "--log-level", "warning"] + self.extra_args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = self.proc.stdout.readline() if sel.select(timeout=START_TIMEOUT_S) else b""
        sel.close()
        if not re.match(rb"reference platform listening on http://127\.0\.0\.1:%d" % self.port,
                        line):
            self.stop()
            raise RuntimeError("platform did not start: %r; log: %s" % (line, self.read_log()))
        return self

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

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # ---- operator side ----

    def op(self, method, path, json_body=None, data=None, content_type=None):
        headers = {"Authorization": "Bearer " + OPERATOR_TOKEN}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = data
            headers["Content-Type"] = content_type or "application/octet-stream"
        return http(method, self.url + path, body, headers)

    def provision(self, config=None, prefix="e2e"):
        """A new tenant/namespace/device (with a config when given) -> DeviceCreds."""
        tenant = "%s-%s" % (prefix, secrets.token_hex(3))
        for path, name in (("/v1/operator/tenants", tenant),
                           ("/v1/operator/tenants/%s/namespaces" % tenant, "lab")):
            r = self.op("POST", path, json_body={"name": name})
            assert r.status == 201, r
        dev = DeviceCreds(self, tenant, "lab", "pico-" + secrets.token_hex(4),
                          secrets.token_hex(16))
        r = self.op("POST", dev.op_path()[:-(len(dev.device_id) + 1)],
                    json_body={"device_id": dev.device_id, "device_key": dev.key})
        assert r.status == 201, r
        if config is not None:
            r = self.op("PUT", dev.op_path("config"), json_body=config)
            assert r.status == 200, r
        return dev

    def public_key_hex(self):
        r = http("GET", self.url + "/v1/ota/public-key")
        assert r.status == 200, r
        return r.json()["public_key_hex"]


class DeviceCreds:
    def __init__(self, platform, tenant, namespace, device_id, key):
        self.platform = platform
        self.tenant = tenant
        self.namespace = namespace
        self.device_id = device_id
        self.key = key

    def op_path(self, tail=None):
        p = "/v1/operator/tenants/%s/namespaces/%s/devices/%s" % (
            self.tenant, self.namespace, self.device_id)
        return p + "/" + tail if tail else p

    def alarms(self):
        """The platform's merged alarms of this device: {dedup_key: alarm}."""
        r = self.platform.op("GET", self.op_path("alarms") + "?limit=500")
        assert r.status == 200, r
        return {a["dedup_key"]: a for a in r.json()["alarms"]}

    def publish(self, image, query):
        path = "/v1/operator/tenants/%s/namespaces/%s/ota?%s" % (self.tenant, self.namespace,
                                                                 query)
        return self.platform.op("POST", path, data=image)
