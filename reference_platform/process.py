"""The reference platform as a child process on 127.0.0.1, and HTTP(S) calls to it.

Host-side helpers shared by tests/platform, tests/e2e and tools/simulation.py. CPython
standard library only: importing this module does not import the server."""

import json
import os
import re
import secrets
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".cache", "venv", "bin", "python")
START_TIMEOUT_S = 20
_LISTENING = re.compile(rb"reference platform listening on (https?)://127\.0\.0\.1:(\d+)")
_trusted = {}   # CA file -> ssl.SSLContext, for https calls


def platform_python():
    """The project venv's interpreter when there is one (it has the server's packages)."""
    return VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Reply:
    """An HTTP answer: status, headers (case-insensitive, as urllib gives them), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%s %d %r>" % (type(self).__name__, self.status, self.body[:300])


def trust_ca(ca_file):
    """https calls (http(), http_json()) from now on verify servers against this CA only."""
    _trusted.clear()
    _trusted[ca_file] = ssl.create_default_context(cafile=ca_file)


def http(method, url, body=None, headers=None, timeout=10):
    """One request; error statuses are answers too, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    ctx = next(iter(_trusted.values()), None) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def http_json(method, url, json_body=None, token=None, data=None, content_type=None,
              headers=None, timeout=10):
    """http() with a JSON body (or raw `data`), an explicit Content-Type and a bearer token."""
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
    return http(method, url, body, hdrs, timeout)


def read_first_line(proc, timeout):
    """proc's first stdout line, or b"" when none came within timeout seconds."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout=timeout)
    sel.close()
    return proc.stdout.readline() if ready else b""


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """sig, then SIGKILL when proc has not exited within timeout seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class PlatformProcess:
    """python -m reference_platform on 127.0.0.1.

    Files live in `workdir` (platform.sqlite, platform.log) unless db/log_path say otherwise.
    With port 0 the server picks a free port, read from its "listening on" line; the port is
    then kept, so stop() and start() (or restart()) come back on the same port and database
    and a device's service URLs and tokens outlive the outage."""

    def __init__(self, workdir, operator_token, port=0, extra_args=(), seed=None, db=None,
                 log_path=None, python=None, new_session=False, tls=None):
        self.workdir = str(workdir)
        self.db = db or os.path.join(self.workdir, "platform.sqlite")
        self.log_path = log_path or os.path.join(self.workdir, "platform.log")
        self.token = operator_token
        self.port = port
        self.url = "http://127.0.0.1:%d" % port if port else None
        self.extra_args = list(extra_args)
        self.seed = seed
        self.python = python
        self.new_session = new_session  # own process group: a terminal's Ctrl-C does not reach it
        self.tls = tls      # (cert file, key file): serve https
        self.scheme = "https" if tls else "http"
        if port:
            self.url = "%s://127.0.0.1:%d" % (self.scheme, port)
        self.proc = None

    def command(self):
        args = [self.python or platform_python(), "-m", "reference_platform",
                "--host", "127.0.0.1", "--port", str(self.port), "--db", self.db,
                "--operator-token", self.token, "--log-level", "warning"] + self.extra_args
        if self.seed:
            args += ["--seed", self.seed]
        if self.tls:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        return args

    def start(self, extra_args=None):
        """Start and wait for the server to listen; extra_args, when given, replace the stored
        ones. RuntimeError with the log when it does not come up."""
        if extra_args is not None:
            self.extra_args = list(extra_args)
        line = b""
        with open(self.log_path, "ab") as log:
            for _ in range(50):  # a fixed port may linger a moment after a stop
                self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.PIPE,
                                             stderr=log, start_new_session=self.new_session)
                line = read_first_line(self.proc, START_TIMEOUT_S)
                m = _LISTENING.match(line)
                if m and (not self.port or int(m.group(2)) == self.port):
                    self.port = int(m.group(2))
                    self.url = "%s://127.0.0.1:%d" % (m.group(1).decode(), self.port)
                    return self
                self.stop()
                if b"cannot listen" not in self.read_log()[-300:].encode():
                    break
                time.sleep(0.2)
        raise RuntimeError("platform did not start: %r; log: %s" % (line,
                                                                      self.read_log()[-2000:]))

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc.stdout.close()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

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
        """An operator call: a JSON body, or raw data (application/octet-stream by default)."""
        if json_body is None and data is not None:
            content_type = content_type or "application/octet-stream"
        else:
            content_type = None
        return http_json(method, self.url + path, json_body, self.token, data=data,
                         content_type=content_type)

    device_class = None   # what provision() returns (OperatorDevice unless a harness says)

    def create_tenant(self, name=None, prefix="t"):
        """A new uniquely named tenant, or `name` (an existing one is fine)."""
        return self._create("/v1/operator/tenants", name, prefix)

    def create_namespace(self, tenant, name=None, prefix="ns"):
        """A namespace of `tenant`: new and uniquely named, or `name` (existing is fine)."""
        return self._create("/v1/operator/tenants/%s/namespaces" % tenant, name, prefix)

    def _create(self, path, name, prefix):
        fresh = name is None
        name = name or "%s-%s" % (prefix, secrets.token_hex(4))
        r = self.op("POST", path, json_body={"name": name})
        assert r.status == 201 or (r.status == 409 and not fresh), r
        return name

    def provision(self, config=None, tenant=None, namespace="lab", device_id=None, key=None,
                  desired=None):
        """A device with its tenant and namespace, made when missing (names given may exist
        already, generated ones must be new), then its config and desired state when given."""
        tenant = self.create_tenant(tenant)
        self.create_namespace(tenant, namespace)
        dev = (self.device_class or OperatorDevice)(
            self, tenant, namespace, device_id or "pico-" + secrets.token_hex(4),
            key or secrets.token_hex(16))
        r = self.op("POST", dev.op_path()[:-(len(dev.device_id) + 1)],
                    json_body={"device_id": dev.device_id, "device_key": dev.key})
        assert r.status == 201 or (r.status == 409 and device_id is not None), r
        if config is not None:
            r = dev.push_config(config)
            assert r.status == 200, r
        if desired is not None:
            r = dev.set_desired(desired)
            assert r.status == 200, r
        return dev

    def add_release_key(self, tenant, public_key_hex):
        """Register a tenant's release public key (uploads must verify with one of them)."""
        r = self.op("POST", "/v1/operator/tenants/%s/release-keys" % tenant,
                    json_body={"public_key_hex": public_key_hex})
        assert r.status in (200, 201), r
        return r.json()


class OperatorDevice:
    """A device as the operator API addresses it on a PlatformProcess."""

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

    def get(self):
        r = self.platform.op("GET", self.op_path())
        assert r.status == 200, r
        return r.json()

    def push_config(self, config, force=False):
        return self.platform.op("PUT", self.op_path("config") + ("?force=1" if force else ""),
                                json_body=config)

    def set_desired(self, relays, force=False):
        return self.platform.op("PUT", self.op_path("desired-state") +
                                ("?force=1" if force else ""), json_body={"relays": relays})

    def command(self, command):
        return self.platform.op("POST", self.op_path("commands"), json_body={"command": command})

    def heartbeats(self, limit=200):
        r = self.platform.op("GET", self.op_path("heartbeats") + "?limit=%d" % limit)
        assert r.status == 200, r
        return r.json()["heartbeats"]

    def mint_api_token(self, role="operator", **body):
        """A token for the device's own REST API, minted by the platform: its JSON answer
        (token, jti, expires_at, sub)."""
        r = self.platform.op("POST", self.op_path("api-tokens"), json_body=dict(body, role=role))
        assert r.status == 201, r
        return r.json()

    def alarms(self):
        """The platform's merged alarms of this device: {dedup_key: alarm}."""
        r = self.platform.op("GET", self.op_path("alarms") + "?limit=500")
        assert r.status == 200, r
        return {a["dedup_key"]: a for a in r.json()["alarms"]}
