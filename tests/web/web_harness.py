"""Helpers for the web page and event stream tests: the device API with its event stream on the
MicroPython unix build (tests/web/device_events_server.py) on 127.0.0.1, an SSE client over a
raw socket, and HS256 tokens made here. Every wait is bounded; figures measured on the way are
collected in FIGURES and printed at the end of the run (conftest.py)."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
from reference_platform.process import free_port, stop_process  # noqa: E402,F401
from reference_platform.security import sign_hs256  # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".cache", "build", "unix", "micropython")
MICRODOT = os.path.join(ROOT, ".cache", "microdot", "2.7.0")
LAUNCHER = os.path.join(HERE, "device_events_server.py")
MICROPYPATH = ":".join([os.path.join(ROOT, "python"), MICRODOT, ".frozen"])

KEY = b"web-events-test-key-0123456789abcdef"
ISSUER = "https://platform.test"
AUDIENCE = "device-web-1"
TENANT = "acme"
NAMESPACE = "plant-a"

DEVICE = {
    "relays": {"r1": {"pin": 2}, "r2": {"pin": 3, "active_low": True}, "fwd": {"pin": 5},
               "rev": {"pin": 6}, "bell": {"pin": 7, "pulse_ms": 50}},
    "interlocks": [{"relays": ["fwd", "rev"], "dead_ms": 50}],
    "inputs": {"button": {"pin": 10, "debounce_ms": 0}},
    "api": {"roles": {"switcher": {"permissions": ["relays:write"]}}},
    "rate_limits": {"default": {"requests": 5000, "window_s": 1}},
}

FIGURES = {}


def wait_for(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def token(sub="alice", role="operator", key=KEY, **over):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tenant": TENANT, "namespace": NAMESPACE,
         "iat": now, "exp": now + 7200, "role": role}
    c.update(over)
    return sign_hs256(key, c)


class Answer:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.json = None
        if raw and headers.get("Content-Type", "").startswith("application/json"):
            self.json = json.loads(raw)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:200])


def call(port, method, path, body=None, tok=None, timeout=10):
    h = {}
    if tok is not None:
        h["Authorization"] = "Bearer " + tok
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return Answer(r.status, dict(r.getheaders()), r.read())
    finally:
        c.close()


class EventsServer:
    def __init__(self, tmp, **settings):
        if not os.path.exists(MICROPYTHON):
            pytest.fail("no MicroPython unix build at %s: run `make unix`" % MICROPYTHON)
        self.dir = str(tmp)
        self.port = free_port()
        self.control_port = free_port()
        self.settings = {"port": self.port, "control_port": self.control_port,
                         "data_dir": os.path.join(self.dir, "data"), "device": DEVICE,
                         "jwt": {"key": KEY.decode(), "issuer": ISSUER, "audience": AUDIENCE},
                         "tenant": TENANT, "namespace": NAMESPACE}
        self.settings.update(settings)
        self.proc = None

    def start(self):
        path = os.path.join(self.dir, "settings.json")
        with open(path, "w") as f:
            json.dump(self.settings, f)
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen([MICROPYTHON, LAUNCHER, path], cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, MICROPYPATH=MICROPYPATH))
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, "the server exited: %s" % self.output()
            try:
                self.bus()
                return self
            except OSError:
                assert time.monotonic() < deadline, "the server did not start: %s" % self.output()
                time.sleep(0.05)

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.log.close()

    def output(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def request(self, method, path, body=None, tok=None):
        return call(self.port, method, path, body, tok)

    def control(self, method, path, body=None):
        a = call(self.control_port, method, path, body, timeout=5)
        assert a.status == 200, a
        return a.json

    def bus(self):
        return self.control("GET", "/bus")

    def board(self):
        return self.control("GET", "/board")

    def stream(self, tok, **kw):
        return SseClient(self.port, tok, **kw)


class SseClient:
    """GET /events over a raw socket; a thread parses events into `events` as
    (receive time, name, id, data). stalled=True: connects with a small receive buffer and
    never reads, as a client that hangs."""

    def __init__(self, port, tok, stalled=False, rcvbuf=None):
        self.sock = socket.socket()
        if stalled or rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf or 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        req = "GET /events HTTP/1.1\r\nHost: device\r\n"
        if tok is not None:
            req += "Authorization: Bearer %s\r\n" % tok
        self.sock.sendall((req + "\r\n").encode())
        self.events = []
        self.status = None
        self.headers = {}
        self.body = b""
        self.closed = False
        self.error = None
        self._buf = b""
        self._thread = None
        if not stalled:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self):
        try:
            self.sock.settimeout(60)
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                now = time.time()
                self._feed(data, now)
        except OSError as e:
            self.error = e
        self.closed = True

    def _feed(self, data, now):
        self._buf += data
        if self.status is None:
            if b"\r\n\r\n" not in self._buf:
                return
            head, self._buf = self._buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            self.status = int(lines[0].split()[1])
            self.headers = dict(l.split(": ", 1) for l in lines[1:])
        if self.status != 200:
            self.body += self._buf
            self._buf = b""
            return
        while b"\n\n" in self._buf:
            block, self._buf = self._buf.split(b"\n\n", 1)
            name, eid, data = "message", None, ""
            for line in block.decode().split("\n"):
                k, _, v = line.partition(": ")
                if k == "event":
                    name = v
                elif k == "id":
                    eid = int(v)
                elif k == "data":
                    data += v
            self.events.append((now, name, eid, json.loads(data)))

    def wait_status(self, timeout=10):
        wait_for(lambda: self.status is not None or self.closed, timeout, "the stream's answer")
        return self.status

    def named(self, name):
        return [e[3] for e in self.events if e[1] == name]

    def wait_events(self, n, name=None, timeout=15):
        def enough():
            got = [e for e in self.events if name is None or e[1] == name]
            return got if len(got) >= n else None
        return wait_for(enough, timeout, "%d %s events (have %d)" % (
            n, name or "", len(self.events)))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
