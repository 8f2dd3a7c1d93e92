"""The request path's caches seen from outside: a cached token is still judged against the
clock and against the current key, GET /gpio follows every relay change (core-driven ones
included) and per-token relay scoping, and buffered audit lines reach the file."""

import time

from rest_harness import KEY, token

OP = token("alice", "operator")


def test_cached_token_expires_with_the_clock(api):
    t = token("cache-exp", "operator", exp=int(time.time()) + 5)
    assert api.get("/gpio", t).status == 200
    assert api.get("/gpio", t).status == 200  # served from the cache
    api.sim(offset_s=120)  # past exp + leeway
    try:
        a = api.get("/gpio", t)
        assert a.status == 401 and a.json["error"] == "expired", a
    finally:
        api.sim(offset_s=0)
    assert api.get("/gpio", t).status == 200


def test_key_change_invalidates_cached_tokens(api):
    t = token("cache-key", "operator")
    assert api.get("/gpio", t).status == 200
    api.sim(jwt_key="n" * 32)
    try:
        a = api.get("/gpio", t)
        assert a.status == 401 and a.json["error"] == "bad_signature", a
        assert api.get("/gpio", token("cache-key", "operator", key=b"n" * 32)).status == 200
    finally:
        api.sim(jwt_key=KEY.decode())
    assert api.get("/gpio", t).status == 200


def relays(api, tok=OP):
    a = api.get("/gpio", tok)
    assert a.status == 200, a
    return {r["name"]: r for r in a.json["relays"]}


def test_relay_list_follows_pulse_expiry(api):
    assert api.post("/gpio/r1", {"state": "LOW"}, OP).status == 200
    before = relays(api)["r1"]
    a = api.post("/gpio/r1", {"state": "HIGH", "pulse_ms": 150}, OP)
    assert a.status == 200
    on = relays(api)["r1"]
    assert on["state"] == "HIGH" and on["switches"] == before["switches"] + 1
    api.wait_board(lambda b: b["pins"]["2"] == 0, "the pulse to end", 3)
    off = relays(api)["r1"]  # changed by the core, no request in between
    assert off["state"] == "LOW" and off["switches"] == on["switches"] + 1


def test_relay_list_follows_deferred_change_over(api):
    assert api.post("/gpio", {"relays": {"fwd": "LOW", "rev": "LOW"}}, OP).status == 200
    assert api.post("/gpio/fwd", {"state": "HIGH"}, OP).status == 200
    assert api.post("/gpio/rev", {"state": "HIGH"}, OP).status == 202
    assert relays(api)["rev"]["state"] == "LOW"
    api.wait_board(lambda b: b["states"]["rev"], "rev on after the dead time", 3)
    got = relays(api)
    assert got["rev"]["state"] == "HIGH" and got["fwd"]["state"] == "LOW"
    assert api.post("/gpio", {"relays": {"fwd": "LOW", "rev": "LOW"}}, OP).status == 200


def test_relay_list_keeps_per_token_scope(api):
    full = relays(api)
    scoped = token("scoped", "operator", relays=["r1"])
    assert set(relays(api, scoped)) == {"r1"}
    assert set(relays(api)) == set(full)  # the full list is not replaced by the scoped one
    assert set(relays(api, scoped)) == {"r1"}


def test_audit_lines_reach_the_file(api):
    assert api.post("/gpio/r1", {"state": "LOW"}, OP).status == 200
    api.settle(state_write=False)  # that line (if any) on file too
    n = len(api.audit())
    for level in ("HIGH", "LOW") * 3:
        assert api.post("/gpio/r1", {"state": level}, OP).status == 200
    api.settle(state_write=False)  # batches wait at most 500 ms
    assert [e["new"] for e in api.audit()[n:]] == [True, False] * 3
