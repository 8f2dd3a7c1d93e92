# The device's own web page (GET /, public: it holds no secret) and its live event stream
# (GET /events, Server-Sent Events), mounted on the REST API's app by rest_api.create_app.
# The page asks for a device-API token and makes every call with it, so the page can do no
# more than the token can over REST. The stream passes the same checks as every route
# (rate limit, JWT, tenancy, role), is scoped by the token's relay list, and re-checks the
# token at each keepalive: an expired or revoked token (new key) ends it.
#
#   GET /events  (Authorization: Bearer ...)
#   event: hello   data: {relays, interlocks, can_switch, status, alarms, seq}   first
#   id: 7  event: relay|input|alarm|ready   data: {seq, type, t, ...}            as they happen
#   event: status  data: {uptime_s, heap_free, ready, missing}                  keepalive
#   event: end     data: {error, message}                                        token refused
import gc
import json
import sys
import time

from microdot import Response

from iotlib import events, rbac
from iotlib.jwt_validator import MESSAGES, TokenError, bearer_token, check_tenancy
from iotlib.rest_api import Refusal, _relay_doc, _route
from iotlib.web_asset import PAGE

KEEPALIVE_MS = 15000
SEND_BUFFER = 4096  # bytes the unix port's kernel may queue for one stream
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=UTF-8",
    "Cache-Control": "no-store",
    # everything the page needs is inline; it talks to this device only
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                  "X-Accel-Buffering": "no"}


def frame(name, data, seq=None):
    # one Server-Sent Event; json.dumps never leaves a newline in data
    head = "event: %s\n" % name
    if seq is not None:
        head = "id: %d\n" % seq + head
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


def _small_send_buffer(req):
    # Linux would queue megabytes for a client that stopped reading, so it would never look
    # slow; the board's lwIP queues a few KB by itself
    if sys.platform != "linux":
        return
    try:
        req.sock[1].s.setsockopt(1, 7, SEND_BUFFER)  # SOL_SOCKET, SO_SNDBUF on Linux
    except (AttributeError, OSError, TypeError, IndexError):
        pass


class EventStream:
    # the response body of GET /events: an async iterator microdot writes out as it yields.
    # Each wait and the write after it are bounded by the request deadline the app's sweeper
    # enforces, renewed here: a client that stops reading is cut off, its subscription dropped.
    def __init__(self, web, req, claims, token, sub):
        self.web = web
        self.reader = req.stream
        self.claims = claims
        self.token = token
        self.sub = sub
        self.first = True
        self.done = False

    def __aiter__(self):
        return self

    def _renew(self, ms):
        r = self.reader
        if hasattr(r, "deadline"):
            r.deadline = time.ticks_add(time.ticks_ms(), ms + self.web.write_ms)

    async def __anext__(self):
        try:
            return await self._next()
        except BaseException:  # ended, cancelled (the connection is going) or failed
            self.sub.close()
            raise

    async def _next(self):
        web = self.web
        if self.done:
            raise StopAsyncIteration
        if self.first:
            self.first = False
            self._renew(0)
            return frame("hello", web.hello(self.claims))
        self._renew(web.keepalive_ms)
        ev = await self.sub.get(web.keepalive_ms)
        self._renew(0)
        if ev is not None:
            return frame(ev["type"], ev, ev["seq"])
        if self.sub.dropped is not None:
            raise StopAsyncIteration
        why = web.recheck(self.token)
        if why is not None:
            self.done = True
            text = MESSAGES.get(why, "the token may no longer read events")
            return frame("end", {"error": why, "message": text})
        return frame("status", web.status())

    async def aclose(self):
        self.sub.close()


class WebPage:
    def __init__(self, api, bus, write_ms, keepalive_ms=KEEPALIVE_MS):
        self.api = api
        self.bus = bus
        self.write_ms = write_ms
        self.keepalive_ms = keepalive_ms

    def page(self, req, claims):
        return Response(PAGE, 200, PAGE_HEADERS)

    def status(self):
        api = self.api
        api.tick()
        ok, missing = api.ready()
        gc.collect()
        return {"uptime_s": api._up_ms // 1000, "heap_free": gc.mem_free(), "ready": ok,
                "missing": missing}

    def hello(self, claims):
        api = self.api
        rel = api.relays
        names = rbac.permitted_relays(claims, rbac.READ, rel.names, api.roles)
        seen = set(names)
        groups = []
        for g in (rel.cfg or {}).get("interlocks", ()):
            members = [n for n in g["relays"] if n in seen]
            if members:
                groups.append({"relays": members, "dead_ms": g["dead_ms"]})
        out = {"seq": self.bus.seq, "subject": claims.get("sub"),
               "relays": [_relay_doc(d) for d in rel.all() if d["name"] in seen],
               "can_switch": rbac.permitted_relays(claims, rbac.SWITCH, names, api.roles),
               "interlocks": groups, "status": self.status()}
        if rbac.relay_scope(claims) is None:  # device-wide: not for a token kept to some relays
            out["alarms"] = self.bus.alarms
            out["inputs"] = rel.inputs
        return out

    def recheck(self, token):
        # None while the token would still be let in; else the error code
        api = self.api
        if api.validator is None:
            return "not_configured"
        try:
            claims = api.validator.validate(token)
            tenant, namespace = api.identity()
            check_tenancy(claims, tenant, namespace)
        except TokenError as e:
            return e.reason
        return rbac.denial(claims, rbac.READ, None, api.roles)

    def events(self, req, claims):
        if req.method == "HEAD":  # no body will be read: no subscription
            return Response(b"", 200, STREAM_HEADERS)
        # over TLS the stream makes way for any client that waits for its session slot, so
        # one open page does not hold off every other client (iotlib.tls_listener)
        yield_slot = getattr(req.sock[1], "yield_slot", None)
        if yield_slot is not None and not yield_slot():
            raise Refusal(503, "too_many_streams", "every place for a TLS event stream is taken"
                          " (http.max_tls_streams)", None, 5)
        try:
            sub = self.bus.subscribe(rbac.relay_scope(claims))
        except events.Full as e:
            raise Refusal(503, "too_many_subscribers", str(e), None, 5)
        token = bearer_token(req.headers.get("Authorization"))
        _small_send_buffer(req)
        return Response(EventStream(self, req, claims, token, sub), 200, STREAM_HEADERS)


def mount(app, api):
    # -> the WebPage; its routes go through the same wrapper (limits, JWT, RBAC) as the API's
    web = WebPage(api, api.relays.events, int(app.timeout_s * 1000))
    _route(app, api, "GET", "/", None, web.page)
    _route(app, api, "GET", "/events", rbac.READ, web.events)
    app.web = web
    return web
