"""ServiceDiscovery: proof of the device key, replay and clock checks, the JWT it hands out."""

import base64
import json
import time

from platform_harness import register_body


def _claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_good_proof_returns_identity_services_and_token(server, fleet):
    dev = fleet.device()
    before = int(time.time())
    r = server.call("POST", "/v1/devices/register", json_body=register_body(dev.device_id, dev.key))
    assert r.status == 200, r
    assert r.headers["Cache-Control"] == "no-store"
    b = r.json()
    assert (b["device_id"], b["tenant"], b["namespace"]) == (dev.device_id, dev.tenant,
                                                             dev.namespace)
    assert b["token_type"] == "Bearer"
    assert b["expires_in"] == 900 and b["expires_at"] >= before + 900
    assert b["services"]["config"] == server.url + "/v1/config"
    assert b["services"]["ota"] == server.url + "/v1/ota"
    header = json.loads(base64.urlsafe_b64decode(b["token"].split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}
    c = _claims(b["token"])
    assert c["sub"] == dev.device_id and c["tenant"] == dev.tenant
    assert c["namespace"] == dev.namespace and c["role"] == "device"
    assert c["aud"] == "relays-device" and c["iss"] == "relays-reference-platform"
    assert c["exp"] - c["iat"] == 900
    dev.token = b["token"]
    assert dev.call("GET", "/v1/config").status == 200


def test_bad_proof(server, fleet):
    dev = fleet.device()
    body = register_body(dev.device_id, "not-the-device-key")
    r = server.call("POST", "/v1/devices/register", json_body=body)
    assert r.status == 401 and r.json()["error"] == "bad_proof"
    assert r.json()["field"] == "proof"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    # proof computed over another nonce than the one sent
    body = register_body(dev.device_id, dev.key)
    body["nonce"] = "someothernonce"
    assert server.call("POST", "/v1/devices/register", json_body=body).json()["error"] == "bad_proof"


def test_replayed_nonce_is_refused(server, fleet):
    dev = fleet.device()
    body = register_body(dev.device_id, dev.key)
    assert server.call("POST", "/v1/devices/register", json_body=body).status == 200
    r = server.call("POST", "/v1/devices/register", json_body=body)
    assert r.status == 401 and r.json()["error"] == "nonce_reused"
    # the same nonce is still fine for a different device
    other = fleet.device()
    body2 = register_body(other.device_id, other.key, nonce=body["nonce"])
    assert server.call("POST", "/v1/devices/register", json_body=body2).status == 200


def test_stale_timestamp_gives_server_time(server, fleet):
    dev = fleet.device()
    now = int(time.time())
    for ts in (now - 1000, now + 1000, 1609459200):   # last one: an RP2040 RTC never set
        r = server.call("POST", "/v1/devices/register",
                        json_body=register_body(dev.device_id, dev.key, ts=ts))
        assert r.status == 401, r
        b = r.json()
        assert b["error"] == "stale_timestamp" and b["field"] == "timestamp"
        assert abs(b["server_time"] - now) < 5
    # retrying with the server's clock works
    r = server.call("POST", "/v1/devices/register",
                    json_body=register_body(dev.device_id, dev.key, ts=b["server_time"]))
    assert r.status == 200


def test_unknown_device_answers_like_a_bad_proof(server, fleet):
    # device ids cannot be enumerated: an id nobody provisioned and a provisioned id with a
    # wrong proof get the same status, code, field and message (before: unknown_device)
    dev = fleet.device()
    unknown = server.call("POST", "/v1/devices/register",
                          json_body=register_body("pico-nobody", "k" * 32))
    wrong = server.call("POST", "/v1/devices/register",
                        json_body=register_body(dev.device_id, "k" * 32))
    assert unknown.status == wrong.status == 401
    assert unknown.json() == wrong.json(), (unknown.json(), wrong.json())
    assert unknown.json()["error"] == "bad_proof" and unknown.json()["field"] == "proof"
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]
    # a stale clock is judged first, for every id alike: it tells nothing either
    stale = [server.call("POST", "/v1/devices/register",
                         json_body=register_body(d, "k" * 32, ts=int(time.time()) - 1000)).json()
             for d in ("pico-nobody", dev.device_id)]
    for b in stale:
        b.pop("server_time")
    assert stale[0] == stale[1] and stale[0]["error"] == "stale_timestamp"


def test_register_rejects_malformed_bodies(server, fleet):
    dev = fleet.device()
    good = register_body(dev.device_id, dev.key)
    cases = [
        (dict(good, extra=1), "extra"),
        ({k: v for k, v in good.items() if k != "nonce"}, "nonce"),
        (dict(good, timestamp="1700000000"), "timestamp"),
        (dict(good, proof=good["proof"].upper()), "proof"),
        (dict(good, nonce="short"), "nonce"),
        (dict(good, device_id="bad id"), "device_id"),
    ]
    for body, field in cases:
        r = server.call("POST", "/v1/devices/register", json_body=body)
        assert r.status == 400, (body, r)
        assert r.json()["field"] == field, (body, r.json())


def test_token_checks(server, fleet):
    dev = fleet.device()
    dev.register()
    r = server.call("GET", "/v1/config")
    assert r.status == 401 and r.json()["error"] == "missing_token"
    r = server.call("GET", "/v1/config", headers={"Authorization": "Basic abc"})
    assert r.status == 401 and r.json()["error"] == "invalid_token"
    h, p, s = dev.token.split(".")
    # alg "none" and a signature-less token are refused
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    for bad in (none_header + "." + p + ".", h + "." + p + ".", "a.b", "x.y.z",
                h + "." + p + "." + s[:-2] + ("AA" if s[-2:] != "AA" else "BB")):
        r = server.call("GET", "/v1/config", token=bad)
        assert r.status == 401 and r.json()["error"] == "invalid_token", (bad, r)
    # the operator token is not a device token
    from platform_harness import OPERATOR_TOKEN
    assert server.call("GET", "/v1/config", token=OPERATOR_TOKEN).status == 401


def test_token_expiry_and_refresh_by_registering_again(fresh_server):
    from platform_harness import Fleet
    srv = fresh_server(["--token-ttl", "2"])
    dev = Fleet(srv).device()
    first = dev.register()
    assert first["expires_in"] == 2
    assert dev.call("GET", "/v1/config").status == 200
    deadline = time.time() + 10
    while time.time() < first["expires_at"] + 1 and time.time() < deadline:
        time.sleep(0.25)
    r = dev.call("GET", "/v1/config")
    assert r.status == 401 and r.json()["error"] == "token_expired", r
    second = dev.register()
    assert second["token"] != first["token"]
    assert dev.call("GET", "/v1/config").status == 200


def test_deleted_device_loses_access(server, fleet):
    dev = fleet.device()
    dev.register()
    assert dev.call("GET", "/v1/state/desired").status == 200
    assert server.op("DELETE", dev.op_path()).status == 204
    r = dev.call("GET", "/v1/state/desired")
    assert r.status == 401 and r.json()["error"] == "invalid_token"
    r = server.call("POST", "/v1/devices/register", json_body=register_body(dev.device_id, dev.key))
    assert r.status == 401 and r.json()["error"] == "bad_proof"


def test_cross_tenant_lookups_answer_like_missing_ones(server, fleet):
    # a tenant operator cannot tell another tenant's device or tenant from one that does not
    # exist: same status, code and field; the message only repeats what the caller sent
    mine = fleet.device()
    other = fleet.device()
    tok = server.op("POST", "/v1/operator/tenants/%s/tokens" % mine.tenant).json()["token"]
    from platform_harness import dev_path

    def body(tenant, device_id):
        r = server.call("GET", dev_path(tenant, mine.namespace, device_id), token=tok)
        b = r.json()
        b["message"] = b["message"].replace(device_id, "<id>").replace(tenant, "<tenant>")
        return r.status, b

    assert body(mine.tenant, other.device_id) == body(mine.tenant, "pico-never-made") == \
        (404, {"error": "not_found", "field": "device_id",
               "message": "no device '<id>' in <tenant>/%s" % mine.namespace})
    theirs = body(other.tenant, other.device_id)
    assert theirs == body("t-never-made", other.device_id)
    assert theirs[0] == 403 and theirs[1]["field"] == "tenant"
