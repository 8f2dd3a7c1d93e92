# The device REST API on microdot: relay routes behind JWT, tenancy, RBAC and rate limits,
# liveness/readiness probes and /metrics. Every request passes the checks of
# docs/rest_api_security.md in that order; a refusal answers {"error", "message", "field"?}
# and never reaches a relay. MicroPython only (ticks_ms; microdot runs sync handlers inline).
#
#   app = rest_api.create_app(relays, validator, limiter, identity, ready, counters=...)
#   await app.start_server(host="0.0.0.0", port=80)
#   app.api.roles = rbac.roles_from_config(...)     # on config reload; also .limiter, .validator
import gc
import json
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from microdot import Microdot, Request, Response
from microdot.microdot import NoCaseDict

from iotlib import logger, rbac, strict_json
from iotlib.jwt_validator import MAX_TOKEN_BYTES, MESSAGES, TokenError, bearer_token, \
    check_tenancy, http_status
from iotlib.prometheus import CONTENT_TYPE, Registry, RequestMetrics
from iotlib.relay_gpio_manager import METRIC_INDEX

MAX_BODY = 1024             # a relay request is a few dozen bytes
MAX_DECLARED = 16 * 1024    # a larger Content-Length is refused by microdot, before routing, unread
MAX_PULSE_MS = 86400000     # one day
REQUEST_TIMEOUT_S = 10      # a client that stalls mid-request loses its connection
BAD_LOG_MS = 10000          # at most one line per this period about unparseable requests
DISCARD_MS = 250            # after a 400/431: how long what the client still sends is read

_REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
    413: "Content Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable",
}



def _static_503(message):
    # a whole answer made at import: sending it needs no heap
    body = b'{"error": "busy", "message": "%s"}' % message
    return (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 1\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


_BUSY = _static_503(b"too many connections, retry")   # over the connection caps, unread
_NO_HEAP = _static_503(b"out of memory, retry")   # the heap ran out before an answer began


class HttpLimits:
    # Connection and request-head limits (config "http"). The defaults fit a Pico W: at most
    # max_connections heads of max_head_bytes in RAM at once. A head must hold the longest
    # token (4 KB) so an over-long token gets its 401, not a 431.
    #   max_connections        connections served at once; when all are taken, the oldest
    #                          one still sending its head gives way, else the newcomer gets 503
    #   max_per_address        connections at once from one address; the next gets 503
    #   max_head_bytes         request line and headers together (431 beyond)
    #   max_headers            header lines (431 beyond)
    #   head_timeout_ms        the head must be complete within this time of the connection
    #   max_tls_sessions       TLS sessions at once (each holds ~21 KB of mbedtls buffers);
    #                          more TLS connections wait their turn (iotlib.tls_listener)
    #   max_tls_streams        TLS event streams (GET /events) at once, each in a session
    #                          that makes way for a waiting client; more get 503
    #                          too_many_streams
    KEYS = (("max_connections", 8, 1, 64), ("max_per_address", 4, 1, 64),
            ("max_head_bytes", 6144, 1024, 16384), ("max_headers", 32, 4, 100),
            ("head_timeout_ms", 3000, 100, 60000), ("max_tls_sessions", 1, 1, 16),
            ("max_tls_streams", 1, 0, 4))

    def __init__(self, **kw):
        for name, default, lo, hi in self.KEYS:
            v = kw.pop(name, default)
            if type(v) is not int or not lo <= v <= hi:
                raise ValueError("http.%s must be an int in %d..%d, got %r" % (name, lo, hi, v))
            setattr(self, name, v)
        if kw:
            raise ValueError("unknown http limit %r" % sorted(kw)[0])

    @classmethod
    def from_config(cls, http):
        # config "http" (may also hold token_checks_per_s, the limiter's)
        kw = {}
        for name, _, _, _ in cls.KEYS:
            if http and name in http:
                kw[name] = http[name]
        return cls(**kw)


class HeadTooLarge(ValueError):
    pass


def _echo(s, n=64):
    # text from the request put in an answer: printable ASCII only, so an answer never carries
    # bytes that are not valid UTF-8 (lone surrogates from \ud800 escapes) or control codes
    s = s[:n]
    for c in s:
        if not " " <= c <= "~":
            return "".join(c if " " <= c <= "~" else "?" for c in s)
    return s
STATES = ("HIGH", "LOW", "TOGGLE")
UNMATCHED = "unmatched"     # route label of requests no route took (bounded label values)

# counters() key -> metric; the controller's figures, mirrored at each scrape.
# (key, name, help, is_gauge)
FIGURES = (
    ("reconnects", "wifi_reconnects_total", "WiFi reconnections.", False),
    ("heartbeats_missed", "heartbeats_missed_total", "Heartbeats the platform did not answer.",
     False),
    ("alarms_buffered", "alarms_buffered", "Alarms waiting to be sent.", True),
    ("alarms_sent", "alarms_sent_total", "Alarms delivered to the platform.", False),
    ("alarms_dropped", "alarms_dropped_total", "Alarms dropped from a full buffer.", False),
    ("rest_tls_sessions", "api_tls_sessions_total", "TLS sessions the REST API began.", False),
    ("rest_tls_waited", "api_tls_waits_total",
     "TLS connections that waited for a session slot (http.max_tls_sessions).", False),
    ("rest_tls_turned_away", "api_tls_turned_away_total",
     "TLS connections closed unread: the line full or the address over its share.", False),
    ("rest_tls_timed_out", "api_tls_wait_timeouts_total",
     "TLS connections closed after waiting too long for a session slot.", False),
    ("rest_tls_heap_waits", "api_tls_heap_waits_total",
     "Tries of a TLS session to start again once heap was free for mbedtls.", False),
    ("rest_tls_streams_closed", "api_tls_streams_closed_total",
     "TLS event streams closed to make way for a waiting client.", False),
    ("rest_tls_failed", "api_tls_failed_total",
     "TLS sessions that could not start (no heap for mbedtls in time).", False),
)

_CORE_MESSAGES = {
    "interval": "the relay switched too recently (minimum switch interval)",
    "interlock": "the change would break an interlock group",
}


class Refusal(Exception):
    # a 4xx/5xx answer; raised by the checks and the handlers, answered by the route wrapper
    def __init__(self, status, error, message, field=None, retry=None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.retry = retry


def client_ip(addr):
    # lwIP gives ("1.2.3.4", port); the unix port a raw sockaddr (family, port, address)
    if isinstance(addr, tuple):
        return str(addr[0])
    if isinstance(addr, (bytes, bytearray)) and len(addr) >= 8 and addr[0] == 2 and addr[1] == 0:
        return "%d.%d.%d.%d" % (addr[4], addr[5], addr[6], addr[7])
    return "?"


def _level(on):
    return "HIGH" if on else "LOW"


def _relay_doc(d):
    # an entry of RelayGPIOManager.all(), in the API's terms (HIGH = on)
    d["state"] = _level(d["state"])
    return d


class DeviceApi:
    # The checks, handlers and metrics. Dependencies are injected so the controller wires its
    # managers in and the tests wire simulated ones:
    #   relays      RelayGPIOManager (has, all, states, metrics, names, set, toggle, pulse, write)
    #   validator   JWTValidator whose now() gives None until time is synced (-> 503), or None
    #               while no API key is configured (-> 503 not_configured)
    #   limiter     ApiRateLimiter
    #   identity()  -> (tenant, namespace) of the device, None while unregistered
    #   ready()     -> (ok, [missing parts])
    #   counters()  -> dict with the FIGURES keys present (the controller's counters())
    #   roles       rbac.roles_from_config(...) result
    #   get_config(), reload_config(), check_ota(): the admin actions, sync or async; a dict
    #               result answers 200 with it, None answers 202 (accepted, runs later)
    def __init__(self, relays, validator, limiter, identity, ready, counters=None, roles=None,
                 registry=None, get_config=None, reload_config=None, check_ota=None,
                 max_body=MAX_BODY):
        self.relays = relays
        self.validator = validator
        self.limiter = limiter
        self.identity = identity
        self.ready = ready
        self.counters = counters
        self.roles = roles or rbac.ROLES
        self.get_config = get_config
        self.reload_config = reload_config
        self.check_ota = check_ota
        self.max_body = max_body
        self.connection_errors = 0
        reg = registry or Registry()
        self.registry = reg
        self.requests = RequestMetrics(reg)
        self._refusals = reg.counter("api_refusals_total", "Requests refused, by error code.",
                                     ("error",))
        self._state = reg.gauge("relay_state", "Relay state, 1 = on.", ("relay",))
        self._switches = reg.counter("relay_switches_total", "Relay switches.", ("relay",))
        self._rejected = reg.counter("relay_rejections_total",
                                     "Switch requests the relay core refused, by reason.",
                                     ("reason",))
        self._deferred = reg.counter("relay_deferred_total",
                                     "Turn-ons delayed by an interlock change-over.")
        self._feeds = reg.counter("watchdog_feeds_total", "Hardware watchdog feeds.")
        self._heap = reg.gauge("heap_free_bytes", "Free heap after a collection.")
        self._uptime = reg.gauge("uptime_seconds", "Time since the application started.")
        self._figures = {}
        self._seen = {}         # last value of each mirrored total, to export only growth
        self._labels = None
        self._list_cache = None   # (relay version, GET /gpio JSON for an unscoped token)
        self._up_ms = 0   # the app is built as the application starts
        self._up_last = time.ticks_ms()
        reg.on_collect(self._collect)

    # ---- answers ----

    def refuse(self, r):
        self._refusals.inc((r.error,))
        body = {"error": r.error, "message": r.message}
        if r.field is not None:
            body["field"] = r.field
        headers = None
        if r.retry is not None:
            headers = {"Retry-After": str(r.retry)}
        elif r.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return Response(body, r.status, headers, _REASONS.get(r.status))

    def tick(self):
        # uptime from ms ticks summed at each request: immune to clock steps from time sync
        now = time.ticks_ms()
        self._up_ms += time.ticks_diff(now, self._up_last)
        self._up_last = now

    # ---- steps 1 to 5 ----

    def admit(self, req, read, action, relay=None):
        # -> the token's claims (None for the probes); raises Refusal
        ok, retry = self.limiter.check_address(req.g.ip, time.ticks_ms(), read=read)
        if not ok:
            raise Refusal(429, "rate_limited", "too many requests from this address", None, retry)
        if action is None:
            return None
        if self.validator is None:
            raise Refusal(503, "not_configured", "the device config has no API key yet (api.jwt)")
        try:
            tok = bearer_token(req.headers.get("Authorization"))
            v = self.validator
            if not v.is_cached(tok):
                # a token not seen yet costs an HMAC: a device-wide budget, whatever the source
                ok, retry = self.limiter.check_verification(time.ticks_ms())
                if not ok:
                    raise Refusal(503, "busy", "too many token checks, retry later", None,
                                  retry)
            claims = v.validate(tok)
            tenant, namespace = self.identity()
            check_tenancy(claims, tenant, namespace)
        except TokenError as e:
            raise Refusal(http_status(e.reason), e.reason, MESSAGES[e.reason], e.detail)
        role = claims.get("role")
        ok, retry = self.limiter.check_subject(claims["sub"], time.ticks_ms(), read=read,
                                               role=role if type(role) is str else None)
        if not ok:
            raise Refusal(429, "rate_limited", "too many requests for this token", None, retry)
        why = rbac.denial(claims, action, relay, self.roles)
        if why == "forbidden":
            raise Refusal(403, why, "the token's roles do not allow this")
        if why is not None:
            raise Refusal(403, why, "the token may not use this relay", "relay")
        return claims

    # ---- step 6 ----

    def body(self, req, allowed, required=True):
        # the JSON object of the body; {} for an optional body that is absent
        n = req.content_length
        if n < 0:
            raise Refusal(400, "bad_request", "Content-Length must not be negative")
        if n > self.max_body:
            raise Refusal(413, "body_too_large", "the body is limited to %d bytes" % self.max_body)
        if req.headers.get("Transfer-Encoding") is not None:  # `in` walks the keys
            raise Refusal(411, "length_required", "send the body with a Content-Length")
        if not n and not required:
            return {}
        ctype = req.content_type or ""
        if ctype.split(";")[0].lstrip().rstrip().lower() != "application/json":
            raise Refusal(415, "unsupported_media_type", "the body must be application/json")
        if not n:
            raise Refusal(400, "bad_json", "the body is empty")
        try:
            text = req.body.decode()
            strict_json.check(text, 4)  # json.loads alone takes truncated and sloppy JSON
            doc = json.loads(text)
        except strict_json.DuplicateKey as e:  # which one would win differs between parsers
            raise Refusal(400, "bad_json", "a member name appears twice in one object",
                          _echo(e.key) or "?")
        except Exception:  # ValueError or UnicodeError, by port
            raise Refusal(400, "bad_json", "the body is not valid JSON")
        if type(doc) is not dict:
            raise Refusal(400, "bad_json", "the body must be a JSON object")
        for k in sorted(doc):
            if k not in allowed:
                raise Refusal(400, "unknown_field", "unknown field", _echo(k) or "?")
        return doc

    def known(self, relay):
        if not self.relays.has(relay):
            raise Refusal(404, "unknown_relay", "no relay of that name", "relay")

    def relay_doc(self, name):
        d = self.relays.doc(name)
        if d is not None:
            return _relay_doc(d)

    # ---- handlers: (req, claims, **url args) -> response ----

    def health(self, req, claims):
        return {"status": "ok", "uptime_s": self._up_ms // 1000}

    def readiness(self, req, claims):
        ok, missing = self.ready()
        if ok:
            return {"ready": True}
        r = Response({"error": "not_ready", "message": "not ready: " + ", ".join(missing),
                      "missing": missing}, 503)
        self._refusals.inc(("not_ready",))
        return r

    def metrics(self, req, claims):
        return Response(self.registry.render(), 200, {"Content-Type": CONTENT_TYPE})

    def list_relays(self, req, claims):
        if rbac.relay_scope(claims) is None:
            # every relay: the JSON is kept until a relay changes. The key holds the bank (a
            # new one on reconfigure), its state now (a core change the relay task has not
            # seen yet) and the manager's change count (every change it has seen)
            rel = self.relays
            bank = rel.bank
            key = (bank, bank.state(), rel.changes)
            c = self._list_cache
            if c is None or c[0] != key:
                body = json.dumps({"relays": [_relay_doc(d) for d in rel.all()]}).encode()
                c = self._list_cache = (key, body)
            return Response(c[1], 200, {"Content-Type": "application/json; charset=UTF-8"})
        out = []
        for d in self.relays.all():
            if rbac.denial(claims, rbac.READ, d["name"], self.roles) is None:
                out.append(_relay_doc(d))
        return {"relays": out}

    def get_relay(self, req, claims, relay):
        self.known(relay)
        return self.relay_doc(relay)

    def switch_relay(self, req, claims, relay):
        self.known(relay)
        doc = self.body(req, ("state", "pulse_ms"))
        state = doc.get("state")
        if "state" not in doc:
            raise Refusal(400, "missing_field", "state is required", "state")
        if type(state) is not str or state not in STATES:
            raise Refusal(400, "invalid_value", "state must be HIGH, LOW or TOGGLE", "state")
        pulse = doc.get("pulse_ms")
        if "pulse_ms" in doc:
            if type(pulse) is not int or not 1 <= pulse <= MAX_PULSE_MS:
                raise Refusal(400, "invalid_value", "pulse_ms must be an integer in 1..%d"
                              % MAX_PULSE_MS, "pulse_ms")
            if state != "HIGH":
                raise Refusal(400, "invalid_value", "pulse_ms goes with state HIGH", "pulse_ms")
        ip, sub = req.g.ip, claims["sub"]
        # step 7: the relay core decides; it audits the change with subject and source
        if pulse:
            try:
                r = self.relays.pulse(relay, pulse, ip, sub)
            except ValueError as e:  # shorter than the relay's interval: refused before any change
                raise Refusal(400, "invalid_value", str(e), "pulse_ms")
        elif state == "TOGGLE":
            r = self.relays.toggle(relay, ip, sub)
        else:
            r = self.relays.set(relay, state == "HIGH", ip, sub)
        return self.outcome(r, relay)

    def switch_relays(self, req, claims):
        doc = self.body(req, ("relays",))
        want = doc.get("relays")
        if "relays" not in doc:
            raise Refusal(400, "missing_field", "relays is required", "relays")
        if type(want) is not dict or not want:
            raise Refusal(400, "invalid_value", "relays must name at least one relay", "relays")
        names = sorted(want)
        # the whole request is refused if one relay is out of the token's scope
        bad = rbac.forbidden_relays(claims, rbac.SWITCH, names, self.roles)
        if bad:
            raise Refusal(403, "relay_forbidden", "the token may not use this relay",
                          "relays." + _echo(bad[0]))
        for n in names:
            if not self.relays.has(n):
                raise Refusal(400, "unknown_relay", "no relay of that name", "relays." + _echo(n))
            v = want[n]
            if v != "HIGH" and v != "LOW":
                raise Refusal(400, "invalid_value", "a relay state must be HIGH or LOW",
                              "relays." + _echo(n))
            want[n] = v == "HIGH"
        r = self.relays.write(want, req.g.ip, claims["sub"])  # one register write, all or none
        if r != "ok":
            raise Refusal(409, r, _CORE_MESSAGES.get(r, r))
        return {"relays": [_relay_doc(d) for d in self.relays.all() if d["name"] in want]}

    def outcome(self, result, relay):
        if result == "ok":
            return self.relay_doc(relay)
        if result == "deferred":  # interlock change-over: on after the dead time
            d = self.relay_doc(relay)
            d["pending"] = "HIGH"
            return Response(d, 202)
        raise Refusal(409, result, _CORE_MESSAGES.get(result, result))

    async def _admin(self, req, fn):
        if fn is None:
            raise Refusal(501, "not_available", "this device does not offer that action")
        try:
            r = fn()
            if hasattr(r, "send"):  # a coroutine
                r = await r
        except Exception as e:
            # the text leaves the device: secrets masked as in the log, printable only
            raise Refusal(500, "action_failed", _echo(logger.mask("%s: %s" % (
                type(e).__name__, e)), 200))
        if r is None:
            return Response({"status": "accepted"}, 202)
        return r

    async def config(self, req, claims):
        return await self._admin(req, self.get_config)

    async def config_reload(self, req, claims):
        self.body(req, (), False)
        return await self._admin(req, self.reload_config)

    async def ota_check(self, req, claims):
        self.body(req, (), False)
        return await self._admin(req, self.check_ota)

    # ---- metrics ----

    def _follow(self, counter, labels, value):
        # a total kept elsewhere (the relay core restarts its counts with a new bank):
        # export only its growth, so the counter never goes down
        key = (counter.name,) + labels
        last = self._seen.get(key, 0)
        counter.inc(labels, value - last if value >= last else value)
        self._seen[key] = value

    def _collect(self):
        ident = self.identity()
        if ident != self._labels:
            self._labels = ident
            self.registry.set_const_labels((("tenant", ident[0] or ""),
                                            ("namespace", ident[1] or "")))
        states = self.relays.states()
        v = self.relays.metric_values()
        ix = METRIC_INDEX
        for i, n in enumerate(self.relays.names):
            self._state.set(1 if states[n] else 0, (n,))
            self._follow(self._switches, (n,), v[len(ix) + i])
        self._follow(self._rejected, ("interval",), v[ix["rejected_interval"]])
        self._follow(self._rejected, ("interlock",), v[ix["rejected_interlock"]])
        self._follow(self._deferred, (), v[ix["deferred"]])
        self._follow(self._feeds, (), v[ix["wdt_feeds"]])
        try:
            c = self.counters() if self.counters else {}
        except Exception:  # a scrape is already answering 200: show what is known
            c = {}
        for key, name, help_text, is_gauge in FIGURES:
            if key not in c:
                continue
            f = self._figures.get(key)
            if f is None:
                f = (self.registry.gauge if is_gauge else self.registry.counter)(name, help_text)
                self._figures[key] = f
            if is_gauge:
                f.set(c[key])
            else:
                self._follow(f, (), c[key])
        gc.collect()
        self._heap.set(gc.mem_free())
        self.tick()
        self._uptime.set(self._up_ms // 1000)


class _Conn:
    # One connection as microdot reads it: each line cut off at max_line bytes, the head at
    # max_head bytes and max_headers lines (HeadTooLarge), the body at max_body: microdot
    # measures a line only once it holds all of it and counts no lines, so an endless header
    # line or a thousand headers could otherwise fill the heap. deadline (ticks_ms) ends the
    # head phase early (head_ms) and the whole request later: _App's sweeper cancels the
    # connection's task once it has passed, whatever it waits on (read or write).
    def __init__(self, stream, ip, limits, max_line, max_body, request_ms):
        self.s = stream
        self.ip = ip
        # one buffer grown and consumed in place: fewer blocks of many sizes on a small heap
        self.buf = bytearray()
        self.max_line = max_line
        self.left = limits.max_head_bytes   # bytes still allowed from the socket
        self.lines = limits.max_headers + 1   # the request line and the headers
        self.max_body = max_body
        self.in_head = True
        self.started = False  # the request line has come
        self.t0 = time.ticks_ms()
        self.request_ms = request_ms
        self.deadline = time.ticks_add(self.t0, min(limits.head_timeout_ms, request_ms))
        self.task = None
        self.expired = False
        self.answering = False   # the answer's first bytes are on their way
        self.draining = False    # answered; reading what the client still sends

    async def _more(self, n):
        if self.left <= 0:
            if self.in_head:
                raise HeadTooLarge("request head too large")
            raise ValueError("request too large")
        data = await self.s.read(n if n < self.left else self.left)
        self.left -= len(data)
        return data

    async def readline(self):
        buf = self.buf
        while True:
            i = buf.find(b"\n")
            if i >= 0:
                line = bytes(memoryview(buf)[:i + 1])
                buf[0:i + 1] = b""
                if self.in_head:
                    blank = line == b"\r\n" or line == b"\n"
                    if blank and not self.started:
                        # empty lines before the request line are ignored (RFC 9112 2.2)
                        self.lines -= 1
                        if self.lines < 0:
                            raise HeadTooLarge("too many header lines")
                        continue
                    self.started = True
                    if blank:
                        self.in_head = False  # the body has its own budget and time
                        self.left = self.max_body - len(buf)
                        self.deadline = time.ticks_add(self.t0, self.request_ms)
                    else:
                        self.lines -= 1
                        if self.lines < 0:
                            raise HeadTooLarge("too many header lines")
                if len(line) > self.max_line:
                    raise HeadTooLarge("line too long")
                return line
            if len(buf) > self.max_line:
                raise HeadTooLarge("line too long")
            data = await self._more(256)
            if not data:
                line = bytes(buf)
                buf[0:len(buf)] = b""
                return line
            buf.extend(data)

    async def read(self, n=-1):
        buf = self.buf
        if n < 0:
            n = self.left + len(buf)
        if buf:
            data = bytes(memoryview(buf)[:n])
            buf[0:len(data)] = b""
            return data
        return await self._more(n)

    async def readexactly(self, n):
        out = b""
        while len(out) < n:
            data = await self.read(n - len(out))
            if not data:
                raise EOFError
            out += data
        return out


class _App(Microdot):
    # microdot with the API's connection caps, bounded request heads, request timing, error
    # shape, body draining and deadlines. handle_request is ours: microdot's prints a
    # traceback for every request it cannot parse.
    def __init__(self, api, timeout_s, limits):
        Microdot.__init__(self)
        self.api = api
        self.timeout_s = timeout_s
        self.limits = limits
        self.options_handler = None  # OPTIONS would list routes without a token: 405
        self._live = []      # connections being served (_Conn)
        self._sweeper = None
        self.refused = 0     # connections answered 503 at once (over a cap)
        self.evicted = 0     # stalled heads closed to make room
        self.bad_requests = 0
        self.faults = 0      # connections ended by an unexpected error (MemoryError...)
        self._bad_quiet = 0  # unparseable requests not logged (rate limit of the log line)
        self._bad_next = time.ticks_ms()
        self._log = logger.get("http")

    def _room(self, ip):
        # -> True when a new connection from ip may be served (maybe after closing the oldest
        # stalled head); False: answer 503 without reading
        lim = self.limits
        n = mine = 0
        oldest = None
        for c in self._live:
            if c.expired:
                continue
            n += 1
            if c.ip == ip:
                mine += 1
            if c.in_head and (oldest is None or time.ticks_diff(oldest.t0, c.t0) > 0):
                oldest = c
        if mine >= lim.max_per_address:
            return False
        if n < lim.max_connections:
            return True
        if oldest is None:
            return False
        oldest.expired = True  # slowest head gives way: a stalling crowd cannot lock others out
        oldest.task.cancel()
        self.evicted += 1
        return True

    async def handle_request(self, reader, writer):
        # no wait_for task per request: the deadline is kept on the connection and one
        # sweeper task cancels the connections past theirs
        peer = writer.get_extra_info("peername")
        ip = client_ip(peer)
        if not self._room(ip):
            self.refused += 1
            try:
                await writer.awrite(_BUSY)
                await writer.aclose()
            except OSError:
                pass
            return
        ms = int(self.timeout_s * 1000)
        conn = _Conn(reader, ip, self.limits, Request.max_readline, MAX_DECLARED, ms)
        conn.task = asyncio.current_task()
        live = self._live
        live.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())
        try:
            res = None
            try:
                req = await _read_request(self, conn, writer, peer)
            except HeadTooLarge as e:
                req = None
                res = self._unparsed(431, "head_too_large",
                                     "the request head is limited to %d bytes and %d headers"
                                     % (self.limits.max_head_bytes, self.limits.max_headers),
                                     ip, e)
            except (OSError, MemoryError):
                raise
            except EOFError as e:  # the client stopped sending: it may still read an answer
                req = None
                res = self._unparsed(400, "bad_request",
                                     "the request ended before its Content-Length", ip, e)
            except Exception as e:  # ValueError, IndexError, UnicodeError: not HTTP we take
                req = None
                res = self._unparsed(400, "bad_request", "the request could not be parsed",
                                     ip, e)
            if req is not None:
                res = await self.dispatch_request(req)
            if res is not None:
                conn.answering = True
                await res.write(writer)
                if req is None:
                    # a client still sending gets a moment, not the whole head deadline
                    conn.draining = True
                    conn.deadline = time.ticks_add(time.ticks_ms(), DISCARD_MS)
                    await _discard(conn.s, MAX_DECLARED)
            await writer.aclose()
        except (OSError, EOFError, asyncio.CancelledError) as e:
            if isinstance(e, asyncio.CancelledError) and not conn.expired:
                raise  # cancelled from outside (server shutdown): not ours to swallow
            # a stalled or broken client: its connection goes, the server stays
            if not conn.draining:
                self.api.connection_errors += 1
            try:
                await writer.aclose()
            except OSError:
                pass
        except Exception as e:  # MemoryError above all: the connection goes, the server stays
            self.faults += 1
            try:
                self._log.error("connection failed", ip=ip, error=e)
            except Exception:
                pass
            try:
                if not conn.answering:
                    await writer.awrite(_NO_HEAP)
                await writer.aclose()
            except Exception:
                pass
        finally:
            live.remove(conn)

    def _unparsed(self, status, error, message, ip, exc):
        # the answer to a request that never became one, and one log line per BAD_LOG_MS
        self.bad_requests += 1
        now = time.ticks_ms()
        if time.ticks_diff(now, self._bad_next) >= 0:
            self._bad_next = time.ticks_add(now, BAD_LOG_MS)
            self._log.warning("unparseable request", ip=ip, status=status,
                              why=_echo(str(exc), 80), not_logged=self._bad_quiet)
            self._bad_quiet = 0
        else:
            self._bad_quiet += 1
        res = self.api.refuse(Refusal(status, error, message))
        self.api.requests.observe(UNMATCHED, status, 0)
        return res

    async def _sweep(self):
        try:
            while self._live:
                ms = min(self.limits.head_timeout_ms, int(self.timeout_s * 1000))
                step = ms // 4 if ms < 1000 else 250
                await asyncio.sleep_ms(step if step > 0 else 1)
                now = time.ticks_ms()
                for c in self._live:
                    if not c.expired and time.ticks_diff(now, c.deadline) >= 0:
                        c.expired = True
                        c.task.cancel()
                c = None  # a sleeping sweeper keeps no finished connection alive
        finally:
            self._sweeper = None

    def _allow(self, path):
        # the methods a path takes, for the Allow header of a 405
        out = []
        for methods, pattern, _, _, _ in self.url_map:
            if pattern.match(path) is not None:
                for m in methods:
                    if m not in out:
                        out.append(m)
        if "GET" in out:
            out.append("HEAD")
        return ", ".join(out)

    async def dispatch_request(self, req):
        t0 = time.ticks_ms()
        api = self.api
        api.tick()
        req.g.ip = client_ip(req.client_addr)
        try:
            cl = req.headers.get("Content-Length")
            if cl is not None and not (cl.isdigit() and len(cl) < 10):
                # int() took it ("+5", "-1", " 5"): only plain digits are a length
                res = api.refuse(Refusal(400, "bad_request", "Content-Length must be digits"))
            else:
                res = await Microdot.dispatch_request(self, req)
        except MemoryError:  # a full heap is a load problem, not a fault: retry later
            res = api.refuse(Refusal(503, "busy", "out of memory, retry", retry=1))
        except Exception as e:  # not expected: one line, a JSON 500, no traceback
            self._log.error("request failed", ip=req.g.ip, error=e)
            res = api.refuse(Refusal(500, "internal", "the request failed inside the device"))
        route = getattr(req.g, "route", UNMATCHED)
        if res.status_code == 405:
            res.headers["Allow"] = self._allow(req.path)
        if res.reason is None:
            res.reason = _REASONS.get(res.status_code)
        await _drain(req)
        api.requests.observe(route, res.status_code, time.ticks_diff(time.ticks_ms(), t0))
        return res


async def _read_request(app, reader, writer, client_addr):
    # microdot 2.7's Request.create, the same results and errors, faster on the board:
    # x.lstrip().rstrip() for x.strip() (MicroPython's strip() tests every character, ~1 ms
    # for an Authorization line on the RP2040; lstrip and rstrip stop at the first one kept),
    # and a header line cut at its colon as bytes, so each part is made a str once (every new
    # str is checked for UTF-8 and looked up among the interned strings). ':' and the blanks
    # are ASCII: the parts are valid UTF-8 exactly when the whole line is.
    line = (await Request._safe_readline(reader)).lstrip().rstrip().decode()
    if not line:
        return None
    method, url, http_version = line.split()
    http_version = http_version.split("/", 1)[1]
    headers = NoCaseDict()
    content_length = 0
    while True:
        raw = (await Request._safe_readline(reader)).lstrip().rstrip()
        if not raw:
            break
        i = raw.find(b":")
        if i < 0:
            header, value = raw.decode().split(":", 1)  # raises as microdot does
        header = raw[:i].decode()
        value = raw[i + 1:].lstrip().rstrip().decode()
        headers[header] = value
        if len(header) == 14 and header.lower() == "content-length":
            content_length = int(value)
    if content_length and content_length <= Request.max_body_length:
        body = await reader.readexactly(content_length)
        stream = None
    else:
        body = b""
        stream = reader
    return Request(app, client_addr, method, url, http_version, headers, body=body,
                   stream=stream, sock=(reader, writer))


async def _discard(stream, limit):
    # after an answer to a head we did not take: read what the client still sends (bounded in
    # bytes, and in time by the connection's deadline), so closing does not reset the answer
    while limit > 0:
        chunk = await stream.read(256)
        if not chunk:
            return
        limit -= len(chunk)


async def _drain(req):
    # a body left unread (over max_body_length) is read and dropped before the answer: closing
    # with unread data sends a TCP reset, which can destroy the answer on its way
    left = req.content_length
    if left <= Request.max_body_length or left > Request.max_content_length:
        return
    while left > 0:
        chunk = await req.stream.read(256 if left > 256 else left)
        if not chunk:
            return
        left -= len(chunk)


def _route(app, api, method, path, action, fn):
    read = method == "GET"

    async def handler(req, **args):
        req.g.route = path
        try:
            claims = api.admit(req, read, action, args.get("relay"))
            r = fn(req, claims, **args)
            if hasattr(r, "send"):  # an async handler
                r = await r
            return r
        except Refusal as e:  # answered here: microdot would print a traceback for each
            return api.refuse(e)
        except MemoryError:  # a full heap is a load problem, not a fault: retry later
            return api.refuse(Refusal(503, "busy", "out of memory, retry", retry=1))
        except Exception as e:  # a fault of ours: one log line and a JSON 500, no traceback
            app._log.error("request failed", route=path, ip=req.g.ip, error=e)
            return api.refuse(Refusal(500, "internal", "the request failed inside the device"))

    app.route(path, methods=[method])(handler)


def _error(api, status, error, message):
    def handler(req):
        return api.refuse(Refusal(status, error, message))
    return handler


def create_app(relays, validator, limiter, identity, ready, counters=None, roles=None,
               registry=None, get_config=None, reload_config=None, check_ota=None,
               max_body=MAX_BODY, timeout_s=REQUEST_TIMEOUT_S, limits=None):
    # -> a microdot app serving rbac.ROUTES; app.api is the DeviceApi (see there for arguments);
    # limits: HttpLimits (app.limits, replaceable on config reload)
    api = DeviceApi(relays, validator, limiter, identity, ready, counters, roles, registry,
                    get_config, reload_config, check_ota, max_body)
    # class-wide microdot limits: one app per device
    Request.max_body_length = max_body
    Request.max_content_length = MAX_DECLARED
    Request.max_readline = MAX_TOKEN_BYTES + 256  # an over-long token gets its 401, not a 400
    app = _App(api, timeout_s, limits or HttpLimits())
    handlers = {
        "GET /health": api.health, "GET /ready": api.readiness, "GET /metrics": api.metrics,
        "GET /gpio": api.list_relays, "GET /gpio/<relay>": api.get_relay,
        "POST /gpio/<relay>": api.switch_relay, "POST /gpio": api.switch_relays,
        "GET /config": api.config, "POST /config/reload": api.config_reload,
        "POST /ota/check": api.ota_check,
    }
    # the routes are the RBAC matrix's: a route without a row cannot be served
    for method, path, action in rbac.ROUTES:
        _route(app, api, method, path, action, handlers[method + " " + path])
    for status, error, message in (
            (400, "bad_request", "the request could not be parsed"),
            (404, "not_found", "no such route"),
            (405, "method_not_allowed", "the route does not take this method"),
            (413, "body_too_large", "the body is limited to %d bytes" % max_body),
            (500, "internal", "the request failed inside the device")):
        app.errorhandler(status)(_error(api, status, error, message))
    from iotlib import web_page  # GET / and GET /events (web_page imports this module)
    web_page.mount(app, api)
    return app
