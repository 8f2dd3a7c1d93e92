"""The device REST API over real sockets: probes, relay reads and switches, the relay core's
answers (interval, interlock change-over), the audit trail, bodies the API must refuse,
protocol abuse and admin actions. Every refusal leaves the relays as they were."""

import json
import socket
import time

import pytest

from rest_harness import TALLY, DeviceApiServer, refused, refused_raw, token

OP = token("alice", "operator")
ADMIN = token("root", "admin")
NAMES = ["fwd", "r1", "r2", "rev", "slow"]
PINS = {"r1": 2, "r2": 3, "slow": 4, "fwd": 5, "rev": 6}


def state(api, name):
    return api.board()["states"][name]


def set_relay(api, name, level, tok=OP):
    a = api.post("/gpio/" + name, {"state": level}, tok)
    assert a.status == 200, a
    return a.json


def settled_audit(api):
    """The audit trail once every line of the earlier requests is on file (audit lines reach
    the file in batches, each within 500 ms: polled, not slept through)."""
    api.settle(state_write=False)
    return api.audit()


def audit_after(api, n, count, timeout=2):
    """The audit lines after the first n, polled until count of them are on file."""
    deadline = time.monotonic() + timeout
    while True:
        new = api.audit()[n:]
        if len(new) >= count or time.monotonic() > deadline:
            return new
        time.sleep(0.02)


# ---- probes ----

def test_health_needs_no_token(api):
    a = api.get("/health")
    assert a.status == 200 and a.json["status"] == "ok" and 0 <= a.json["uptime_s"] < 60


def test_ready_names_the_missing_parts(api):
    assert api.get("/ready").json == {"ready": True}
    api.sim(missing=["registered", "time"])
    try:
        a = api.get("/ready")
        assert a.status == 503
        assert a.json["error"] == "not_ready" and a.json["missing"] == ["registered", "time"]
        assert "registered" in a.json["message"] and "time" in a.json["message"]
        assert api.get("/health").status == 200  # liveness is not readiness
    finally:
        api.sim(missing=[])
    assert api.get("/ready").status == 200


# ---- reads ----

def test_list_relays(api):
    a = api.get("/gpio", OP)
    assert a.status == 200
    rs = a.json["relays"]
    assert [r["name"] for r in rs] == NAMES
    for r in rs:
        assert r["pin"] == PINS[r["name"]]
        assert r["state"] in ("HIGH", "LOW")
        assert r["switches"] >= 0 and r["last_change"] > 0


def test_get_one_relay(api):
    a = api.get("/gpio/r2", OP)
    assert a.status == 200 and a.json["name"] == "r2" and a.json["pin"] == 3


# ---- switching ----

def test_set_high_and_low_drive_the_pin(api):
    set_relay(api, "r1", "LOW")
    before = api.board()
    on = set_relay(api, "r1", "HIGH")
    b = api.board()
    assert on["state"] == "HIGH" and on["switches"] == before["switches"][1] + 1
    assert b["pins"]["2"] == 1 and b["states"]["r1"] is True
    off = set_relay(api, "r1", "LOW")
    assert off["state"] == "LOW" and api.board()["pins"]["2"] == 0


def test_active_low_relay_is_high_when_its_pin_is_low(api):
    assert set_relay(api, "r2", "HIGH")["state"] == "HIGH"
    assert api.board()["pins"]["3"] == 0
    assert set_relay(api, "r2", "LOW")["state"] == "LOW"
    assert api.board()["pins"]["3"] == 1


def test_toggle(api):
    first = state(api, "r1")
    a = api.post("/gpio/r1", {"state": "TOGGLE"}, OP)
    assert a.status == 200 and (a.json["state"] == "HIGH") is (not first)
    a = api.post("/gpio/r1", {"state": "TOGGLE"}, OP)
    assert (a.json["state"] == "HIGH") is first


def test_setting_the_current_state_changes_nothing(api):
    set_relay(api, "r1", "LOW")
    n = api.board()["switches"][1]
    lines = len(settled_audit(api))
    assert set_relay(api, "r1", "LOW")["switches"] == n
    assert len(settled_audit(api)) == lines


def test_pulse_turns_the_relay_off_by_itself(api):
    set_relay(api, "r1", "LOW")
    n = len(settled_audit(api))
    a = api.post("/gpio/r1", {"state": "HIGH", "pulse_ms": 150}, OP)
    assert a.status == 200 and a.json["state"] == "HIGH"
    assert api.board()["pins"]["2"] == 1
    api.wait_board(lambda b: b["pins"]["2"] == 0, "the pulse to end", 3)
    audit_after(api, n, 2)
    trail = [e for e in api.audit() if e["relay"] == "r1"][-2:]
    assert (trail[0]["new"], trail[0]["subject"]) == (True, "alice")
    assert (trail[1]["new"], trail[1]["source"]) == (False, "core")  # the core ended it


def test_bulk_write_is_atomic(api):
    a = api.post("/gpio", {"relays": {"r1": "HIGH", "r2": "HIGH"}}, OP)
    assert a.status == 200
    assert {r["name"]: r["state"] for r in a.json["relays"]} == {"r1": "HIGH", "r2": "HIGH"}
    b = api.board()
    assert b["pins"]["2"] == 1 and b["pins"]["3"] == 0
    a = api.post("/gpio", {"relays": {"r1": "LOW", "r2": "LOW"}}, OP)
    assert a.status == 200 and api.board()["states"]["r1"] is False


def test_core_refusals_answer_409_and_change_nothing(api):
    # slow has a 60 s minimum interval: once switched, it refuses for the rest of the module
    assert set_relay(api, "slow", "HIGH")["state"] == "HIGH"
    refused(api, "core", "POST", "/gpio/slow", 409, "interval", json_body={"state": "LOW"}, token=OP)
    refused(api, "core", "POST", "/gpio/slow", 409, "interval", json_body={"state": "TOGGLE"}, token=OP)
    # one relay of a write refused: the other one does not move either
    set_relay(api, "r1", "LOW")
    refused(api, "core", "POST", "/gpio", 409, "interval",
            json_body={"relays": {"r1": "HIGH", "slow": "LOW"}}, token=OP)
    assert state(api, "r1") is False
    # a pulse shorter than the interval is a bad pulse_ms, found before anything moves
    refused(api, "core", "POST", "/gpio/slow", 400, "invalid_value", "pulse_ms",
            json_body={"state": "HIGH", "pulse_ms": 100}, token=OP)


def test_interlock_change_over_is_deferred(api):
    set_relay(api, "rev", "LOW")
    set_relay(api, "fwd", "HIGH")
    a = api.post("/gpio/rev", {"state": "HIGH"}, OP)
    assert a.status == 202, a
    assert a.json["state"] == "LOW" and a.json["pending"] == "HIGH"
    b = api.board()
    assert b["states"]["fwd"] is False and b["states"]["rev"] is False  # dead time: both off
    api.wait_board(lambda b: b["states"]["rev"], "rev on after the dead time", 3)
    assert api.board()["pins"]["5"] == 0
    # a write is never deferred: two members on is refused whole
    refused(api, "core", "POST", "/gpio", 409, "interlock",
            json_body={"relays": {"fwd": "HIGH"}}, token=OP)
    refused(api, "core", "POST", "/gpio", 409, "interlock",
            json_body={"relays": {"fwd": "HIGH", "rev": "HIGH"}}, token=OP)
    a = api.post("/gpio", {"relays": {"fwd": "LOW", "rev": "LOW"}}, OP)
    assert a.status == 200


def test_every_accepted_change_is_audited_with_subject_source_old_new(api):
    set_relay(api, "r1", "LOW")
    n = len(settled_audit(api))
    a = api.request("POST", "/gpio/r1", json_body={"state": "HIGH"}, token=token("bob"),
                    source="127.0.0.2")
    assert a.status == 200
    a = api.request("POST", "/gpio", json_body={"relays": {"r1": "LOW", "r2": "HIGH"}},
                    token=token("carol"), source="127.0.0.3")
    assert a.status == 200
    new = audit_after(api, n, 3)
    got = [(e["relay"], e["old"], e["new"], e["subject"], e["source"]) for e in new]
    assert got[0] == ("r1", False, True, "bob", "127.0.0.2")
    assert sorted(got[1:]) == [("r1", True, False, "carol", "127.0.0.3"),
                               ("r2", False, True, "carol", "127.0.0.3")]
    set_relay(api, "r2", "LOW")


# ---- bodies ----

R1 = "/gpio/r1"


@pytest.mark.parametrize("kw, status, error, field", [
    (dict(raw=b"state=HIGH"), 400, "bad_json", None),
    (dict(raw=b'{"state": "HIGH"'), 400, "bad_json", None),
    (dict(raw=b""), 400, "bad_json", None),
    (dict(raw=b'["state", "HIGH"]'), 400, "bad_json", None),
    (dict(raw=b'"HIGH"'), 400, "bad_json", None),
    (dict(raw=b"\xff\xfe{}"), 400, "bad_json", None),
    (dict(raw=b"[" * 400 + b"]" * 400), 400, "bad_json", None),
    (dict(raw=b'{"state": "HIGH"}', content_type="text/plain"), 415, "unsupported_media_type", None),
    (dict(raw=b"state=HIGH", content_type="application/x-www-form-urlencoded"), 415,
     "unsupported_media_type", None),
    (dict(raw=b'{"state": "HIGH"}', content_type=None), 415, "unsupported_media_type", None),
    (dict(raw=b'{"state": "HIGH", "pad": "' + b"x" * 1100 + b'"}'), 413, "body_too_large", None),
    (dict(json_body={"state": "HIGH", "colour": "red"}), 400, "unknown_field", "colour"),
    (dict(json_body={"State": "HIGH"}), 400, "unknown_field", "State"),
    (dict(json_body={}), 400, "missing_field", "state"),
    (dict(json_body={"state": "ON"}), 400, "invalid_value", "state"),
    (dict(json_body={"state": "high"}), 400, "invalid_value", "state"),
    (dict(json_body={"state": 1}), 400, "invalid_value", "state"),
    (dict(json_body={"state": None}), 400, "invalid_value", "state"),
    (dict(json_body={"state": ["HIGH"]}), 400, "invalid_value", "state"),
    (dict(json_body={"state": "HIGH", "pulse_ms": "100"}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": 0}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": -5}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": 1.5}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": True}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": 86400001}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": 10 ** 30}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "LOW", "pulse_ms": 100}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "TOGGLE", "pulse_ms": 100}), 400, "invalid_value", "pulse_ms"),
    (dict(json_body={"state": "HIGH", "pulse_ms": None}), 400, "invalid_value", "pulse_ms"),
])
def test_bad_switch_bodies(api, kw, status, error, field):
    kw.setdefault("token", OP)
    refused(api, "body", "POST", R1, status, error, field, **kw)


@pytest.mark.parametrize("body, status, error, field", [
    ({}, 400, "missing_field", "relays"),
    ({"relays": {}}, 400, "invalid_value", "relays"),
    ({"relays": ["r1"]}, 400, "invalid_value", "relays"),
    ({"relays": "r1=HIGH"}, 400, "invalid_value", "relays"),
    ({"relays": {"r1": "TOGGLE"}}, 400, "invalid_value", "relays.r1"),
    ({"relays": {"r1": True}}, 400, "invalid_value", "relays.r1"),
    ({"relays": {"r1": "HIGH", "r2": "on"}}, 400, "invalid_value", "relays.r2"),
    ({"relays": {"r1": "HIGH", "nope": "HIGH"}}, 400, "unknown_relay", "relays.nope"),
    ({"relays": {"r1": "HIGH"}, "force": True}, 400, "unknown_field", "force"),
])
def test_bad_bulk_bodies(api, body, status, error, field):
    refused(api, "body", "POST", "/gpio", status, error, field, json_body=body, token=OP)


def test_unknown_relay_is_404_naming_the_relay(api):
    refused(api, "body", "GET", "/gpio/nope", 404, "unknown_relay", "relay", token=OP)
    refused(api, "body", "POST", "/gpio/nope", 404, "unknown_relay", "relay",
            json_body={"state": "HIGH"}, token=OP)
    refused(api, "body", "POST", "/gpio/r%31", 404, "unknown_relay", "relay",
            json_body={"state": "HIGH"}, token=OP)


def test_admin_body_must_be_empty_or_an_empty_object(api):
    assert api.request("POST", "/config/reload", token=ADMIN).status == 202
    assert api.post("/config/reload", {}, ADMIN).status == 202
    refused(api, "body", "POST", "/config/reload", 400, "unknown_field", "force",
            json_body={"force": True}, token=ADMIN)
    refused(api, "body", "POST", "/ota/check", 415, "unsupported_media_type",
            raw=b"now", content_type="text/plain", token=ADMIN)


# ---- protocol ----

def _post_head(path, length, extra=b""):
    return (b"POST " + path.encode() + b" HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer "
            + OP.encode() + b"\r\nContent-Type: application/json\r\n" + extra
            + (b"Content-Length: %d\r\n" % length if length is not None else b"") + b"\r\n")


def test_declared_length_over_the_transport_cap_is_refused_unread(api):
    body = b'{"state": "HIGH", "pad": "' + b"x" * 20000 + b'"}'
    a = refused(api, "protocol", "POST", R1, 413, "body_too_large", raw=body, token=OP)
    assert "1024" in a.json["message"]


def test_chunked_body_needs_a_length(api):
    data = _post_head(R1, None, b"Transfer-Encoding: chunked\r\n") + b'11\r\n{"state": "HIGH"}\r\n0\r\n\r\n'
    refused_raw(api, "protocol", data, 411, "length_required")


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /gpio HTTP/1.0\r\nno colon here\r\n\r\n",
    b"POST /gpio/r1 HTTP/1.0\r\nContent-Length: twelve\r\n\r\n",
    b"POST /gpio/r1 HTTP/1.0\r\nContent-Length: +17\r\n\r\n{\"state\": \"HIGH\"}",
    b"GET /gpio\r\n\r\n",
    b"GET /gpio HTTP/1.0 extra\r\n\r\n",
    b"\xff\xfe /gpio HTTP/1.0\r\n\r\n",
])
def test_unparseable_requests_are_400(api, data):
    refused_raw(api, "protocol", data, 400, "bad_request")


def test_negative_content_length_is_refused(api):
    refused_raw(api, "protocol", _post_head(R1, -1) + b'{"state": "HIGH"}', 400, "bad_request")
    assert api.get("/health").status == 200


def test_too_many_headers_are_refused(api):
    # each line is short, together they are over the 6 KB head budget
    head = b"".join(b"X-Filler-%03d: %s\r\n" % (i, b"v" * 80) for i in range(120))
    refused_raw(api, "protocol", b"GET /gpio HTTP/1.0\r\n" + head + b"\r\n", 431,
                "head_too_large")
    # many short lines: the count, not the size, is over
    head = b"".join(b"X-%d: v\r\n" % i for i in range(40))
    refused_raw(api, "protocol", b"GET /gpio HTTP/1.0\r\n" + head + b"\r\n", 431,
                "head_too_large")
    # at the limit: served
    head = b"".join(b"X-%d: v\r\n" % i for i in range(32))
    st, doc, _ = api.raw(b"GET /health HTTP/1.0\r\n" + head + b"\r\n")
    assert st == 200, doc


def test_an_oversized_header_line_is_431(api):
    refused_raw(api, "protocol", b"GET /gpio HTTP/1.0\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
                431, "head_too_large")


def test_an_endless_header_line_is_cut_off(api):
    before = api.relays()
    heap = api.settle()["heap_free"]  # a write still waiting would be freed during the measure
    for _ in range(5):
        st, doc, out = api.raw(b"GET /gpio HTTP/1.0\r\nX-Endless: " + b"a" * 200000)
        # answered 431 after reading a few KB, or reset while we were still sending
        assert st in (431, None), out[:200]
        TALLY.add("protocol", st in (431, None), st or "reset")
    assert api.relays() == before
    assert api.get("/health").status == 200
    assert heap - api.api_state()["heap_free"] < 1024


def test_unknown_route_and_method(api):
    refused(api, "protocol", "GET", "/gpio/r1/extra", 404, "not_found", token=OP)
    refused(api, "protocol", "GET", "/admin", 404, "not_found")
    refused(api, "protocol", "DELETE", "/gpio/r1", 405, "method_not_allowed", token=OP)
    refused(api, "protocol", "PUT", "/gpio", 405, "method_not_allowed", token=OP)
    refused(api, "protocol", "OPTIONS", "/gpio", 405, "method_not_allowed")


def test_head_answers_without_a_body(api):
    a = api.request("HEAD", "/health")
    assert a.status == 200 and a.raw == b""


def test_a_stalled_client_loses_its_connection_and_others_are_served(tmp_path):
    s = DeviceApiServer(tmp_path, timeout_s=1).start()
    try:
        stalled = socket.create_connection(("127.0.0.1", s.port), 5)
        stalled.sendall(_post_head(R1, 100) + b'{"state": ')  # 100 bytes promised, 10 sent
        t0 = time.monotonic()
        assert s.get("/health").status == 200
        assert s.get("/gpio", OP).status == 200
        assert time.monotonic() - t0 < 0.9
        stalled.settimeout(4)
        assert stalled.recv(100) == b""  # closed by the server, no answer
        stalled.close()
        assert s.api_state()["connection_errors"] == 1
        assert s.board()["states"]["r1"] is False
    finally:
        s.stop()


# ---- admin actions ----

def test_admin_actions_call_the_controller(api):
    before = api.calls()
    a = api.get("/config", ADMIN)
    assert a.status == 200 and set(a.json["relays"]) == set(NAMES)
    assert api.post("/config/reload", {}, ADMIN).status == 202
    a = api.post("/ota/check", {}, ADMIN)
    assert a.status == 200 and a.json == {"update_available": False}
    after = api.calls()
    assert {k: after[k] - before[k] for k in after} == {"get_config": 1, "reload_config": 1,
                                                        "check_ota": 1}


def test_admin_action_failing_or_missing(api):
    api.sim(ota="fail")
    try:
        a = api.post("/ota/check", {}, ADMIN)
        assert a.status == 500 and a.json["error"] == "action_failed" and "OSError" in a.json["message"]
    finally:
        api.sim(ota="ok")
    api.sim(check_ota=False)
    try:
        a = api.post("/ota/check", {}, ADMIN)
        assert a.status == 501 and a.json["error"] == "not_available"
    finally:
        api.sim(check_ota=True)


def test_error_answers_are_json_with_error_and_message(api):
    a = api.request("POST", R1, raw=json.dumps({"state": "HIGH"}).encode())  # no token
    assert a.status == 401 and a.headers["WWW-Authenticate"] == "Bearer"
    assert set(a.json) == {"error", "message"}


def test_no_heap_kept_per_request(api):
    # tables are bounded (rate-limit keys, metric series): a steady load keeps no heap
    view = token("scraper", "viewer")

    def round_trip():
        assert api.get("/health").status == 200
        assert api.get("/gpio", OP).status == 200
        assert api.post("/gpio/r1", {"state": "TOGGLE"}, OP).status == 200
        assert api.get("/gpio/r1", "garbage").status == 401
        assert api.post("/gpio/r1", {"state": "ON"}, OP).status == 400
        assert api.get("/metrics", view).status == 200

    for _ in range(5):  # first use: series, buckets, interned names
        round_trip()
    # measured with no deferred write waiting: the audit batch (500 ms) and the coalesced
    # relays.json write (persist_min_ms, 1 s in the test server)
    b = api.settle()
    for _ in range(40):
        round_trip()
    a = api.settle()
    before, after = b["heap_free"], a["heap_free"]
    assert before - after < 1024, [(k, b[k], a[k]) for k in sorted(a) if a[k] != b[k]]
