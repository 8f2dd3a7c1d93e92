#!/usr/bin/env python3
"""Seeded fuzzer of the live device REST API (CPython, stdlib only).

Sends COUNT requests to a running device (the MicroPython unix build serving
tests/rest/device_api_server.py, or python/main.py with a control port) on 127.0.0.1, one
connection each, from random 127.x.y.z source addresses: raw bytes, broken HTTP, oversized
heads and bodies, random methods, paths, tokens (valid ones too, so some POSTs succeed) and
bodies, and a few stalled connections. After every request it reads the simulated board
through the control port; after every batch it asks /health. It fails on:

- the process gone, or /health not answering 200 after a batch;
- a 5xx other than the documented 503s (busy, not_configured, time_not_synced, not_ready);
- an answer that is not HTTP, or whose status line says N/A, or whose body is not UTF-8;
- a relay whose pin or switch count changed without a 2xx answer to a POST that named it
  (its pulse and interlock dead time allowed for);
- the heap (gc.collect() then mem_free, via the control port) lower after the run than before
  by more than a small bound.

    python3 tools/fuzz_device_api.py --port 8081 --control-port 8082 --key KEY \\
        --issuer ISS --audience AUD --tenant T --namespace N --relays r1:2,r2:3 --seed 1 --count 10000

`run(...)` is the same from Python (tests/rest/test_device_api_fuzz.py; `make fuzz`)."""

import argparse
import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference_platform.security import sign_hs256  # noqa: E402  (stdlib only)

DOCUMENTED_503 = ("busy", "not_configured", "time_not_synced", "not_ready")
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
           "get", "P0ST", "", "GET GET")
PATHS = ("/health", "/ready", "/metrics", "/gpio", "/config", "/config/reload", "/ota/check",
         "/", "/gpio/", "//gpio", "/gpio/../config", "/gpio?x=1", "/gpio/r1?state=HIGH",
         "/gpio/%72%31", "/gpio/%ff", "/gpio/%", "/gpio/r1/extra", "/GPIO/r1", "*",
         "http://127.0.0.1/gpio", "/gpio/\u00e9", "/gpio/" + "a" * 300)
STATES = ("HIGH", "LOW", "TOGGLE")
SLACK_S = 1.5      # after a 2xx switch: the relay task, deferred turn-ons, the board read
STALLED_PER_BATCH = 2


# ---- tokens ----

def make_token(key, claims, header=None):
    return sign_hs256(key, claims, header)


class Tokens:
    def __init__(self, rnd, key, issuer, audience, tenant, namespace, relays):
        now = int(time.time())
        base = {"iss": issuer, "aud": audience, "tenant": tenant, "namespace": namespace,
                "iat": now, "exp": now + 7200}

        def tok(sub_, role, key_=key, **over):
            c = dict(base, sub=sub_, role=role)
            for k, v in over.items():
                if v is None:
                    c.pop(k, None)
                else:
                    c[k] = v
            return make_token(key_, c)

        self.rnd = rnd
        self.valid = [tok("fz-op", "operator"), tok("fz-admin", "admin"),
                      tok("fz-view", "viewer"), tok("fz-scoped", "operator", relays=relays[:1])]
        self.invalid = [
            tok("fz-op", "operator", key_=b"wrong-key-0123456789abcdef0123456789"),
            tok("fz-old", "operator", exp=now - 3600), tok("fz-nsub", "operator", sub=None),
            tok("fz-t", "operator", tenant="other"), tok("fz-r", "god"),
            make_token(key, dict(base, sub="x"), {"alg": "none"}),
            "garbage", "a.b.c", "", "." * 50, "x" * 5000, "\u00e9\u00e9.\u00e9.\u00e9",
        ]

    def header(self):
        r = self.rnd.random()
        if r < 0.15:
            return None
        if r < 0.6:
            return "Bearer " + self.rnd.choice(self.valid)
        if r < 0.9:
            return "Bearer " + self.rnd.choice(self.invalid)
        return self.rnd.choice(("Basic dXNlcjpwYXNz", "Bearer", "bearer " + self.valid[0],
                                "Bearer  " + self.valid[0], self.valid[0]))


# ---- requests ----

def http_request(method, path, headers, body=b"", version="HTTP/1.0"):
    head = "%s %s %s\r\n" % (method, path, version)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


class Generator:
    def __init__(self, rnd, tokens, relays):
        self.rnd = rnd
        self.tokens = tokens
        self.relays = relays

    def value(self, depth=0):
        r = self.rnd
        k = r.randrange(9 if depth < 3 else 6)
        return [lambda: r.choice(STATES), lambda: r.randint(-2 ** 65, 2 ** 65),
                lambda: r.choice((0, 1, 50, 300, -1, 86400001)), lambda: None,
                lambda: r.random() * 1000, lambda: r.choice((True, False, "", "\u00e9\ud800"[:1])),
                lambda: [self.value(depth + 1) for _ in range(r.randrange(3))],
                lambda: {r.choice(("state", "pulse_ms", "relays", "x")): self.value(depth + 1)},
                lambda: {n: r.choice(("HIGH", "LOW", "TOGGLE", 1)) for n in
                         r.sample(self.relays + ["nope"], r.randrange(1, 3))}][k]()

    def body(self, path):
        r = self.rnd
        k = r.randrange(10)
        if k < 4 and path.startswith("/gpio/"):
            doc = {"state": r.choice(STATES)}
            if r.random() < 0.3:
                doc = {"state": "HIGH", "pulse_ms": r.choice((50, 200, 400))}
            return json.dumps(doc).encode()
        if k < 4:
            return json.dumps({"relays": {n: r.choice(("HIGH", "LOW")) for n in
                                          r.sample(self.relays, r.randrange(1, 3))}}).encode()
        if k == 4:
            return json.dumps({r.choice(("state", "pulse_ms", "relays", "extra")): self.value()
                               for _ in range(r.randrange(1, 4))}).encode()
        if k == 5:  # a member twice, escapes, surrogates
            return r.choice((b'{"state":"LOW","state":"HIGH"}', b'{"st\\u0061te":"HIGH"}',
                             b'{"\\ud800":1}', b'{"state":"\\u0000"}', b'{"state":"HIGH"',
                             b'{"relays":{"r1":"HIGH","r1":"LOW"}}'))
        if k == 6:
            return bytes(r.randrange(256) for _ in range(r.randrange(64)))
        if k == 7:
            return b"[" * r.randrange(1, 40) + b"]" * r.randrange(40)
        if k == 8:
            return b""
        return json.dumps(self.value()).encode()

    def api(self):
        # a request of the API's shape with random parts
        r = self.rnd
        method = r.choice(("GET", "POST", "POST", "POST")) if r.random() < 0.8 else \
            r.choice(METHODS)
        if r.random() < 0.6:
            path = "/gpio/" + r.choice(self.relays) if r.random() < 0.7 else "/gpio"
        else:
            path = r.choice(PATHS)
        headers = []
        auth = self.tokens.header()
        if auth is not None:
            headers.append(("Authorization", auth))
        body = b""
        if method == "POST" or r.random() < 0.1:
            body = self.body(path)
            ctype = "application/json" if r.random() < 0.9 else r.choice(
                ("text/plain", "application/json; charset=utf-8", "APPLICATION/JSON", ""))
            headers.append(("Content-Type", ctype))
            headers.append(("Content-Length", str(len(body))))
        return http_request(method, path, headers, body)

    def broken(self):
        # a valid request, then broken: bytes flipped, lines cut, lengths that lie
        r = self.rnd
        data = bytearray(self.api())
        k = r.randrange(8)
        if k == 0 and data:
            for _ in range(r.randrange(1, 6)):
                data[r.randrange(len(data))] = r.randrange(256)
        elif k == 1:
            data = data.replace(b"\r\n", r.choice((b"\n", b"\r", b"", b"\r\r\n")))
        elif k == 2:
            data = data[:r.randrange(len(data) + 1)]
        elif k == 3:
            cl = r.choice(("-1", "+5", " 5", "0x10", "1e3", "99999999999999999999", "5, 5", "",
                           "\u0661"))
            data = bytearray(http_request("POST", "/gpio/r1", [("Content-Length", cl)],
                                          b'{"state": "HIGH"}'))
        elif k == 4:
            data = bytearray(http_request(r.choice(METHODS), r.choice(PATHS), [],
                                          version=r.choice(("HTTP/1.1", "HTTP/9", "HTTP", "",
                                                            "HTTP/1.0 x"))))
        elif k == 5:
            data = bytearray(b"GET /gpio HTTP/1.0\r\n" + r.choice(
                (b"NoColon\r\n", b": empty-name\r\n", b"X:\xff\xfe\r\n",
                 b"Transfer-Encoding: chunked\r\n", b" folded: line\r\n")) + b"\r\n")
        elif k == 6:
            data = bytearray(http_request("POST", "/gpio/r1", [("Content-Length", "17"),
                                                               ("Content-Length", "3")],
                                          b'{"state": "HIGH"}'))
        else:
            data = bytearray(b"\r\n" * r.randrange(1, 5)) + data
        return bytes(data)

    def oversized_head(self):
        r = self.rnd
        if r.random() < 0.5:
            return http_request("GET", "/gpio", [("X-Big", "a" * r.randrange(4000, 16000))])
        n = r.randrange(30, 300)
        return http_request("GET", "/gpio", [("X-%d" % i, "v" * r.randrange(1, 60))
                                             for i in range(n)])

    def oversized_body(self):
        r = self.rnd
        n = r.choice((1025, 2000, 16384, 16385, 30000))
        body = b'{"state": "HIGH", "pad": "' + b"x" * n + b'"}'
        declared = len(body) if r.random() < 0.7 else r.choice((10, 1024, 10 ** 9))
        return http_request("POST", "/gpio/" + r.choice(self.relays),
                            [("Authorization", "Bearer " + self.tokens.valid[0]),
                             ("Content-Type", "application/json"),
                             ("Content-Length", str(declared))], body)

    def raw(self):
        r = self.rnd
        return bytes(r.randrange(256) for _ in range(r.randrange(1, 2000)))


CATEGORIES = (("api", 50), ("broken_http", 20), ("raw_bytes", 10), ("oversized_head", 10),
              ("oversized_body", 10))


# ---- the run ----

class Failure(AssertionError):
    pass


class Report:
    def __init__(self):
        self.sent = 0
        self.categories = {}
        self.statuses = {}
        self.errors = {}
        self.switches_2xx = 0
        self.relay_changes = 0
        self.stalled = 0
        self.health_checks = 0
        self.heap_before = self.heap_after = None
        self.seconds = 0.0
        self.faults = 0            # connections the device ended on an unexpected error
        self.closed_samples = []   # requests answered by a close, no status line

    def count(self, cat, status):
        c = self.categories.setdefault(cat, {})
        c[status] = c.get(status, 0) + 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def lines(self):
        out = ["%d requests in %.1f s, %d stalled connections, %d /health checks" % (
            self.sent, self.seconds, self.stalled, self.health_checks)]
        for cat in sorted(self.categories):
            c = self.categories[cat]
            out.append("  %-15s %5d: %s" % (cat, sum(c.values()), ", ".join(
                "%s %d" % (k, c[k]) for k in sorted(c, key=str))))
        out.append("statuses: " + ", ".join("%s %d" % (k, self.statuses[k])
                                            for k in sorted(self.statuses, key=str)))
        out.append("error codes: " + ", ".join("%s %d" % (k, self.errors[k])
                                               for k in sorted(self.errors)))
        out.append("2xx switches %d, relay changes seen %d, uncommanded 0" % (
            self.switches_2xx, self.relay_changes))
        out.append("heap free before %d, after %d (delta %d); connection faults %d" % (
            self.heap_before, self.heap_after, self.heap_before - self.heap_after, self.faults))
        return out


class Device:
    def __init__(self, port, control_port, relays, pins, interlocks, proc=None):
        self.port = port
        self.control_port = control_port
        self.relays = relays
        self.pins = pins              # relay -> pin
        self.groups = {n: {n} for n in relays}
        for g in interlocks:
            for n in g:
                self.groups[n] = set(g)
        self.proc = proc

    def control(self, method, path, timeout=10):
        with socket.create_connection(("127.0.0.1", self.control_port), timeout) as s:
            s.sendall(http_request(method, path, [("Content-Length", "0")]))
            data = _read_all(s, timeout)
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            raise Failure("control port %s %s: %r" % (method, path, data[:200]))
        return json.loads(body)

    def board(self):
        b = self.control("GET", "/board")
        names = sorted(b["states"])
        sw = dict(zip(names, b["switches"]))
        return {n: (b["states"][n], b["pins"].get(str(self.pins[n])), sw.get(n))
                for n in self.relays}

    def alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise Failure("the device process exited with %s" % self.proc.returncode)


def _read_all(s, timeout):
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        raise Failure("no answer within %d s (connection kept open)" % timeout)
    return out


def send(port, data, source, timeout=15):
    # -> the answer's bytes (b"" if closed without one)
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return _read_all(s, timeout)


MAX_DECLARED = 16384   # a larger Content-Length is refused unread (413), as documented


def surplus(data):
    # True when the request carries bytes the device answers without reading (past its head
    # and declared body, or a body declared over MAX_DECLARED): closing with them unread may
    # reset the answer's tail away
    head, sep, body = data.partition(b"\r\n\r\n")
    declared = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length" and v.strip().isdigit():
            declared = int(v.strip())
    return bool(sep) and (len(body) > declared or declared > MAX_DECLARED)


def parse(out, head_request=False, may_be_cut=False):
    # -> (status, json body or None); raises Failure when the answer is not well formed.
    # A HEAD answer has its headers and no body; may_be_cut: see surplus().
    if not out:
        return "closed", None
    if not out.startswith(b"HTTP/1.0 "):
        raise Failure("not an HTTP answer: %r" % out[:200])
    head, sep, body = out.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    status = int(parts[1])
    if len(parts) < 3 or parts[2] in (b"", b"N/A"):
        raise Failure("status line without its reason phrase: %r" % line)
    try:
        head.decode("utf-8")
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Failure("answer not UTF-8: %r" % out[:300])
    doc = None
    if b"application/json" in head and text:
        try:
            doc = json.loads(text)
        except ValueError:
            raise Failure("JSON answer that does not parse: %r" % out[:300])
    if may_be_cut:
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.lower() == b"content-length" and len(body) < int(v):
                return status, {"error": "(cut)", "message": ""} if status >= 400 else None
    if head_request and not body:
        return status, {"error": "(HEAD)", "message": ""} if status >= 400 else None
    if status >= 400 and (not isinstance(doc, dict) or "error" not in doc or
                          "message" not in doc):
        raise Failure("error answer without the error shape: %r" % out[:300])
    return status, doc


def _named(doc):
    # the relays a 2xx switch answer names
    if not isinstance(doc, dict):
        return []
    if "relays" in doc and isinstance(doc["relays"], list):
        return [d.get("name") for d in doc["relays"] if isinstance(d, dict)]
    return [doc.get("name")]


def _pulse_of(data):
    body = data.partition(b"\r\n\r\n")[2]
    try:
        p = json.loads(body).get("pulse_ms", 0)
        return p / 1000.0 if isinstance(p, int) and 0 < p <= 86400000 else 0
    except (ValueError, AttributeError):
        return 0


def run(dev, seed, count, batch=100, log=print):
    rnd = random.Random(seed)
    rep = Report()
    gen = Generator(rnd, dev.tokens, dev.relays)
    cats, weights = zip(*CATEGORIES)
    armed = {n: 0.0 for n in dev.relays}   # relay -> monotonic time until which it may move

    def settle_heap():
        # the audit batch and the relay state write are deferred (<= 1 s), and a connection
        # closed by its client ends at the server's next round: the best of a few readings
        time.sleep(1.2)
        best = 0
        for _ in range(4):
            best = max(best, dev.control("GET", "/api")["heap_free"])
            time.sleep(0.25)
        return best

    # warm up: tables (rate-limit keys, token cache, metric series) fill to their bounds
    for i in range(min(1000, count)):
        cat = rnd.choices(cats, weights)[0]
        send(dev.port, getattr(gen, {"api": "api", "broken_http": "broken", "raw_bytes": "raw",
                                     "oversized_head": "oversized_head",
                                     "oversized_body": "oversized_body"}[cat])(),
             "127.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)))
    rep.heap_before = settle_heap()
    board = dev.board()
    t_start = time.monotonic()
    make = {"api": gen.api, "broken_http": gen.broken, "raw_bytes": gen.raw,
            "oversized_head": gen.oversized_head, "oversized_body": gen.oversized_body}
    stalled = []
    for i in range(count):
        if i % batch == 0 and len(stalled) < STALLED_PER_BATCH:
            try:  # a connection that sends half a head and waits: the head deadline ends it
                s = socket.create_connection(("127.0.0.1", dev.port), 5,
                                             ("127.200.%d.%d" % (rnd.randrange(256),
                                                                 rnd.randrange(1, 255)), 0))
                s.sendall(b"POST /gpio/r1 HTTP/1.0\r\nContent-Le")
                stalled.append(s)
                rep.stalled += 1
            except OSError:
                pass
        cat = rnd.choices(cats, weights)[0]
        data = make[cat]()
        source = "127.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
        try:
            out = send(dev.port, data, source)
        except ConnectionRefusedError:
            dev.alive()
            raise Failure("connection refused: the device stopped listening")
        try:
            status, doc = parse(out, data.lstrip(b"\r\n").upper().startswith(b"HEAD "),
                                surplus(data))
        except Failure as e:
            raise Failure("request %d (%s) %r: %s" % (i, cat, data[:200], e))
        rep.sent += 1
        rep.count(cat, status)
        if status == "closed" and len(rep.closed_samples) < 5:
            rep.closed_samples.append(data[:120])
        if isinstance(doc, dict) and status != "closed" and status >= 400:
            rep.errors[doc["error"]] = rep.errors.get(doc["error"], 0) + 1
        if status != "closed" and status >= 500 and not (
                status == 503 and doc.get("error") in DOCUMENTED_503):
            raise Failure("request %d (%s) answered %d: %r -> %r" % (i, cat, status, data[:300],
                                                                       out[:300]))
        now = time.monotonic()
        if status in (200, 202) and data.upper().startswith(b"POST"):
            names = [n for n in _named(doc) if n in armed]
            if names:
                rep.switches_2xx += 1
            until = now + SLACK_S + _pulse_of(data)
            for n in names:
                for m in dev.groups[n]:
                    armed[m] = max(armed[m], until)
        after = dev.board()
        for n in dev.relays:
            if after[n] != board[n]:
                rep.relay_changes += 1
                if now > armed[n]:
                    raise Failure("relay %s moved without a 2xx switch naming it: %s -> %s "
                                  "(request %d, %s: %r -> %r)" % (n, board[n], after[n], i, cat,
                                                                  data[:200], out[:200]))
        board = after
        if (i + 1) % batch == 0 or i + 1 == count:
            dev.alive()
            for s in stalled:
                s.close()
            stalled = []
            h = send(dev.port, b"GET /health HTTP/1.0\r\n\r\n", "127.0.0.1")
            st, _ = parse(h)
            if st != 200:
                raise Failure("/health after batch %d: %r" % (i // batch, h[:200]))
            rep.health_checks += 1
    rep.seconds = time.monotonic() - t_start
    rep.heap_after = settle_heap()
    rep.faults = dev.control("GET", "/api").get("faults", 0)
    dev.alive()
    return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--key", required=True, help="the device's HS256 key (text)")
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--audience", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--relays", required=True, help="name:pin,... as configured")
    ap.add_argument("--interlock", action="append", default=[], help="a,b: an interlock group")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--heap-bound", type=int, default=4096)
    a = ap.parse_args()
    pins = dict((n, int(p)) for n, p in (x.split(":") for x in a.relays.split(",")))
    relays = sorted(pins)
    dev = Device(a.port, a.control_port, relays, pins, [g.split(",") for g in a.interlock])
    dev.tokens = Tokens(random.Random(a.seed), a.key.encode(), a.issuer, a.audience, a.tenant,
                        a.namespace, relays)
    rep = run(dev, a.seed, a.count)
    for line in rep.lines():
        print(line)
    if rep.heap_before - rep.heap_after > a.heap_bound:
        print("FAIL: heap lost %d bytes" % (rep.heap_before - rep.heap_after))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
