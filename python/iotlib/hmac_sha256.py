# HMAC-SHA256 (RFC 2104), the firmware's one copy: the device-key proof of registration
# (auth_manager) and the HS256 signatures of the REST API's tokens (jwt_validator).
# MicroPython has no hmac module; hashlib.sha256 is in C.
import hashlib

BLOCK = 64               # SHA-256 block size, for the pads


class Hmac:
    # the pads computed once per key (a REST API key checks many tokens): hashlib objects
    # cannot be copied here, so each digest starts from the pad bytes
    def __init__(self, key):
        if len(key) > BLOCK:
            key = hashlib.sha256(key).digest()
        key = key + bytes(BLOCK - len(key))
        self._ipad = bytes(b ^ 0x36 for b in key)
        self._opad = bytes(b ^ 0x5C for b in key)

    def digest(self, msg):
        inner = hashlib.sha256(self._ipad)
        inner.update(msg)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def hmac_sha256(key, msg):
    return Hmac(key).digest(msg)


def compare_digest(a, b):
    # time depends only on the length, which is public (a SHA-256 signature)
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
