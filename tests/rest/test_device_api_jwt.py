"""The JWT matrix through HTTP: every forged, broken, stale or foreign token is refused on a
read route and on a write route (a TOGGLE, which would move the relay if it got through),
the clock rule (503 until time is synced) and tenancy. Tokens are made here, byte by byte."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from rest_harness import KEY, b64url, claims, refused, sign, token

NOW = int(time.time())  # the matrix's tokens are made at collection, against this time


@pytest.fixture
def at_now(api):
    # the device's clock set back to NOW, so the matrix means the same however long other
    # tests in the session ran between collection and this test
    api.sim(offset_s=NOW - time.time())
    yield
    api.sim(offset_s=0)


def raw_token(header, payload, key=KEY):
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    return signing + "." + sign(signing, key)


def hs512(payload):
    signing = b64url(json.dumps({"alg": "HS512", "typ": "JWT"}).encode()) + "." + \
        b64url(json.dumps(payload).encode())
    return signing + "." + b64url(hmac.new(KEY, signing.encode(), hashlib.sha512).digest())


def unsigned(payload, alg="none", sig=""):
    return b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + \
        b64url(json.dumps(payload).encode()) + "." + sig


def tampered():
    # the signature of an operator token on an admin payload
    t = token("alice", "operator")
    h, p, s = t.split(".")
    return h + "." + b64url(json.dumps(claims("alice", "admin")).encode()) + "." + s


def swapped_header():
    t = token("alice", "operator")
    h, p, s = t.split(".")
    return b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "other"}).encode()) + "." + p + "." + s


OP = claims("alice", "operator")
OVERSIZED = token(pad="x" * 2900)  # over the 4096-byte token limit, under microdot's line limit
assert 4096 < len(OVERSIZED) < 4300, len(OVERSIZED)

# (case, Authorization header value or None, status, error, field or None)
MATRIX = [
    ("no header", None, 401, "missing_token", None),
    ("basic scheme", "Basic YWxpY2U6c2VjcmV0", 401, "missing_token", None),
    ("bearer, no token", "Bearer", 401, "missing_token", None),
    ("bearer, blank token", "Bearer    ", 401, "missing_token", None),
    ("token without scheme", token(), 401, "missing_token", None),
    ("alg none, no signature", "Bearer " + unsigned(OP), 401, "alg_not_allowed", "alg"),
    ("alg none, a signature", "Bearer " + unsigned(OP, sig=b64url(b"x" * 32)), 401,
     "alg_not_allowed", "alg"),
    ("alg None", "Bearer " + unsigned(OP, alg="None"), 401, "alg_not_allowed", "alg"),
    ("alg HS512 signed with the key", "Bearer " + hs512(OP), 401, "alg_not_allowed", "alg"),
    ("alg RS256", "Bearer " + raw_token({"alg": "RS256", "typ": "JWT"}, OP), 401,
     "alg_not_allowed", "alg"),
    ("alg hs256 lower case", "Bearer " + raw_token({"alg": "hs256"}, OP), 401,
     "alg_not_allowed", "alg"),
    ("alg missing", "Bearer " + raw_token({"typ": "JWT"}, OP), 401, "alg_not_allowed", "alg"),
    ("crit header", "Bearer " + raw_token({"alg": "HS256", "crit": ["exp"]}, OP), 401,
     "malformed", "crit"),
    ("wrong key", "Bearer " + token(key=b"another-key-of-enough-length-0123456789"), 401,
     "bad_signature", None),
    ("key with one byte changed", "Bearer " + token(key=KEY[:-1] + b"g"), 401, "bad_signature", None),
    ("tampered payload (operator -> admin)", "Bearer " + tampered(), 401, "bad_signature", None),
    ("tampered header", "Bearer " + swapped_header(), 401, "bad_signature", None),
    ("signature removed", "Bearer " + token().rsplit(".", 1)[0] + ".", 401, "bad_signature", None),
    ("signature truncated", "Bearer " + token()[:-4], 401, "bad_signature", None),
    ("token cut in half", "Bearer " + token()[:60], 401, "malformed", None),
    ("two parts", "Bearer " + ".".join(token().split(".")[:2]), 401, "malformed", None),
    ("four parts", "Bearer " + token() + ".x", 401, "malformed", None),
    ("expired", "Bearer " + token(exp=NOW - 120), 401, "expired", "exp"),
    ("expired long ago", "Bearer " + token(exp=1000, iat=900), 401, "expired", "exp"),
    ("nbf in the future", "Bearer " + token(nbf=NOW + 300), 401, "not_yet_valid", "nbf"),
    ("iat in the future", "Bearer " + token(iat=NOW + 300), 401, "not_yet_valid", "iat"),
    ("missing exp", "Bearer " + token(exp=None), 401, "missing_exp", "exp"),
    ("exp as text", "Bearer " + token(exp=str(NOW + 600)), 401, "malformed", "exp"),
    ("exp true", "Bearer " + token(exp=True), 401, "malformed", "exp"),
    ("wrong issuer", "Bearer " + token(iss="https://evil.test"), 401, "bad_issuer", "iss"),
    ("missing issuer", "Bearer " + token(iss=None), 401, "bad_issuer", "iss"),
    ("wrong audience", "Bearer " + token(aud="device-rest-2"), 401, "bad_audience", "aud"),
    ("audience list without us", "Bearer " + token(aud=["a", "b"]), 401, "bad_audience", "aud"),
    ("missing audience", "Bearer " + token(aud=None), 401, "bad_audience", "aud"),
    ("missing sub", "Bearer " + token(sub=None), 401, "missing_sub", "sub"),
    ("empty sub", "Bearer " + token(sub=""), 401, "missing_sub", "sub"),
    ("oversized token", "Bearer " + OVERSIZED, 401, "too_large", None),
    ("garbage", "Bearer not-a-jwt", 401, "malformed", None),
    ("garbage in three parts", "Bearer !!!.###.$$$", 401, "malformed", "header"),
    ("padded base64", "Bearer " + token().replace(".", "=.", 1), 401, "malformed", "header"),
    ("standard base64 alphabet", "Bearer " + base64.b64encode(b'{"alg":"HS256"}?>').decode()
     + ".e30.e30", 401, "malformed", "header"),
    ("header not JSON", "Bearer " + b64url(b"hello") + ".e30." + b64url(b"s"), 401,
     "malformed", "header"),
    ("header a JSON list", "Bearer " + b64url(b"[]") + ".e30." + b64url(b"s"), 401,
     "malformed", "header"),
    ("space inside", "Bearer " + token()[:20] + " " + token()[20:], 401, "malformed", None),
    ("another tenant", "Bearer " + token(tenant="globex"), 403, "wrong_tenant", "tenant"),
    ("no tenant claim", "Bearer " + token(tenant=None), 403, "wrong_tenant", "tenant"),
    ("another namespace", "Bearer " + token(namespace="plant-b"), 403, "wrong_namespace",
     "namespace"),
    ("another tenant's admin", "Bearer " + token("mallory", "admin", tenant="globex"), 403,
     "wrong_tenant", "tenant"),
]


@pytest.mark.parametrize("case, auth, status, error, field", MATRIX, ids=[m[0] for m in MATRIX])
def test_jwt_matrix(api, at_now, case, auth, status, error, field):
    headers = {"Authorization": auth} if auth is not None else {}
    a = refused(api, "jwt", "GET", "/gpio", status, error, field, headers=headers)
    if status == 401:
        assert a.headers.get("WWW-Authenticate") == "Bearer"
    refused(api, "jwt", "POST", "/gpio/r1", status, error, field, headers=headers,
            json_body={"state": "TOGGLE"})


def test_the_same_token_unharmed_passes(api):
    # the matrix is not refusing everything: the token it was made from works
    now = int(time.time())
    assert api.get("/gpio", token()).status == 200
    assert api.get("/gpio", token(exp=now - 10)).status == 200          # inside the 30 s leeway
    assert api.get("/gpio", token(nbf=now + 10)).status == 200
    assert api.get("/gpio", token(aud=["other", "device-rest-1"])).status == 200
    assert api.get("/gpio", headers={"Authorization": "bearer " + token()}).status == 200


def test_time_not_synced_is_503_never_200(api):
    api.sim(synced=False)
    try:
        for path, body in (("/gpio", None), ("/gpio/r1", None), ("/metrics", None)):
            refused(api, "time", "GET", path, 503, "time_not_synced", headers={
                "Authorization": "Bearer " + token("root", "admin")})
        refused(api, "time", "POST", "/gpio/r1", 503, "time_not_synced",
                json_body={"state": "TOGGLE"}, token=token())
        refused(api, "time", "POST", "/gpio", 503, "time_not_synced",
                json_body={"relays": {"r1": "HIGH"}}, token=token())
        refused(api, "time", "POST", "/ota/check", 503, "time_not_synced", token=token("root", "admin"))
        # a token that fails on its own still says why
        refused(api, "time", "GET", "/gpio", 401, "bad_signature",
                token=token(key=b"another-key-of-enough-length-0123456789"))
        refused(api, "time", "GET", "/gpio", 401, "missing_token")
        # probes need no token: they still answer
        assert api.get("/health").status == 200
        assert api.get("/ready").status == 200
    finally:
        api.sim(synced=True)
    assert api.get("/gpio", token()).status == 200


def test_clock_decides_expiry(api):
    # the device's clock, not the token's, judges exp: a step forward expires a valid token
    t = token(exp=int(time.time()) + 600)
    assert api.get("/gpio", t).status == 200
    api.sim(offset_s=3600)
    try:
        refused(api, "time", "GET", "/gpio", 401, "expired", "exp", token=t)
    finally:
        api.sim(offset_s=0)


def test_unregistered_device_accepts_no_token(api):
    api.sim(tenant=None, namespace=None)
    try:
        refused(api, "jwt", "GET", "/gpio", 403, "wrong_tenant", "tenant", token=token())
        refused(api, "jwt", "POST", "/gpio/r1", 403, "wrong_tenant", "tenant", token=token(),
                json_body={"state": "TOGGLE"})
    finally:
        api.sim(tenant="acme", namespace="plant-a")


def test_a_bad_token_with_a_large_body_gets_its_401(api):
    # the body is over the limit, but the token comes first; the unread body is drained
    refused(api, "jwt", "POST", "/gpio/r1", 401, "bad_signature",
            raw=b'{"state": "HIGH", "pad": "' + b"x" * 3000 + b'"}',
            token=token(key=b"another-key-of-enough-length-0123456789"))
