"""GET /events on the MicroPython unix build over real sockets: a subscriber sees every change of a
scripted sequence (REST, pulse end, interlock change-over, input edges, alarm, readiness) in
order with no gap in the sequence numbers; a token limited to some relays sees theirs only; the
stream is refused like every route; subscribers are bounded; a stalled subscriber is dropped
while the heap stays bounded and the others miss nothing; a revoked key ends a stream. The
latency from the pin change to the event at the subscriber is measured (no assertion on it)."""

import gzip
import statistics
import time

from web_harness import DEVICE, FIGURES, KEY, call, token, wait_for


def hello(stream):
    stream.wait_events(1, "hello")
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    return stream.named("hello")[0]


def changes(stream, after_seq):
    # the bus events after the hello, as (seq, type, the fields that say what happened)
    out = []
    for _, name, eid, d in stream.events:
        if name in ("hello", "status") or d["seq"] <= after_seq:
            continue
        assert eid == d["seq"] and name == d["type"], (eid, name, d)
        if name == "relay":
            out.append((d["seq"], "relay", d["relay"], d["state"], d["cause"], d["subject"]))
        elif name == "input":
            out.append((d["seq"], "input", d["input"], d["value"], d["edges"]))
        elif name == "alarm":
            out.append((d["seq"], "alarm", d["key"], d["severity"]))
        elif name == "ready":
            out.append((d["seq"], "ready", d["ready"], tuple(d["missing"])))
    return out


def test_page_is_public_small_and_holds_no_secret(device):
    a = device.request("GET", "/")
    assert a.status == 200, a
    assert a.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert "default-src 'none'" in a.headers["Content-Security-Policy"]
    assert a.headers["Cache-Control"] == "no-store"
    assert b"/events" in a.raw and b"sessionStorage" in a.raw and b"<script" in a.raw
    assert KEY not in a.raw and b"Bearer ey" not in a.raw
    assert b"src=\"http" not in a.raw and b"href=\"http" not in a.raw, "an outside resource"
    assert len(a.raw) < 24 * 1024, len(a.raw)
    FIGURES["page size"] = "%d bytes (%d gzip'd)" % (len(a.raw), len(gzip.compress(a.raw, 9)))


def test_stream_is_refused_like_every_route(device):
    a = device.request("GET", "/events")
    assert a.status == 401 and a.json["error"] == "missing_token", a
    assert a.headers["WWW-Authenticate"] == "Bearer"
    a = device.request("GET", "/events", tok=token(key=b"another-key-of-32-bytes-or-more!!"))
    assert a.status == 401 and a.json["error"] == "bad_signature", a
    a = device.request("GET", "/events", tok=token(role="switcher"))  # may switch, not read
    assert a.status == 403 and a.json["error"] == "forbidden", a
    a = device.request("GET", "/events", tok=token(tenant="other"))
    assert a.status == 403 and a.json["error"] == "wrong_tenant", a
    assert device.bus()["event_subscribers"] == 0, "a refused request holds no place"


def test_scripted_sequence_in_order_without_gaps(device):
    op = token(sub="alice")
    whole = device.stream(op)
    viewer = device.stream(token(sub="vic", role="viewer"))
    scoped = device.stream(token(sub="sam", relays=["r1"]))
    try:
        h = hello(whole)
        hv, hs = hello(viewer), hello(scoped)
        s0 = h["seq"]
        assert hv["seq"] == s0 and hs["seq"] == s0
        assert sorted(h["can_switch"]) == sorted(DEVICE["relays"]) and hv["can_switch"] == []
        assert {r["name"] for r in h["relays"]} == set(DEVICE["relays"])
        assert h["interlocks"] == [{"relays": ["fwd", "rev"], "dead_ms": 50}]
        assert h["inputs"] == ["button"] and h["alarms"] == []
        assert h["status"]["ready"] is True and h["status"]["heap_free"] > 0
        # kept to r1: its relay only, nothing of the whole device
        assert [r["name"] for r in hs["relays"]] == ["r1"] and hs["can_switch"] == ["r1"]
        assert hs["interlocks"] == [] and "alarms" not in hs and "inputs" not in hs

        want = []
        for i in range(10):
            a = device.request("POST", "/gpio/r1", {"state": "TOGGLE"}, op)
            assert a.status == 200, a
            want.append(("relay", "r1", "HIGH" if i % 2 == 0 else "LOW", "rest", "alice"))
        assert device.request("POST", "/gpio/r2", {"state": "HIGH"}, op).status == 200
        want.append(("relay", "r2", "HIGH", "rest", "alice"))
        a = device.request("POST", "/gpio", {"relays": {"r1": "HIGH", "r2": "LOW"}}, op)
        assert a.status == 200, a
        want += [("relay", "r1", "HIGH", "rest", "alice"), ("relay", "r2", "LOW", "rest", "alice")]
        # bell has pulse_ms 50: on, then off by the core
        assert device.request("POST", "/gpio/bell", {"state": "HIGH"}, op).status == 200
        want += [("relay", "bell", "HIGH", "rest", "alice"),
                 ("relay", "bell", "LOW", "pulse_end", None)]
        whole.wait_events(len(want) + 1)
        # interlock change-over: fwd off at once, rev on after the dead time
        assert device.request("POST", "/gpio/fwd", {"state": "HIGH"}, op).status == 200
        assert device.request("POST", "/gpio/rev", {"state": "HIGH"}, op).status == 202
        want += [("relay", "fwd", "HIGH", "rest", "alice"),
                 ("relay", "fwd", "LOW", "rest", "alice"),
                 ("relay", "rev", "HIGH", "interlock", None)]
        whole.wait_events(len(want) + 1)
        # the button (active low): pressed, released
        device.control("POST", "/drive", {"pin": 10, "level": 0})
        whole.wait_events(len(want) + 2)
        device.control("POST", "/drive", {"pin": 10, "level": 1})
        want += [("input", "button", True, 1), ("input", "button", False, 2)]
        whole.wait_events(len(want) + 1)
        device.control("POST", "/alarm", {"key": "test.alarm", "message": "m", "severity": "error"})
        want.append(("alarm", "test.alarm", "error"))
        whole.wait_events(len(want) + 1)
        device.control("POST", "/ready", {"missing": ["time"]})
        whole.wait_events(len(want) + 2)
        device.control("POST", "/ready", {"missing": []})
        want += [("ready", False, ("time",)), ("ready", True, ())]
        whole.wait_events(len(want) + 1)

        got = changes(whole, s0)
        assert [g[0] for g in got] == list(range(s0 + 1, s0 + 1 + len(want))), "a gap"
        assert [g[1:] for g in got] == want
        assert changes(viewer, s0) == got, "the viewer sees the same"
        scoped.wait_events(1 + sum(1 for w in want if w[1] == "r1"))
        time.sleep(0.2)  # nothing else may follow for r1's token
        mine = changes(scoped, s0)
        assert [g[1:] for g in mine] == [w for w in want if w[:2] == ("relay", "r1")]
        assert [g[0] for g in mine] == [g[0] for g in got if g[2] == "r1"]
        # the board agrees with the last events
        b = device.board()
        assert b["states"]["r1"] and b["states"]["rev"] and not b["states"]["fwd"]
        assert b["pins"]["2"] == 1 and b["pins"]["6"] == 1 and b["pins"]["5"] == 0
        FIGURES["scripted sequence"] = "%d events, in order, no gap (3 subscribers)" % len(want)
    finally:
        for s in (whole, viewer, scoped):
            s.close()
    wait_for(lambda: device.bus()["event_subscribers"] == 0, 10, "closed streams to leave")


def test_latency_from_pin_change_to_event(device):
    op = token()
    s = device.stream(op)
    try:
        hello(s)
        rest, edge = [], []
        for i in range(30):
            n = len(s.events)
            assert device.request("POST", "/gpio/r2", {"state": "TOGGLE"}, op).status == 200
            s.wait_events(n + 1)
            rcv, _, _, d = s.events[n]
            assert d["relay"] == "r2", d
            rest.append((rcv - d["t"]) * 1000)  # t: stamped in the call that wrote the pin
        for i in range(30):
            n = len(s.events)
            t = device.control("POST", "/drive", {"pin": 10, "level": i % 2})["t"]
            s.wait_events(n + 1)
            rcv, _, _, d = s.events[n]
            assert d["type"] == "input", d
            edge.append((rcv - t) * 1000)  # the input pin driven -> the edge event received
    finally:
        s.close()

    def fmt(v):
        v = sorted(v)
        return "median %.2f ms, p90 %.2f ms, max %.2f ms (n=%d)" % (
            statistics.median(v), v[int(len(v) * 0.9) - 1], v[-1], len(v))
    FIGURES["latency relay pin write -> event at subscriber"] = fmt(rest)
    FIGURES["latency input pin edge -> event at subscriber (10 ms tick)"] = fmt(edge)


def test_stalled_subscriber_is_dropped_heap_bounded(own_device):
    dev = own_device(timeout_s=3, max_pending=16)
    op = token()
    live = dev.stream(op)
    hello(live)
    stalled = dev.stream(op, stalled=True)
    try:
        wait_for(lambda: dev.bus()["event_subscribers"] == 2, 10, "two subscribers")
        heap0 = dev.bus()["heap_free"]
        sent = 0
        low = heap0
        deadline = time.monotonic() + 90
        while dev.bus()["event_subscribers_dropped"] == 0:
            assert time.monotonic() < deadline, "the stalled subscriber was never dropped"
            assert sent < 5000, "5000 events and the stalled subscriber is still there"
            for _ in range(25):
                assert dev.request("POST", "/gpio/r1", {"state": "TOGGLE"}, op).status == 200
                sent += 1
            b = dev.bus()
            low = min(low, b["heap_free"])
            assert max(b["pending"] or [0]) <= 16, b
        b = wait_for(lambda: (lambda b: b if b["event_subscribers"] == 1 else None)(dev.bus()),
                     10, "one subscriber left")
        # the heap after a collection stays within a bound of where it started
        assert heap0 - low < 64 * 1024, (heap0, low)
        assert heap0 - b["heap_free"] < 32 * 1024, (heap0, b["heap_free"])
        # the live one missed nothing
        seq = b["seq"]
        live.wait_events(1 + seq)
        ids = [e[2] for e in live.events if e[1] == "relay"]
        assert ids == list(range(1, seq + 1)), "the live subscriber missed events"
        # the stalled client finds its connection closed once it reads what was sent
        stalled.sock.settimeout(10)
        deadline = time.monotonic() + 30
        while stalled.sock.recv(65536):
            assert time.monotonic() < deadline, "the stalled connection was not closed"
        FIGURES["stalled subscriber"] = ("dropped after %d events; heap free %d -> lowest %d "
                                         "-> %d after" % (sent, heap0, low, b["heap_free"]))
    finally:
        live.close()
        stalled.close()


def test_subscribers_are_bounded_and_places_come_back(own_device):
    dev = own_device(max_subscribers=2, keepalive_ms=300)
    op = token()
    a, b = dev.stream(op), dev.stream(op)
    c = None
    try:
        hello(a)
        hello(b)
        r = dev.request("GET", "/events", tok=op)
        assert r.status == 503 and r.json["error"] == "too_many_subscribers", r
        assert int(r.headers["Retry-After"]) >= 1
        assert dev.bus()["event_subscribers_refused"] == 1
        # keepalives carry the device status
        st = a.wait_events(1, "status")[0][3]
        assert set(st) == {"uptime_s", "heap_free", "ready", "missing"}, st
        b.close()  # noticed at the next keepalive write at the latest
        wait_for(lambda: dev.bus()["event_subscribers"] == 1, 10, "the closed one's place")
        c = dev.stream(op)
        assert hello(c)["seq"] == 0
    finally:
        for s in (a, b, c):
            if s is not None:
                s.close()


def test_new_key_ends_open_streams(own_device):
    dev = own_device(keepalive_ms=300)
    s = dev.stream(token())
    try:
        hello(s)
        dev.control("POST", "/jwt_key", {"key": "a-brand-new-key-of-32-bytes-and-more"})
        end = s.wait_events(1, "end")[0][3]
        assert end["error"] == "bad_signature", end
        wait_for(lambda: s.closed, 10, "the stream to close")
        assert dev.bus()["event_subscribers"] == 0
    finally:
        s.close()


def test_head_holds_no_place(own_device):
    dev = own_device()
    a = call(dev.port, "HEAD", "/events", tok=token())
    assert a.status in (200, 405), a
    assert dev.bus()["event_subscribers"] == 0


HEAP_SCRIPT = """
import gc, sys
sys.path[:] = [%r]
gc.collect(); a = gc.mem_alloc()
from iotlib import rest_api
gc.collect(); b = gc.mem_alloc()
from iotlib import events
gc.collect(); c = gc.mem_alloc()
from iotlib import web_page
gc.collect(); d = gc.mem_alloc()
bus = events.EventBus()
subs = [bus.subscribe() for _ in range(bus.max_subscribers)]
for i in range(bus.max_pending):
    bus.publish(events.RELAY, relay="relay_%%d" %% (i %% 8), state="HIGH", cause="rest",
                subject="someone@example.com", source="192.168.1.20", switches=i,
                last_change=1700000000.5)
gc.collect(); e = gc.mem_alloc()
print(c - b, d - c, e - d, bus.max_subscribers, bus.max_pending)
"""


def test_heap_used_by_the_feature(own_device):
    # imports from the modules frozen into the unix build (as on the board: code and page
    # in flash), a bus with every subscriber holding its most events, and open streams
    import subprocess
    from web_harness import MICROPYTHON, ROOT
    p = subprocess.run([MICROPYTHON, "-c", HEAP_SCRIPT % ".frozen"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ev_import, page_import, full_bus, nsubs, npend = (int(x) for x in p.stdout.split())
    assert 0 < ev_import < 8 * 1024 and 0 < page_import < 8 * 1024, p.stdout
    # every place taken, every queue full: the most the bus can hold, bounded
    assert 0 < full_bus < 48 * 1024, full_bus
    dev = own_device()
    heap0 = dev.bus()["heap_free"]
    streams = [dev.stream(token()) for _ in range(4)]
    try:
        for s in streams:
            hello(s)
        wait_for(lambda: dev.bus()["event_subscribers"] == 4, 10, "four streams")
        per_stream = (heap0 - dev.bus()["heap_free"]) / 4
    finally:
        for s in streams:
            s.close()
    FIGURES["heap, frozen imports"] = "iotlib.events %d bytes, iotlib.web_page + page %d bytes" % (
        ev_import, page_import)
    FIGURES["heap, bus at its bound"] = "%d bytes (%d subscribers x %d events, shared)" % (
        full_bus, nsubs, npend)
    FIGURES["heap, one open stream on the device"] = "about %d bytes" % per_stream
