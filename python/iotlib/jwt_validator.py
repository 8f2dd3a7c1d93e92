# HS256 JWT validation for the device REST API; runs on MicroPython and CPython.
# The key comes from config and the algorithm is fixed: the token's header never
# chooses how it is checked. Failures raise TokenError(reason) with a short
# machine reason the API puts in its error JSON (docs/rest_api_security.md).
import binascii
import json

from iotlib.hmac_sha256 import Hmac, compare_digest, hmac_sha256  # noqa: F401 (API)

MAX_TOKEN_BYTES = 4096
MIN_KEY_BYTES = 32       # 256 bits, as long as the SHA-256 output
DEFAULT_LEEWAY_S = 30
CACHE_SIZE = 8           # verified tokens kept (LRU); 0 turns the cache off
_INF = float("inf")

# reason -> HTTP status; every other reason is 401
_STATUS = {"time_not_synced": 503, "wrong_tenant": 403, "wrong_namespace": 403}

MESSAGES = {
    "missing_token": "Authorization: Bearer <token> is required",
    "malformed": "the token is not a well-formed JWT",
    "too_large": "the token is longer than %d bytes" % MAX_TOKEN_BYTES,
    "alg_not_allowed": "only HS256 tokens are accepted",
    "bad_signature": "the token's signature does not verify",
    "missing_exp": "the token has no exp claim",
    "missing_sub": "the token has no sub claim",
    "bad_issuer": "the token was not issued by the configured issuer",
    "bad_audience": "the token is not meant for this device",
    "time_not_synced": "the device clock is not synced yet; tokens cannot be checked",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "wrong_tenant": "the token belongs to another tenant",
    "wrong_namespace": "the token belongs to another namespace",
    "revoked": "the token has been revoked",
}
MAX_REVOKED = 64         # config api.revoked entries; the platform caps token lifetimes so it drains


class TokenError(Exception):
    # args[0] is the reason; detail names the claim or header field when that helps
    def __init__(self, reason, detail=None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def http_status(reason):
    return _STATUS.get(reason, 401)


def b64url_encode(data):
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").replace(b"+", b"-").replace(b"/", b"_")


def b64url_decode(seg):
    # strict: no padding, only the url-safe alphabet, canonical trailing bits
    if not seg or b"=" in seg or b"+" in seg or b"/" in seg or len(seg) % 4 == 1:
        raise TokenError("malformed")
    std = seg.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(seg) % 4)
    try:
        data = binascii.a2b_base64(std)
    except ValueError:
        raise TokenError("malformed")
    # a2b_base64 skips characters outside the alphabet; re-encoding exposes them
    if b64url_encode(data) != seg:
        raise TokenError("malformed")
    return data


def _json_object(seg, what):
    try:
        obj = json.loads(b64url_decode(seg))
    except TokenError:
        raise TokenError("malformed", what)
    except Exception:  # bad JSON or bad UTF-8; the exception types differ by port
        raise TokenError("malformed", what)
    if not isinstance(obj, dict):
        raise TokenError("malformed", what)
    return obj


def _is_time(v):
    # NumericDate: an int or a finite float; True/False are not times
    t = type(v)
    return (t is int or t is float) and v == v and v != _INF and v != -_INF


def _time_claim(claims, name):
    v = claims.get(name)
    if v is not None and not _is_time(v):
        raise TokenError("malformed", name)
    return v


class JWTValidator:
    def __init__(self, key, issuer, audience, now, leeway_s=DEFAULT_LEEWAY_S):
        if isinstance(key, str):
            key = key.encode()
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError("JWT key must be bytes or str")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError("JWT key must be at least %d bytes (256 bits), got %d"
                             % (MIN_KEY_BYTES, len(key)))
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("JWT issuer must be a non-empty string")
        if not isinstance(audience, str) or not audience:
            raise ValueError("JWT audience must be a non-empty string")
        if not callable(now):
            raise TypeError("now must be callable")
        if type(leeway_s) is not int or not 0 <= leeway_s <= 300:
            raise ValueError("leeway_s must be an int in 0..300")
        # token -> (claims, exp, nbf, iat) of tokens that fully verified; _order is LRU order
        self._cache = {}
        self._order = []
        self.cache_size = CACHE_SIZE
        self.hmacs = 0   # signatures computed, for the budget's figures
        self.set_key(key)
        self.issuer = issuer
        self.audience = audience
        self._now = now
        self.leeway_s = leeway_s
        self._revoked = ()

    def set_revoked(self, entries):
        # config api.revoked: [{"jti", "exp"}]; refused from then on, cached or not. Entries whose
        # token has expired change nothing (the token fails on exp) and are not kept
        if len(entries) > MAX_REVOKED:
            raise ValueError("at most %d revoked tokens, got %d" % (MAX_REVOKED, len(entries)))
        now = self._now()
        keep = []
        for e in entries:
            if now is None or now < e["exp"] + self.leeway_s:
                keep.append(e["jti"])
        self._revoked = tuple(keep)

    def _check_revoked(self, claims):
        jti = claims.get("jti")
        if jti is not None and jti in self._revoked:
            raise TokenError("revoked", "jti")

    # the cache holds what was checked against the key, issuer and audience: a change of any
    # of them empties it
    def set_key(self, key):
        if isinstance(key, str):
            key = key.encode()
        self._hmac = Hmac(bytes(key))
        self.clear_cache()

    @property
    def issuer(self):
        return self._issuer

    @issuer.setter
    def issuer(self, v):
        self._issuer = v
        self.clear_cache()

    @property
    def audience(self):
        return self._audience

    @audience.setter
    def audience(self, v):
        self._audience = v
        self.clear_cache()

    def clear_cache(self):
        self._cache = {}
        self._order = []

    def is_cached(self, token):
        # a token verified before is answered without an HMAC
        return type(token) in (str, bytes) and token in self._cache

    def _sign(self, msg):
        self.hmacs += 1
        return self._hmac.digest(msg)

    def validate(self, token):
        # -> the claims dict (shared with the cache: do not modify); raises TokenError(reason)
        if isinstance(token, str):
            if len(token) > MAX_TOKEN_BYTES:
                raise TokenError("too_large")
        hit = self._cache.get(token) if type(token) in (str, bytes) else None
        if hit is not None:
            # signature, iss, aud and sub were checked when it was cached; the clock moves
            self._check_time(hit[1], hit[2], hit[3])
            self._check_revoked(hit[0])
            order = self._order
            if order[-1] != token:
                order.remove(token)
                order.append(token)
            return hit[0]
        key = token
        if isinstance(token, str):
            token = token.encode()
        if not isinstance(token, (bytes, bytearray)) or not token:
            raise TokenError("malformed")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("too_large")
        parts = bytes(token).split(b".")
        if len(parts) != 3:
            raise TokenError("malformed")
        header = _json_object(parts[0], "header")
        if header.get("alg") != "HS256":
            raise TokenError("alg_not_allowed", "alg")
        if "crit" in header:  # no header extensions are understood
            raise TokenError("malformed", "crit")
        # compare encoded signatures: one canonical form, no decoding of attacker bytes
        want = b64url_encode(self._sign(parts[0] + b"." + parts[1]))
        if not compare_digest(want, parts[2]):
            raise TokenError("bad_signature")
        claims = _json_object(parts[1], "payload")
        entry = self._check_claims(claims)
        if self.cache_size > 0 and type(key) in (str, bytes):
            # only a token that passed every check, time included, is kept
            order = self._order
            while len(order) >= self.cache_size:
                del self._cache[order.pop(0)]
            self._cache[key] = entry
            order.append(key)
        return claims

    def _check_claims(self, claims):
        # -> (claims, exp, nbf, iat), what a cached token needs re-checked
        if "exp" not in claims:
            raise TokenError("missing_exp", "exp")
        exp = _time_claim(claims, "exp")
        if exp is None:
            raise TokenError("malformed", "exp")
        nbf = _time_claim(claims, "nbf")
        iat = _time_claim(claims, "iat")
        if claims.get("iss") != self._issuer:
            raise TokenError("bad_issuer", "iss")
        aud = claims.get("aud")
        if isinstance(aud, list):
            if self._audience not in aud:
                raise TokenError("bad_audience", "aud")
        elif aud != self._audience:
            raise TokenError("bad_audience", "aud")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenError("missing_sub", "sub")
        self._check_time(exp, nbf, iat)
        self._check_revoked(claims)
        return (claims, exp, nbf, iat)

    def _check_time(self, exp, nbf, iat):
        now = self._now()
        if now is None:
            raise TokenError("time_not_synced")
        leeway = self.leeway_s
        if now >= exp + leeway:
            raise TokenError("expired", "exp")
        if nbf is not None and now + leeway < nbf:
            raise TokenError("not_yet_valid", "nbf")
        if iat is not None and now + leeway < iat:
            raise TokenError("not_yet_valid", "iat")


def bearer_token(value):
    # the token from an Authorization header value; raises TokenError
    if not value:
        raise TokenError("missing_token")
    parts = value.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise TokenError("missing_token")
    token = parts[1].lstrip().rstrip()  # = strip(), which tests every character: slow on 4 KB
    if not token or " " in token:
        raise TokenError("malformed")
    return token


def check_tenancy(claims, tenant, namespace):
    # the device's own tenant and namespace; an unset one matches no token
    if not tenant or claims.get("tenant") != tenant:
        raise TokenError("wrong_tenant", "tenant")
    if not namespace or claims.get("namespace") != namespace:
        raise TokenError("wrong_namespace", "namespace")
