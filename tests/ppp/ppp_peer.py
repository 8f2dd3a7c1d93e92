"""The host's end of a PPP link (RFC 1661/1662/1332/1877), enough for lwIP's PPP client:
HDLC-like framing with FCS-16, LCP (configure, echo, terminate, protocol reject), and IPCP that
assigns the device its address and a DNS server. No authentication is asked for.

Feed it the bytes the device sent (`feed`); it answers through `write(bytes)` and hands IP
packets to `on_ip(packet)`; `send_ip(packet)` sends one to the device."""

import struct

FLAG, ESC = 0x7E, 0x7D
PROTO_LCP, PROTO_IPCP, PROTO_IP = 0xC021, 0x8021, 0x0021
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ = 1, 2, 3, 4
TERM_REQ, TERM_ACK, CODE_REJ, PROTO_REJ, ECHO_REQ, ECHO_REP, DISCARD = 5, 6, 7, 8, 9, 10, 11
# LCP options we accept as asked: MRU, ACCM, magic number, PFC, ACFC
LCP_OK = {1, 2, 5, 7, 8}
IPCP_ADDR, IPCP_DNS1, IPCP_DNS2 = 3, 129, 131
MAX_FRAME = 4096


def _fcs_table():
    t = []
    for b in range(256):
        v = b
        for _ in range(8):
            v = (v >> 1) ^ 0x8408 if v & 1 else v >> 1
        t.append(v)
    return t


FCS_TABLE = _fcs_table()


def fcs16(data, fcs=0xFFFF):
    for b in data:
        fcs = (fcs >> 8) ^ FCS_TABLE[(fcs ^ b) & 0xFF]
    return fcs


def frame(proto, payload):
    """One HDLC frame with full address/control and protocol fields, every control byte escaped."""
    body = bytes([0xFF, 0x03]) + struct.pack("!H", proto) + payload
    fcs = fcs16(body) ^ 0xFFFF
    body += struct.pack("<H", fcs)
    out = bytearray([FLAG])
    for b in body:
        if b < 0x20 or b in (FLAG, ESC):
            out += bytes([ESC, b ^ 0x20])
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


def _options(data):
    out = []
    i = 0
    while i + 2 <= len(data):
        t, n = data[i], data[i + 1]
        if n < 2 or i + n > len(data):
            return None
        out.append((t, data[i + 2:i + n]))
        i += n
    return out if i == len(data) else None


def _pack_options(opts):
    return b"".join(bytes([t, len(v) + 2]) + v for t, v in opts)


def _ip(addr):
    return bytes(int(x) for x in addr.split("."))


class PPPPeer:
    def __init__(self, write, on_ip, local_ip, device_ip, dns_ip):
        self.write = write
        self.on_ip = on_ip
        self.local_ip = _ip(local_ip)
        self.device_ip = _ip(device_ip)
        self.dns = _ip(dns_ip)
        self.buf = bytearray()
        self.esc = False
        self.bad_fcs = 0
        self.frames_in = 0
        self.echo_replies = 0
        self.lcp_open = False  # both Configure-Requests acked
        self._lcp_acked_ours = False
        self._lcp_acked_theirs = False
        self._ipcp_acked_ours = False
        self._ipcp_acked_theirs = False
        self.ip_up = False
        self.terminated = False
        self._id = 0
        self.log = []

    def _next_id(self):
        self._id = (self._id + 1) & 0xFF
        return self._id

    # ---- receiving ----

    def feed(self, data):
        for b in data:
            if b == FLAG:
                if self.buf:
                    self._frame(bytes(self.buf))
                self.buf.clear()
                self.esc = False
            elif b == ESC:
                self.esc = True
            else:
                if self.esc:
                    b ^= 0x20
                    self.esc = False
                if len(self.buf) < MAX_FRAME:
                    self.buf.append(b)

    def _frame(self, f):
        if len(f) < 4 or fcs16(f) != 0xF0B8:
            self.bad_fcs += 1
            return
        f = f[:-2]
        if f[:2] == b"\xff\x03":  # address/control may be compressed (ACFC)
            f = f[2:]
        if f and f[0] & 1:  # a 1-byte protocol field (PFC)
            proto, payload = f[0], f[1:]
        elif len(f) >= 2:
            proto, payload = struct.unpack("!H", f[:2])[0], f[2:]
        else:
            return
        self.frames_in += 1
        if proto == PROTO_LCP:
            self._lcp(payload)
        elif proto == PROTO_IPCP:
            self._ipcp(payload)
        elif proto == PROTO_IP:
            if self.ip_up:
                self.on_ip(payload)
        elif self.lcp_open:
            # IPv6CP, CCP...: not spoken here
            self._send(PROTO_LCP, PROTO_REJ, self._next_id(), struct.pack("!H", proto) + payload[:1400])

    def _send(self, proto, code, ident, data):
        self.write(frame(proto, struct.pack("!BBH", code, ident, len(data) + 4) + data))

    def _packet(self, payload):
        if len(payload) < 4:
            return None
        code, ident, n = struct.unpack("!BBH", payload[:4])
        if n < 4 or n > len(payload):
            return None
        return code, ident, payload[4:n]

    def start(self):
        """Our LCP Configure-Request (no options: defaults suit us)."""
        self._send(PROTO_LCP, CONF_REQ, self._next_id(), b"")

    def _lcp(self, payload):
        p = self._packet(payload)
        if p is None:
            return
        code, ident, data = p
        self.log.append(("lcp", code))
        if code == CONF_REQ:
            opts = _options(data)
            if opts is None:
                return
            bad = [(t, v) for t, v in opts if t not in LCP_OK]
            if bad:
                self._send(PROTO_LCP, CONF_REJ, ident, _pack_options(bad))
                return
            self._send(PROTO_LCP, CONF_ACK, ident, data)
            self._lcp_acked_theirs = True
            if not self._lcp_acked_ours:
                self.start()
        elif code == CONF_ACK:
            self._lcp_acked_ours = True
        elif code in (CONF_NAK, CONF_REJ):
            self.start()
        elif code == ECHO_REQ:
            self._send(PROTO_LCP, ECHO_REP, ident, b"\0\0\0\0" + data[4:])
            self.echo_replies += 1
            return
        elif code == TERM_REQ:
            self._send(PROTO_LCP, TERM_ACK, ident, b"")
            self.terminated = True
            self.lcp_open = self.ip_up = False
            self._lcp_acked_ours = self._lcp_acked_theirs = False
            self._ipcp_acked_ours = self._ipcp_acked_theirs = False
            return
        was = self.lcp_open
        self.lcp_open = self._lcp_acked_ours and self._lcp_acked_theirs
        if self.lcp_open and not was:
            self._send(PROTO_IPCP, CONF_REQ, self._next_id(),
                       _pack_options([(IPCP_ADDR, self.local_ip)]))

    def _ipcp(self, payload):
        p = self._packet(payload)
        if p is None or not self.lcp_open:
            return
        code, ident, data = p
        self.log.append(("ipcp", code))
        if code == CONF_REQ:
            opts = _options(data)
            if opts is None:
                return
            want = {IPCP_ADDR: self.device_ip, IPCP_DNS1: self.dns, IPCP_DNS2: self.dns}
            rej = [(t, v) for t, v in opts if t not in want]
            if rej:
                self._send(PROTO_IPCP, CONF_REJ, ident, _pack_options(rej))
                return
            nak = [(t, want[t]) for t, v in opts if v != want[t]]
            if nak:
                self._send(PROTO_IPCP, CONF_NAK, ident, _pack_options(nak))
                return
            self._send(PROTO_IPCP, CONF_ACK, ident, data)
            self._ipcp_acked_theirs = True
        elif code == CONF_ACK:
            self._ipcp_acked_ours = True
        elif code in (CONF_NAK, CONF_REJ):
            self._send(PROTO_IPCP, CONF_REQ, self._next_id(),
                       _pack_options([(IPCP_ADDR, self.local_ip)]))
        elif code == TERM_REQ:
            self._send(PROTO_IPCP, TERM_ACK, ident, b"")
            self.ip_up = False
            self._ipcp_acked_ours = self._ipcp_acked_theirs = False
            return
        self.ip_up = self._ipcp_acked_ours and self._ipcp_acked_theirs

    def hangup(self):
        """Ends the link as a peer that hangs up does: LCP Terminate-Request, all layers down."""
        self._send(PROTO_LCP, TERM_REQ, self._next_id(), b"")
        self.lcp_open = self.ip_up = False
        self._lcp_acked_ours = self._lcp_acked_theirs = False
        self._ipcp_acked_ours = self._ipcp_acked_theirs = False

    # ---- sending ----

    def send_ip(self, packet):
        if self.ip_up:
            self.write(frame(PROTO_IP, bytes(packet)))
