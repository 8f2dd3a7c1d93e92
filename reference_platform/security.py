"""Device-key proofs and HS256 JWTs (the platform's own, and device REST API tokens). There is
no OTA signing here: releases are signed offline by their owners (tools/release.py)."""

import base64
import hashlib
import hmac
import json
import time

DEVICE_AUDIENCE = "relays-device"


def proof_message(device_id, timestamp, nonce):
    return ("%s|%d|%s" % (device_id, timestamp, nonce)).encode()


def make_proof(device_key, device_id, timestamp, nonce):
    return hmac.new(device_key.encode(), proof_message(device_id, timestamp, nonce),
                    hashlib.sha256).hexdigest()


def check_proof(device_key, device_id, timestamp, nonce, proof):
    return hmac.compare_digest(make_proof(device_key, device_id, timestamp, nonce), proof)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text):
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def hs256(key, signing_input):
    """The JWT signature (base64url HMAC-SHA256) of the text `signing_input` with raw `key`."""
    return b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def sign_hs256(key, claims, header=None):
    """A compact HS256 JWT of `claims` signed with the raw bytes `key`. The tools and tests
    sign theirs here too; `header` replaces the standard one (tests send odd ones)."""
    if header is None:
        header = {"alg": "HS256", "typ": "JWT"}
    signing_input = "%s.%s" % (b64url(json.dumps(header, separators=(",", ":")).encode()),
                               b64url(json.dumps(claims, separators=(",", ":"),
                                                 sort_keys=True).encode()))
    return "%s.%s" % (signing_input, hs256(key, signing_input))


class TokenError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class JWTSigner:
    """Minimal HS256 JWT: the platform is both issuer and sole verifier, so no key discovery."""

    def __init__(self, secret, issuer, ttl_s):
        self.secret = secret
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, claims, now=None):
        now = int(time.time()) if now is None else now
        payload = dict(claims, iss=self.issuer, aud=DEVICE_AUDIENCE, iat=now, exp=now + self.ttl_s)
        return sign_hs256(self.secret, payload), payload

    def verify(self, token, now=None):
        now = int(time.time()) if now is None else now
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("invalid_token", "token is not a JWT (expected three dot-separated parts)")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            payload = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
        except (ValueError, TypeError):
            raise TokenError("invalid_token", "token is not valid base64url JSON")
        # Only HS256 is ever accepted: never let the token choose its own algorithm.
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise TokenError("invalid_token", "token algorithm must be HS256")
        expected = hmac.new(self.secret, ("%s.%s" % (parts[0], parts[1])).encode(),
                            hashlib.sha256).digest()
        if not hmac.compare_digest(expected, sig):
            raise TokenError("invalid_token", "token signature does not verify")
        if not isinstance(payload, dict):
            raise TokenError("invalid_token", "token payload is not an object")
        for claim in ("exp", "iat", "iss", "aud", "sub", "tenant", "namespace", "role"):
            if claim not in payload:
                raise TokenError("invalid_token", "token lacks the '%s' claim" % claim)
        if payload["iss"] != self.issuer or payload["aud"] != DEVICE_AUDIENCE:
            raise TokenError("invalid_token", "token issuer or audience is not this platform's")
        if not isinstance(payload["exp"], int) or payload["exp"] <= now:
            raise TokenError("token_expired", "token expired; register again")
        if payload["role"] != "device":
            raise TokenError("invalid_token", "token role is not 'device'")
        return payload

