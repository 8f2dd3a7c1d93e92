"""The host's PPP peer (CPython host tool) on its own: framing, FCS, and the LCP/IPCP answers
lwIP's client needs, driven with frames built by hand."""

import struct

import ppp_peer as pp


def make_peer():
    out, ips = [], []
    peer = pp.PPPPeer(out.append, ips.append, "10.0.2.2", "10.0.2.15", "10.0.2.3")
    return peer, out, ips


def decode(frames):
    """Our frames back into (proto, code, ident, data) through a second peer's decoder."""
    got = []
    p = pp.PPPPeer(lambda b: None, lambda b: None, "1.1.1.1", "2.2.2.2", "3.3.3.3")
    p._frame = lambda f: got.append(f)
    for f in frames:
        p.feed(f)
    res = []
    for f in got:
        assert pp.fcs16(f) == 0xF0B8
        proto = struct.unpack("!H", f[2:4])[0]
        code, ident, n = struct.unpack("!BBH", f[4:8])
        res.append((proto, code, ident, f[8:4 + n]))
    return res


def ctl(proto, code, ident, data=b""):
    return pp.frame(proto, struct.pack("!BBH", code, ident, len(data) + 4) + data)


def test_fcs16_of_rfc1662_check_sequence():
    # the FCS of data plus its own (complemented, little-endian) FCS is the good-FCS constant
    data = b"\xff\x03\xc0\x21\x01\x01\x00\x04"
    fcs = pp.fcs16(data) ^ 0xFFFF
    assert pp.fcs16(data + struct.pack("<H", fcs)) == 0xF0B8


def test_frame_escapes_flags_and_control_bytes():
    f = pp.frame(pp.PROTO_IP, bytes([0x7E, 0x7D, 0x01, 0x41]))
    body = f[1:-1]
    assert f[0] == f[-1] == 0x7E and 0x7E not in body
    assert bytes([0x7D, 0x5E, 0x7D, 0x5D, 0x7D, 0x21, 0x41]) in body


def test_bad_fcs_is_counted_and_dropped():
    peer, out, _ = make_peer()
    f = bytearray(ctl(pp.PROTO_LCP, pp.ECHO_REQ, 5, b"\0\0\0\0"))
    f[-3] ^= 0x01
    peer.feed(bytes(f))
    assert peer.bad_fcs == 1 and out == []


def test_lcp_then_ipcp_assigns_address_and_dns():
    peer, out, _ = make_peer()
    opts = bytes([1, 4, 0x05, 0xDC, 5, 6, 1, 2, 3, 4])  # MRU 1500, magic
    peer.feed(ctl(pp.PROTO_LCP, pp.CONF_REQ, 1, opts))
    ans = decode(out)
    assert ans[0] == (pp.PROTO_LCP, pp.CONF_ACK, 1, opts)
    assert ans[1][:2] == (pp.PROTO_LCP, pp.CONF_REQ)  # ours
    out.clear()
    peer.feed(ctl(pp.PROTO_LCP, pp.CONF_ACK, ans[1][2]))
    assert peer.lcp_open
    assert decode(out) == [(pp.PROTO_IPCP, pp.CONF_REQ, 2, bytes([3, 6, 10, 0, 2, 2]))]
    out.clear()
    ask = bytes([3, 6, 0, 0, 0, 0, 129, 6, 0, 0, 0, 0])
    peer.feed(ctl(pp.PROTO_IPCP, pp.CONF_REQ, 7, ask))
    assert decode(out) == [(pp.PROTO_IPCP, pp.CONF_NAK, 7, bytes([3, 6, 10, 0, 2, 15, 129, 6, 10, 0, 2, 3]))]
    out.clear()
    good = bytes([3, 6, 10, 0, 2, 15, 129, 6, 10, 0, 2, 3])
    peer.feed(ctl(pp.PROTO_IPCP, pp.CONF_REQ, 8, good))
    assert decode(out) == [(pp.PROTO_IPCP, pp.CONF_ACK, 8, good)]
    assert not peer.ip_up
    peer.feed(ctl(pp.PROTO_IPCP, pp.CONF_ACK, 2, bytes([3, 6, 10, 0, 2, 2])))
    assert peer.ip_up


def test_unknown_lcp_option_is_rejected():
    peer, out, _ = make_peer()
    peer.feed(ctl(pp.PROTO_LCP, pp.CONF_REQ, 3, bytes([3, 4, 0xC0, 0x23])))  # PAP asked
    assert decode(out) == [(pp.PROTO_LCP, pp.CONF_REJ, 3, bytes([3, 4, 0xC0, 0x23]))]


def test_echo_request_answered_and_unknown_protocol_rejected():
    peer, out, _ = make_peer()
    peer.lcp_open = True
    peer.feed(ctl(pp.PROTO_LCP, pp.ECHO_REQ, 9, b"\x11\x22\x33\x44data"))
    peer.feed(pp.frame(0x8057, b"\x01\x01\x00\x04"))  # IPv6CP
    ans = decode(out)
    assert ans[0] == (pp.PROTO_LCP, pp.ECHO_REP, 9, b"\0\0\0\0data")
    assert ans[1][:2] == (pp.PROTO_LCP, pp.PROTO_REJ) and ans[1][3][:2] == b"\x80\x57"


def test_ip_passes_only_when_up_and_compressed_headers_are_read():
    peer, out, ips = make_peer()
    pkt = b"\x45" + bytes(19)
    peer.feed(pp.frame(pp.PROTO_IP, pkt))
    assert ips == []
    peer.ip_up = True
    # ACFC + PFC: no FF 03, a 1-byte protocol field
    body = bytes([0x21]) + pkt
    f = body + struct.pack("<H", pp.fcs16(body) ^ 0xFFFF)
    esc = bytearray([0x7E])
    for b in f:
        esc += bytes([0x7D, b ^ 0x20]) if b < 0x20 or b in (0x7E, 0x7D) else bytes([b])
    peer.feed(bytes(esc) + b"\x7e")
    assert ips == [pkt]
    peer.send_ip(pkt)
    assert out and out[-1].startswith(b"\x7e\xff\x7d\x23")
