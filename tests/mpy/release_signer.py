# Ed25519 signing (RFC 8032 5.1.6) for tests on the unix build, built on iotlib.ed25519's
# point arithmetic, and release manifests in tools/release.py's canonical form. Checked
# against RFC 8032's vectors in test_ota.py, so the device's verifier is tested against
# signatures it did not make.
import json

from iotlib import ed25519
from iotlib.sha512 import sha512


def _scalar_base(n):
    return ed25519._encode_point(ed25519._combo(n, 0, ed25519._ZERO))


def _expand(seed):
    h = sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    return a, h[32:]


def public_key(seed):
    return _scalar_base(_expand(seed)[0])


def sign(seed, msg):
    a, prefix = _expand(seed)
    pk = _scalar_base(a)
    r = int.from_bytes(sha512(prefix + msg).digest(), "little") % ed25519.L
    big_r = _scalar_base(r)
    k = int.from_bytes(sha512(big_r + pk + msg).digest(), "little") % ed25519.L
    return big_r + ((r + k * a) % ed25519.L).to_bytes(32, "little")


def canonical(doc):
    # sorted keys, no blanks: tools/release.py writes the same bytes for the same fields
    if isinstance(doc, dict):
        return "{" + ",".join(json.dumps(k) + ":" + canonical(doc[k]) for k in sorted(doc)) + "}"
    if isinstance(doc, list):
        return "[" + ",".join(canonical(v) for v in doc) + "]"
    return json.dumps(doc)


def manifest(**over):
    m = {"format": "relays-release/1", "product": "relays-controller", "boards": ["RPI_PICO_W"],
         "kind": "app", "version": "1.1.0", "counter": 1, "size": 0, "sha256": "0" * 64,
         "created": 1800000000}
    for k in over:
        if over[k] is None:
            m.pop(k, None)
        else:
            m[k] = over[k]
    return canonical(m)


def signed(seed, text):
    import binascii
    return text, binascii.hexlify(sign(seed, text.encode())).decode()
