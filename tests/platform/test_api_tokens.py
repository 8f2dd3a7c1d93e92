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
    r = mint(server, dev, {"role": "operator", "relays": ["pump"], "ttl_s": 600})
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
    assert (claims["sub"], claims["role"], claims["relays"]) == ("operator", "operator", ["pump"])
    assert claims["jti"] == r.json()["jti"] and len(claims["jti"]) >= 16
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
    tok_id = hashlib.sha256(tok.encode()).hexdigest()[:8]
    assert claims["sub"] == "operator@%s/%s" % (mine.tenant, tok_id) == r.json()["sub"]
    assert claims["tenant"] == mine.tenant
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


# ---- a hostile tenant operator (the risk: any sub, any role, 24 h, none revocable) ----

def tenant_token(server, tenant, role=None):
    path = "/v1/operator/tenants/%s/tokens" % tenant + ("?role=" + role if role else "")
    r = server.op("POST", path)
    assert r.status == 201, r
    return r.json()["token"]


def test_sub_is_bound_to_the_caller(server, fleet):
    # before: a tenant token minted {"sub": "operator"}, the admin's subject, and got it
    dev = fleet.device(config=api_config())
    tok = tenant_token(server, dev.tenant)
    for forged in ("operator", "operator@" + dev.tenant, "alice"):
        r = mint(server, dev, {"role": "viewer", "sub": forged}, token=tok)
        assert (r.status, r.json()["error"], r.json()["field"]) == (403, "sub_not_allowed", "sub"), r
    r = mint(server, dev, {"role": "viewer", "sub": "alice"})   # the admin token too
    assert r.status == 403 and r.json()["error"] == "sub_not_allowed", r
    # naming its own subject is fine; two tenant tokens are two subjects
    own = mint(server, dev, {"role": "viewer"}, token=tok).json()["sub"]
    assert mint(server, dev, {"role": "viewer", "sub": own}, token=tok).status == 201
    other = mint(server, dev, {"role": "viewer"}, token=tenant_token(server, dev.tenant))
    assert other.json()["sub"] != own and other.json()["sub"].startswith("operator@" + dev.tenant)


def test_role_is_never_above_the_callers(server, fleet):
    # before: any tenant token minted "admin" device-API tokens
    cfg = api_config(roles={"superuser": {"permissions": ["admin"]},
                            "switcher": {"permissions": ["relays:write"]},
                            "reader": {"permissions": ["relays:read"]}})
    dev = fleet.device(config=cfg)
    tok = tenant_token(server, dev.tenant)   # default: operator
    for role in ("admin", "superuser"):
        r = mint(server, dev, {"role": role}, token=tok)
        assert (r.status, r.json()["error"], r.json()["field"]) == (403, "role_too_high", "role"), r
    for role in ("operator", "viewer", "switcher", "reader"):
        assert mint(server, dev, {"role": role}, token=tok).status == 201, role
    viewer = tenant_token(server, dev.tenant, "viewer")
    for role in ("operator", "switcher", "admin"):
        assert mint(server, dev, {"role": role}, token=viewer).json()["error"] == "role_too_high"
    assert mint(server, dev, {"role": "reader"}, token=viewer).status == 201
    r = server.op("POST", "/v1/operator/tenants/%s/tokens" % dev.tenant)
    assert r.json()["role"] == "operator", r      # the default
    admin = tenant_token(server, dev.tenant, "admin")
    assert mint(server, dev, {"role": "superuser"}, token=admin).status == 201
    assert mint(server, dev, {"role": "admin"}).status == 201   # the admin token
    r = server.op("POST", "/v1/operator/tenants/%s/tokens?role=root" % dev.tenant)
    assert r.status == 400 and r.json()["field"] == "role", r


def test_lifetime_is_capped(server, fleet, fresh_server):
    # before: ttl_s 86400 gave a day-long token
    dev = fleet.device(config=api_config(token_ttl_s=86400))
    r = mint(server, dev, {"role": "viewer", "ttl_s": 86400})
    assert (r.status, r.json()["error"], r.json()["field"]) == (422, "ttl_too_long", "ttl_s"), r
    assert mint(server, dev, {"role": "viewer", "ttl_s": 3601}).status == 422
    _, claims = decode(mint(server, dev, {"role": "viewer"}).json()["token"])
    assert claims["exp"] - claims["iat"] == 3600     # the config's day is cut to the cap
    # the cap is the platform's setting
    srv = fresh_server(["--api-token-max-ttl", "300"])
    from platform_harness import Fleet
    d2 = Fleet(srv).device(config=api_config())
    assert mint(srv, d2, {"role": "viewer", "ttl_s": 301}).json()["error"] == "ttl_too_long"
    _, claims = decode(mint(srv, d2, {"role": "viewer"}).json()["token"])
    assert claims["exp"] - claims["iat"] == 300


def revoke(server, dev, jti, token=None):
    path = dev.op_path("api-tokens/revoke")
    if token is None:
        return server.op("POST", path, json_body={"jti": jti})
    return server.call("POST", path, json_body={"jti": jti}, token=token)


def device_validator(cfg):
    j = cfg["api"]["jwt"]
    v = JWTValidator(bytes.fromhex(j["key"]), j["issuer"], j["audience"], time.time)
    v.set_revoked(cfg["api"].get("revoked", ()))
    return v


def test_revocation_reaches_the_device_config(server, fleet):
    # before: no jti, no way to revoke a token short of rotating the key
    cfg = api_config()
    dev = fleet.device(config=cfg)
    bad, good = (mint(server, dev, {"role": "operator"}).json() for _ in range(2))
    assert bad["jti"] != good["jti"]
    v0 = server.op("GET", dev.op_path("config")).json()["version"]
    r = revoke(server, dev, bad["jti"])
    assert r.status == 200, r
    assert r.json()["config_version"] == v0 + 1 and r.json()["exp"] == bad["expires_at"]
    pushed = server.op("GET", dev.op_path("config")).json()
    assert pushed["version"] == v0 + 1 and pushed["valid"] is True
    assert pushed["config"]["api"]["revoked"] == [{"jti": bad["jti"], "exp": bad["expires_at"]}]
    # the device's validator with that config refuses the revoked token only
    v = device_validator(pushed["config"])
    try:
        v.validate(bad["token"])
        raise AssertionError("a revoked token was accepted")
    except Exception as e:
        assert getattr(e, "reason", None) == "revoked", e
    assert v.validate(good["token"])["jti"] == good["jti"]
    # revoking it again changes nothing; an operator's next config keeps the list
    again = revoke(server, dev, bad["jti"])
    assert again.status == 200 and again.json()["config_version"] == v0 + 1
    new = api_config(key=cfg["api"]["jwt"]["key"])
    new["api"]["revoked"] = []   # the platform's list wins over the operator's
    assert server.op("PUT", dev.op_path("config"), json_body=new).status == 200
    kept = server.op("GET", dev.op_path("config")).json()["config"]["api"]["revoked"]
    assert kept == [{"jti": bad["jti"], "exp": bad["expires_at"]}]
    # unknown jti, another device's jti, another tenant's operator: refused
    assert revoke(server, dev, "A" * 22).status == 404
    other = fleet.device(config=api_config())
    r = revoke(server, other, good["jti"])
    assert r.status == 404 and r.json()["field"] == "jti", r
    tok = tenant_token(server, other.tenant)
    assert revoke(server, dev, good["jti"], token=tok).status == 403
    assert revoke(server, dev, "short").status == 400


def test_revocation_list_is_bounded_and_pruned(server, fleet):
    from reference_platform.device_tokens import MAX_REVOKED
    dev = fleet.device(config=api_config())
    jtis = [mint(server, dev, {"role": "viewer", "ttl_s": 60 + i}).json()["jti"]
            for i in range(MAX_REVOKED + 1)]
    for jti in jtis[:MAX_REVOKED]:
        assert revoke(server, dev, jti).status == 200
    r = revoke(server, dev, jtis[-1])
    assert (r.status, r.json()["error"]) == (409, "revocation_list_full"), r
    cfg = server.op("GET", dev.op_path("config")).json()["config"]
    assert len(cfg["api"]["revoked"]) == MAX_REVOKED
    # soonest expiry first; what has expired is not pushed again (the store, one minute later)
    exps = [e["exp"] for e in cfg["api"]["revoked"]]
    assert exps == sorted(exps)
    from reference_platform.device_tokens import DeviceTokens
    from reference_platform.store import Store
    tokens = DeviceTokens(Store(server.db))   # read-only use: no revocation is written
    later = tokens.with_revocations(dev.device_id, cfg, exps[0] + 5)
    assert len(later["api"]["revoked"]) < MAX_REVOKED
    assert all(e["exp"] > exps[0] + 5 for e in later["api"]["revoked"])
    assert "revoked" not in tokens.with_revocations(dev.device_id, cfg, exps[-1])["api"]
