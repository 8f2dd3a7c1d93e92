"""Tokens for the device REST API, minted by the platform with the key of the device's config
(api.jwt): they verify with that key, under the device's own validator (iotlib/jwt_validator.py,
which runs on CPython too); tenant scoping; refusals."""

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time

from platform_harness import MIN_CONFIG, ROOT, dev_path

sys.path.insert(0, os.path.join(ROOT, "python"))
from iotlib.jwt_validator import JWTValidator, check_tenancy  # noqa: E402

ISSUER = "https://platform.test/relays"


def api_config(key=None, **api):
    cfg = json.loads(json.dumps(MIN_CONFIG))
    a = {"jwt": {"key": key or secrets.token_hex(32), "issuer": ISSUER, "audience": "pico-aud"}}
    a.update(api)
    cfg["api"] = a
    return cfg


def decode(token):
    def part(seg):
        return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    h, p, _ = token.split(".")
    return part(h), part(p)


def mint(server, dev, body, token=None, **kw):
    if token is None:
        return server.op("POST", dev.op_path("api-tokens"), json_body=body, **kw)
    return server.call("POST", dev.op_path("api-tokens"), json_body=body, token=token, **kw)


def test_minted_token_verifies_with_the_config_key(server, fleet):
    cfg = api_config(roles={"switcher": {"permissions": ["relays:write"]}})
    key = cfg["api"]["jwt"]["key"]
    dev = fleet.device(config=cfg)
    before = int(time.time())
    r = mint(server, dev, {"role": "operator", "relays": ["pump"], "ttl_s": 600, "sub": "alice"})
    assert r.status == 201, r
    assert r.headers["Cache-Control"] == "no-store"
    token = r.json()["token"]
    header, claims = decode(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    signing, sig = token.rsplit(".", 1)
    want = base64.urlsafe_b64encode(hmac.new(bytes.fromhex(key), signing.encode(),
                                             hashlib.sha256).digest()).rstrip(b"=").decode()
    assert hmac.compare_digest(sig, want)
    assert claims["iss"] == ISSUER and claims["aud"] == "pico-aud"
    assert (claims["sub"], claims["role"], claims["relays"]) == ("alice", "operator", ["pump"])
    assert (claims["tenant"], claims["namespace"]) == (dev.tenant, dev.namespace)
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 600 == r.json()["expires_at"]
    # the device's validator takes it, with the device's tenancy check
    v = JWTValidator(bytes.fromhex(key), ISSUER, "pico-aud", time.time)
    check_tenancy(v.validate(token), dev.tenant, dev.namespace)
    # another key does not
    other = JWTValidator(bytes.fromhex(secrets.token_hex(32)), ISSUER, "pico-aud", time.time)
    try:
        other.validate(token)
        raise AssertionError("a token verified with another key")
    except Exception as e:
        assert getattr(e, "reason", None) == "bad_signature", e
    # defaults: no relay limit, subject "operator", an hour; a role from the config's api.roles
    r = mint(server, dev, {"role": "switcher"})
    assert r.status == 201, r
    _, claims = decode(r.json()["token"])
    assert "relays" not in claims and claims["sub"] == "operator" and claims["role"] == "switcher"
    assert claims["exp"] - claims["iat"] == 3600


def test_default_lifetime_follows_the_config_and_a_new_key_signs(server, fleet):
    cfg = api_config(token_ttl_s=900)
    dev = fleet.device(config=cfg)
    _, claims = decode(mint(server, dev, {"role": "viewer"}).json()["token"])
    assert claims["exp"] - claims["iat"] == 900
    new = api_config()
    assert server.op("PUT", dev.op_path("config"), json_body=new).status == 200
    token = mint(server, dev, {"role": "admin"}).json()["token"]
    JWTValidator(bytes.fromhex(new["api"]["jwt"]["key"]), ISSUER, "pico-aud",
                 time.time).validate(token)
    try:
        JWTValidator(bytes.fromhex(cfg["api"]["jwt"]["key"]), ISSUER, "pico-aud",
                     time.time).validate(token)
        raise AssertionError("the old key still verifies")
    except Exception as e:
        assert getattr(e, "reason", None) == "bad_signature", e


def test_tenant_scoping(server, fleet):
    mine = fleet.device(config=api_config())
    other = fleet.device(config=api_config())
    tok = server.op("POST", "/v1/operator/tenants/%s/tokens" % mine.tenant).json()["token"]
    r = mint(server, mine, {"role": "operator"}, token=tok)
    assert r.status == 201, r
    _, claims = decode(r.json()["token"])
    assert claims["sub"] == "operator@" + mine.tenant and claims["tenant"] == mine.tenant
    r = mint(server, other, {"role": "operator"}, token=tok)
    assert r.status == 403 and r.json()["field"] == "tenant", r
    # the other tenant's device named under my tenant: not found
    r = server.call("POST", dev_path(mine.tenant, mine.namespace, other.device_id, "api-tokens"),
                    json_body={"role": "viewer"}, token=tok)
    assert r.status == 404 and r.json()["field"] == "device_id", r
    for bad in (None, "not-an-operator-token"):
        r = server.call("POST", mine.op_path("api-tokens"), json_body={"role": "viewer"},
                        token=bad)
        assert r.status == 401, r


def test_no_api_key_is_a_conflict(server, fleet):
    for dev in (fleet.device(config=MIN_CONFIG), fleet.device(config=None)):
        r = mint(server, dev, {"role": "viewer"})
        assert r.status == 409 and r.json()["error"] == "no_api_key", r
        assert "api.jwt" in r.json()["message"]
    dev = fleet.device(config=api_config())
    bad = api_config()
    bad["relays"]["pump"]["pin"] = 25
    assert server.op("PUT", dev.op_path("config") + "?force=1", json_body=bad).status == 200
    r = mint(server, dev, {"role": "viewer"})
    assert r.status == 409 and r.json()["error"] == "config_invalid", r


def test_validation_errors(server, fleet):
    dev = fleet.device(config=api_config())
    for body, status, error, field in (
            ({}, 400, "invalid_request", "role"),
            ({"role": "viewer", "scope": "all"}, 400, "invalid_request", "scope"),
            ({"role": "Admin"}, 400, "invalid_request", "role"),
            ({"role": 1}, 400, "invalid_request", "role"),
            ({"role": "viewer", "ttl_s": 86401}, 400, "invalid_request", "ttl_s"),
            ({"role": "viewer", "ttl_s": 59}, 400, "invalid_request", "ttl_s"),
            ({"role": "viewer", "ttl_s": "600"}, 400, "invalid_request", "ttl_s"),
            ({"role": "viewer", "relays": []}, 400, "invalid_request", "relays"),
            ({"role": "viewer", "relays": ["pump", "pump"]}, 400, "invalid_request", "relays"),
            ({"role": "viewer", "relays": ["Pump"]}, 400, "invalid_request", "relays[0]"),
            ({"role": "viewer", "sub": ""}, 400, "invalid_request", "sub"),
            ({"role": "viewer", "sub": "two words"}, 400, "invalid_request", "sub"),
            ({"role": "ghost"}, 422, "unknown_role", "role"),
            ({"role": "viewer", "relays": ["pump", "ghost"]}, 422, "unknown_relay",
             "relays[1]")):
        r = mint(server, dev, body)
        assert (r.status, r.json()["error"], r.json().get("field")) == (status, error, field), \
            (body, r)
    r = server.call("POST", dev.op_path("api-tokens"), data=b'{"role": "viewer"}',
                    content_type="text/plain", token=server.token)
    assert r.status == 415
