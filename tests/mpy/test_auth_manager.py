# iotlib.auth_manager: the registration proof and the URL it is sent to.
from check import eq
from iotlib import auth_manager as am


def test_hmac_sha256_rfc4231():
    from binascii import hexlify
    eq(hexlify(am.hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
       b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "case 2")
    eq(hexlify(am.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")),
       b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", "case 6: long key")


def test_proof_is_the_platform_formula():
    # hmac.new(b"k" * 16, b"pico-1|1700000000|abcdefgh", hashlib.sha256).hexdigest() on CPython
    eq(am.proof("k" * 16, "pico-1", 1700000000, "abcdefgh"),
       "fd4844f8a04b9e7e6c64e25e6e3e4e79fa623f1c310cdcee4cc1b7c408375c82", "proof")


def test_register_url():
    eq(am.register_url("http://h:8080"), "http://h:8080/v1/devices/register", "base")
    eq(am.register_url("http://h:8080/"), "http://h:8080/v1/devices/register", "base slash")
    eq(am.register_url("http://h/v1/devices/register"), "http://h/v1/devices/register", "full")
    eq(am.register_url("https://h/api/devices"), "https://h/api/devices/register", "seed style")
