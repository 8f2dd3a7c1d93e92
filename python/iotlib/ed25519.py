# Ed25519 signature verification (RFC 8032, section 5.1.7), verify only:
# the device holds a public key and never signs.
#
# Points are extended twisted-Edwards coordinates (X, Y, Z, T) so no inversion is
# needed until the end; [S]B - [k]A is one interleaved double-and-add over a
# 16-entry table of iB + j(-A), i, j in 0..3 (2 bits of each scalar per step).
try:
    from hashlib import sha512
except ImportError:
    from iotlib.sha512 import sha512

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
# Constants written out: computing them at import costs three modular powers (a
# noticeable pause on the RP2040). tests/mpy/test_ota.py checks them against their formulas.
# d = -121665/121666, 2d, sqrt(-1) = 2^((p-1)/4), and the base point's y = 4/5
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_B = (_BX, _BY, 1, _BX * _BY % P)
_ZERO = (0, 1, 1, 0)


class BadSignature(ValueError):
    pass


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * _D2 * t2 % P
    d = 2 * z1 * z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p):
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _neg(p):
    x, y, z, t = p
    return (P - x, y, z, P - t)


def _decode_point(s):
    """32 bytes -> extended point; None when not a valid encoding (RFC 8032 5.1.3)."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (_D * y * y + 1) % P
    v3 = v * v * v % P
    x = u * v3 * pow(u * v3 * v3 * v % P, (P - 5) // 8, P) % P
    vxx = v * x * x % P
    if vxx != u:
        if vxx != P - u:
            return None
        x = x * _SQRT_M1 % P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _encode_point(p):
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x = x * zi % P
    y = y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _combo(s, k, a_neg):
    """[s]B + [k]a_neg, scanning both scalars 2 bits at a time from the top."""
    b2 = _double(_B)
    bs = (_ZERO, _B, b2, _add(b2, _B))
    a2 = _double(a_neg)
    as_ = (_ZERO, a_neg, a2, _add(a2, a_neg))
    table = []
    for i in range(4):
        for j in range(4):
            if i == 0:
                table.append(as_[j])
            elif j == 0:
                table.append(bs[i])
            else:
                table.append(_add(bs[i], as_[j]))
    acc = _ZERO
    for shift in range(254, -1, -2):
        acc = _double(_double(acc))
        idx = (((s >> shift) & 3) << 2) | ((k >> shift) & 3)
        if idx:
            acc = _add(acc, table[idx])
    return acc


def verify(public_key, signature, message):
    """True when signature is a valid Ed25519 signature of message under public_key.

    Raises BadSignature with the reason instead of returning False, so callers can
    report why; returns True otherwise."""
    public_key = bytes(public_key)
    signature = bytes(signature)
    if len(public_key) != 32:
        raise BadSignature("public key must be 32 bytes")
    if len(signature) != 64:
        raise BadSignature("signature must be 64 bytes")
    a = _decode_point(public_key)
    if a is None:
        raise BadSignature("public key is not a valid curve point")
    r_enc = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        raise BadSignature("signature scalar S is not below the group order")
    h = sha512(r_enc)
    h.update(public_key)
    h.update(message)
    k = int.from_bytes(h.digest(), "little") % L
    # [S]B - [k]A must encode to exactly R (the cofactorless check RFC 8032 allows).
    if _encode_point(_combo(s, k, _neg(a))) != r_enc:
        raise BadSignature("signature does not verify")
    return True


def is_valid(public_key, signature, message):
    try:
        return verify(public_key, signature, message)
    except BadSignature:
        return False
