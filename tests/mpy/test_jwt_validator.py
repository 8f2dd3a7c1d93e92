# iotlib.jwt_validator: the JWT attack matrix (docs/rest_api_security.md). Tokens are made here
# with an HMAC written out in this file, so the validator is checked against an
# independent signer, not against itself.
import binascii
import hashlib
import json

from check import eq, raises, true
from iotlib import jwt_validator as jv
from iotlib.jwt_validator import JWTValidator, TokenError

KEY = b"k" * 16 + b"0123456789abcdef"   # exactly 32 bytes
OTHER_KEY = b"x" * 32
ISS = "relays-reference-platform"
AUD = "relays-device"
NOW = 1800000000


def hmac_sha256(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    s = binascii.b2a_base64(data).decode().strip()
    return s.replace("+", "-").replace("/", "_").rstrip("=")


def make(claims=None, header=None, key=KEY, raw_header=None, raw_payload=None):
    # raw_* give exact JSON text, for payloads json.dumps cannot write
    h = raw_header if raw_header is not None else json.dumps(header or {"alg": "HS256", "typ": "JWT"})
    p = raw_payload if raw_payload is not None else json.dumps(claims if claims is not None else good_claims())
    signing_input = b64url(h) + "." + b64url(p)
    return signing_input + "." + b64url(hmac_sha256(key, signing_input.encode()))


def good_claims(**over):
    c = {"iss": ISS, "aud": AUD, "sub": "ops-alice", "exp": NOW + 600, "iat": NOW - 10,
         "nbf": NOW - 10, "tenant": "acme", "namespace": "lab", "role": "operator"}
    for k in over:
        if over[k] is None:
            del c[k]
        else:
            c[k] = over[k]
    return c


class Clock:
    def __init__(self, t=NOW):
        self.t = t

    def __call__(self):
        return self.t


def validator(now=None, **kw):
    return JWTValidator(KEY, ISS, AUD, now or Clock(), **kw)


def reject(reason, token, v=None):
    raises(TokenError, reason, (v or validator()).validate, token)


# --- the independent signer agrees with RFC 4231 and with the module ---

RFC4231 = (
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
)


def test_hmac_rfc4231():
    for key, msg, want in RFC4231:
        eq(binascii.hexlify(hmac_sha256(key, msg)).decode(), want, "test signer")
        eq(binascii.hexlify(jv.hmac_sha256(key, msg)).decode(), want, "module")
        eq(binascii.hexlify(jv.Hmac(key).digest(msg)).decode(), want, "HMAC with its pads kept")


def test_compare_digest():
    true(jv.compare_digest(b"abc", b"abc"), "equal")
    true(not jv.compare_digest(b"abc", b"abd"), "last byte differs")
    true(not jv.compare_digest(b"abc", b"ab"), "length differs")


def test_b64url_strict():
    eq(jv.b64url_decode(b"YWI"), b"ab", "unpadded")
    eq(jv.b64url_decode(b"-_8"), b"\xfb\xff", "url alphabet")
    for bad in (b"", b"YWI=", b"+/8", b"Y", b"YW I", b"YW\nI", b"YWJ", b"Y!I", b"\xffWI"):
        raises(TokenError, "malformed", jv.b64url_decode, bad)


# --- keys and construction ---

def test_short_key_rejected():
    raises(ValueError, "JWT key must be at least 32 bytes (256 bits), got 31",
           JWTValidator, KEY[:31], ISS, AUD, Clock())
    raises(ValueError, "JWT key must be at least 32 bytes (256 bits), got 0",
           JWTValidator, b"", ISS, AUD, Clock())


def test_key_forms():
    # str keys are their UTF-8 bytes; keys beyond the block size are hashed first
    v = JWTValidator(KEY.decode(), ISS, AUD, Clock())
    eq(v.validate(make())["sub"], "ops-alice", "str key")
    long_key = bytes(range(100))
    v = JWTValidator(long_key, ISS, AUD, Clock())
    eq(v.validate(make(key=long_key))["sub"], "ops-alice", "100-byte key")


def test_bad_construction():
    raises(ValueError, "JWT issuer must be a non-empty string", JWTValidator, KEY, "", AUD, Clock())
    raises(ValueError, "JWT audience must be a non-empty string", JWTValidator, KEY, ISS, None, Clock())
    raises(TypeError, "now must be callable", JWTValidator, KEY, ISS, AUD, NOW)
    raises(ValueError, "leeway_s must be an int in 0..300", JWTValidator, KEY, ISS, AUD, Clock(), -1)


# --- a good token ---

def test_valid_token_returns_claims():
    c = validator().validate(make())
    eq((c["sub"], c["tenant"], c["namespace"], c["role"]), ("ops-alice", "acme", "lab", "operator"), "claims")
    eq(validator().validate(make().encode())["sub"], "ops-alice", "bytes token")


def test_minimal_claims():
    # exp, iss, aud and sub are all a token needs
    v = validator()
    eq(v.validate(make({"exp": NOW + 5, "iss": ISS, "aud": AUD, "sub": "s"}))["sub"], "s", "minimal")


# --- the header's alg is never trusted ---

def test_alg_none():
    h = b64url('{"alg":"none","typ":"JWT"}')
    p = b64url(json.dumps(good_claims()))
    reject("alg_not_allowed", h + "." + p + ".")
    reject("malformed", h + "." + p)
    # even with a signature that would verify under HS256
    reject("alg_not_allowed", make(header={"alg": "none"}))
    reject("alg_not_allowed", make(header={"alg": "None"}))


def test_other_algs():
    for alg in ("HS512", "HS384", "RS256", "ES256", "PS256", "EdDSA", "hs256", "HS256 ", ""):
        reject("alg_not_allowed", make(header={"alg": alg, "typ": "JWT"}))
    reject("alg_not_allowed", make(header={"typ": "JWT"}))
    reject("alg_not_allowed", make(header={"alg": ["HS256"]}))
    reject("alg_not_allowed", make(header={"alg": None}))


def test_rs256_with_key_as_hmac_secret():
    # the classic confusion: an HS256 signature made with public material, header RS256
    pub = b"-----BEGIN PUBLIC KEY-----MIIBIjANBgkqhkiG9w0BAQEFAAOC-----END PUBLIC KEY-----"
    reject("alg_not_allowed", make(header={"alg": "RS256"}, key=pub))


def test_crit_header_rejected():
    raises(TokenError, "malformed", validator().validate, make(header={"alg": "HS256", "crit": ["b64"], "b64": False}))


def test_header_extra_fields_ignored():
    eq(validator().validate(make(header={"alg": "HS256", "kid": "k1"}))["sub"], "ops-alice", "kid")


# --- signatures ---

def test_wrong_key():
    reject("bad_signature", make(key=OTHER_KEY))
    reject("bad_signature", make(key=KEY[:-1] + b"!"))


def test_tampered_payload():
    t = make()
    h, p, s = t.split(".")
    forged = b64url(json.dumps(good_claims(role="admin")))
    reject("bad_signature", h + "." + forged + "." + s)
    # a header swapped in from another token
    h2 = make(header={"alg": "HS256", "kid": "other"}).split(".")[0]
    reject("bad_signature", h2 + "." + p + "." + s)


def test_tampered_signature():
    h, p, s = make().split(".")
    flipped = ("A" if s[0] != "A" else "B") + s[1:]
    reject("bad_signature", h + "." + p + "." + flipped)
    reject("bad_signature", h + "." + p + "." + s[:-1])
    reject("bad_signature", h + "." + p + "." + s + "A")
    reject("bad_signature", h + "." + p + "." + s + "=")
    reject("bad_signature", h + "." + p + "." + s.replace("-", "+").replace("_", "/") + "+")
    reject("bad_signature", h + "." + p + ".")
    # the same 32 bytes with non-zero unused bits in the last character
    last = s[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = alphabet[alphabet.index(last) + 1]
    reject("bad_signature", h + "." + p + "." + s[:-1] + other)


def test_signature_before_payload():
    # a payload that is not JSON, correctly signed, is malformed; unsigned it is a bad signature
    h = b64url('{"alg":"HS256"}')
    p = b64url("not json")
    signed = h + "." + p + "." + b64url(hmac_sha256(KEY, (h + "." + p).encode()))
    reject("malformed", signed)
    reject("bad_signature", h + "." + p + "." + b64url(b"\x00" * 32))


# --- time ---

def test_expired():
    v = validator(leeway_s=30)
    reject("expired", make(good_claims(exp=NOW - 31, iat=NOW - 600, nbf=None)), v)
    reject("expired", make(good_claims(exp=NOW - 30, iat=NOW - 600, nbf=None)), v)
    # within the leeway
    eq(v.validate(make(good_claims(exp=NOW - 29, iat=NOW - 600, nbf=None)))["exp"], NOW - 29, "leeway")
    eq(validator(leeway_s=0).validate(make(good_claims(exp=NOW + 1)))["exp"], NOW + 1, "no leeway")
    reject("expired", make(good_claims(exp=NOW)), validator(leeway_s=0))


def test_expiry_follows_the_clock():
    clock = Clock()
    v = validator(now=clock)
    t = make(good_claims(exp=NOW + 60))
    eq(v.validate(t)["sub"], "ops-alice", "fresh")
    clock.t = NOW + 90
    reject("expired", t, v)


def test_nbf_in_future():
    reject("not_yet_valid", make(good_claims(nbf=NOW + 31)))
    eq(validator().validate(make(good_claims(nbf=NOW + 29)))["nbf"], NOW + 29, "within leeway")
    reject("not_yet_valid", make(good_claims(nbf=NOW + 1)), validator(leeway_s=0))


def test_iat_in_future():
    reject("not_yet_valid", make(good_claims(iat=NOW + 3600, nbf=None)))
    eq(validator().validate(make(good_claims(iat=NOW + 20, nbf=None)))["iat"], NOW + 20, "within leeway")


def test_missing_exp():
    reject("missing_exp", make(good_claims(exp=None)))


def test_bad_time_claims():
    for bad in ("1900000000", True, None, [NOW + 60], {"t": 1}):
        c = good_claims()
        c["exp"] = bad
        reject("malformed", make(c))
    reject("malformed", make(good_claims(nbf="soon")))
    reject("malformed", make(good_claims(iat=False)))
    # json reads 1e400 as infinity: a token that never expires is not a time
    raw = '{"iss":"%s","aud":"%s","sub":"s","exp":1e400}' % (ISS, AUD)
    reject("malformed", make(raw_payload=raw))
    raw = '{"iss":"%s","aud":"%s","sub":"s","exp":%d.5}' % (ISS, AUD, NOW + 60)
    eq(validator().validate(make(raw_payload=raw))["sub"], "s", "fractional exp")


def test_time_not_synced():
    v = validator(now=lambda: None)
    reject("time_not_synced", make(), v)
    # a token that fails on its own is still refused for that reason
    reject("bad_signature", make(key=OTHER_KEY), v)
    reject("bad_issuer", make(good_claims(iss="evil")), v)
    eq(jv.http_status("time_not_synced"), 503, "status")


# --- issuer, audience, subject ---

def test_wrong_issuer():
    reject("bad_issuer", make(good_claims(iss="relays-reference-platform-evil")))
    reject("bad_issuer", make(good_claims(iss=None)))
    reject("bad_issuer", make(good_claims(iss=[ISS])))


def test_wrong_audience():
    reject("bad_audience", make(good_claims(aud="another-device")))
    reject("bad_audience", make(good_claims(aud=None)))
    reject("bad_audience", make(good_claims(aud=["a", "b"])))
    reject("bad_audience", make(good_claims(aud=[])))
    reject("bad_audience", make(good_claims(aud={"aud": AUD})))
    eq(validator().validate(make(good_claims(aud=["x", AUD])))["aud"], ["x", AUD], "aud list")


def test_missing_subject():
    reject("missing_sub", make(good_claims(sub=None)))
    reject("missing_sub", make(good_claims(sub="")))
    reject("missing_sub", make(good_claims(sub=7)))


# --- shapes, sizes and garbage ---

def test_empty_and_structure():
    for bad in ("", b"", None, 12, ".", "..", "a.b", "a.b.c.d", make() + ".", "." + make()):
        reject("malformed", bad)


def test_truncated():
    t = make()
    h, p, s = t.split(".")
    reject("bad_signature", t[:-5])
    reject("malformed", h + "." + p[:len(p) // 2])
    reject("malformed", t[:len(h) // 2])
    # a cut payload breaks the signature, which is checked before the payload is read
    reject("bad_signature", t[:len(h) + 1 + len(p) // 2] + "." + s)


def test_oversized():
    big = "x" * (jv.MAX_TOKEN_BYTES + 1)
    reject("too_large", big)
    reject("too_large", big.encode())
    # a real token padded to the limit still passes; one byte more does not
    base = len(make(good_claims(pad="")))
    pad = ""
    while len(make(good_claims(pad=pad))) < jv.MAX_TOKEN_BYTES:
        pad += "p"
    while len(make(good_claims(pad=pad))) > jv.MAX_TOKEN_BYTES:
        pad = pad[:-1]
    t = make(good_claims(pad=pad))
    true(base < len(t) <= jv.MAX_TOKEN_BYTES, "padded token fits")
    eq(validator().validate(t)["sub"], "ops-alice", "token at the limit")
    reject("too_large", make(good_claims(pad=pad + "p" * 4)))


def test_garbage():
    good = make()
    h, p, s = good.split(".")
    for bad in ("!!!.###.$$$", "\x00\x01\x02", "é.é.é", "Bearer " + good, good + " ",
                " " + good, h + "=." + p + "." + s, h + "." + p + "=." + s,
                h.replace("e", "+") + "." + p + "." + s, h + ".\n" + p + "." + s,
                b"\xff\xfe.\xfd.\xfc", "null.null.null", "e30.e30.e30"):
        try:
            validator().validate(bad)
        except TokenError as e:
            true(e.args[0] in ("malformed", "alg_not_allowed", "bad_signature"),
                 "%r: reason %r" % (bad, e.args[0]))
            continue
        raise AssertionError("accepted %r" % (bad,))


def test_not_json_objects():
    # MicroPython's json accepts an unclosed top-level object; that leniency is
    # harmless (only alg is read before the signature), so it is not tested here
    reject("malformed", make(raw_header='["HS256"]'))
    reject("malformed", make(raw_header='"HS256"'))
    reject("malformed", make(raw_header="\xff"))
    reject("malformed", make(raw_header='{"alg":"HS256"}}'))
    reject("malformed", make(raw_payload="[1,2]"))
    reject("malformed", make(raw_payload='"claims"'))
    reject("malformed", make(raw_payload="7"))


# --- tenancy ---

def test_other_tenant():
    c = validator().validate(make(good_claims(tenant="globex")))
    raises(TokenError, "wrong_tenant", jv.check_tenancy, c, "acme", "lab")
    eq(jv.http_status("wrong_tenant"), 403, "status")


def test_other_namespace():
    c = validator().validate(make(good_claims(namespace="prod")))
    raises(TokenError, "wrong_namespace", jv.check_tenancy, c, "acme", "lab")
    eq(jv.http_status("wrong_namespace"), 403, "status")


def test_same_tenant():
    c = validator().validate(make())
    eq(jv.check_tenancy(c, "acme", "lab"), None, "matches")


def test_tenancy_fails_closed():
    c = validator().validate(make(good_claims(tenant=None, namespace=None)))
    raises(TokenError, "wrong_tenant", jv.check_tenancy, c, "acme", "lab")
    # a device not registered yet has no tenant: no token matches it
    raises(TokenError, "wrong_tenant", jv.check_tenancy, c, None, None)
    raises(TokenError, "wrong_tenant", jv.check_tenancy, c, "", "")
    c = validator().validate(make())
    raises(TokenError, "wrong_namespace", jv.check_tenancy, c, "acme", None)


# --- the Authorization header ---

def test_bearer_token():
    eq(jv.bearer_token("Bearer abc.def.ghi"), "abc.def.ghi", "plain")
    eq(jv.bearer_token("bearer  abc.def.ghi "), "abc.def.ghi", "scheme case, spaces")
    for bad in (None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "abc.def.ghi"):
        raises(TokenError, "missing_token", jv.bearer_token, bad)
    raises(TokenError, "malformed", jv.bearer_token, "Bearer a b")


def test_statuses_and_messages():
    for reason in ("missing_token", "malformed", "too_large", "alg_not_allowed", "bad_signature",
                   "missing_exp", "missing_sub", "bad_issuer", "bad_audience", "expired",
                   "not_yet_valid"):
        eq(jv.http_status(reason), 401, reason)
    for reason in jv.MESSAGES:
        true(len(jv.MESSAGES[reason]) > 10, reason)


def test_error_detail():
    try:
        validator().validate(make(good_claims(nbf=NOW + 3600)))
    except TokenError as e:
        eq((e.reason, e.detail), ("not_yet_valid", "nbf"), "detail")
        return
    raise AssertionError("accepted")


# --- the cache of verified tokens ---

def test_cache_rechecks_time_on_every_hit():
    clock = Clock()
    v = validator(now=clock)
    t = make(good_claims(exp=NOW + 60, nbf=NOW - 10))
    eq(v.validate(t)["sub"], "ops-alice", "first")
    true(t in v._cache, "cached")
    eq(v.validate(t)["sub"], "ops-alice", "hit")
    clock.t = NOW + 90
    reject("expired", t, v)
    clock.t = None
    reject("time_not_synced", t, v)
    clock.t = NOW - 100  # clock stepped back: before nbf
    reject("not_yet_valid", t, v)


def test_cache_holds_only_verified_tokens():
    v = validator()
    h, p, s = make().split(".")
    flipped = ("A" if s[0] != "A" else "B") + s[1:]
    reject("bad_signature", h + "." + p + "." + flipped, v)
    reject("bad_issuer", make(good_claims(iss="evil")), v)
    reject("expired", make(good_claims(exp=NOW - 100, iat=None, nbf=None)), v)
    eq(len(v._cache), 0, "nothing cached")
    v.validate(h + "." + p + "." + s)
    # a tampered copy of a cached token is another string: fully checked again
    reject("bad_signature", h + "." + p + "." + flipped, v)
    forged = b64url(json.dumps(good_claims(role="admin")))
    reject("bad_signature", h + "." + forged + "." + s, v)


def test_cache_is_bounded_lru():
    v = validator()
    toks = [make(good_claims(sub="s%d" % i)) for i in range(jv.CACHE_SIZE + 3)]
    v.validate(toks[0])
    for t in toks[1:]:
        v.validate(t)
        v.validate(toks[0])  # kept in use: never evicted
        true(len(v._cache) <= jv.CACHE_SIZE, "bounded")
    true(toks[0] in v._cache, "recent kept")
    true(toks[1] not in v._cache, "oldest evicted")
    eq(len(v._cache), len(v._order), "order matches")


def test_key_issuer_audience_change_empties_cache():
    v = validator()
    t = make()
    v.validate(t)
    v.set_key(OTHER_KEY)
    eq(len(v._cache), 0, "key change")
    reject("bad_signature", t, v)
    v.set_key(KEY)
    v.validate(t)
    v.issuer = "other-issuer"
    reject("bad_issuer", t, v)
    v.issuer = ISS
    v.validate(t)
    v.audience = "other-device"
    reject("bad_audience", t, v)


def test_cache_off():
    v = validator()
    v.cache_size = 0
    t = make()
    v.validate(t)
    v.validate(t)
    eq(len(v._cache), 0, "off")


# --- revocation (config api.revoked, pushed by the platform) ---

def test_revoked_jti_is_refused_cached_or_not():
    clock = Clock()
    v = validator(clock)
    bad = make(good_claims(jti="revoked-jti-0000001"))
    good = make(good_claims(jti="still-valid-jti-0001"))
    plain = make(good_claims())   # no jti: only a key change can end it
    for t in (bad, good, plain):
        v.validate(t)             # all three verified and cached before the revocation
    v.set_revoked([{"jti": "revoked-jti-0000001", "exp": NOW + 600}])
    reject("revoked", bad, v)     # the cache does not keep it alive
    fresh = validator(clock)
    fresh.set_revoked([{"jti": "revoked-jti-0000001", "exp": NOW + 600}])
    reject("revoked", bad, fresh)
    eq(fresh.validate(good)["jti"], "still-valid-jti-0001", "another jti")
    eq(fresh.validate(plain)["sub"], "ops-alice", "no jti")
    eq(jv.http_status("revoked"), 401, "status")
    true("revoked" in jv.MESSAGES, "message")
    v.set_revoked([])
    eq(v.validate(bad)["jti"], "revoked-jti-0000001", "list emptied")


def test_revocation_list_is_bounded_and_drops_expired_entries():
    clock = Clock()
    v = validator(clock)
    entries = [{"jti": "jti-%016d" % i, "exp": NOW + i} for i in range(jv.MAX_REVOKED)]
    v.set_revoked(entries)
    eq(len(v._revoked), jv.MAX_REVOKED, "all kept while unexpired")
    raises(ValueError, "at most 64 revoked tokens, got 65", v.set_revoked, entries + [{"jti": "x" * 16, "exp": NOW}])
    clock.t = NOW + 40 + v.leeway_s
    v.set_revoked(entries)
    eq(len(v._revoked), jv.MAX_REVOKED - 41, "expired ones dropped")
    unsynced = validator(lambda: None)
    unsynced.set_revoked(entries[:3])
    eq(len(unsynced._revoked), 3, "no clock: all kept")
