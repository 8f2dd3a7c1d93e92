"""libslirp (Debian libslirp0, QEMU's userspace NAT) through ctypes: a virtual 10.0.2.0/24
network whose gateway 10.0.2.2 is the host's 127.0.0.1, with no root and no /dev/net/tun.

slirp speaks Ethernet; the PPP link carries bare IP, so outgoing IP packets get an Ethernet
header here and slirp's ARP requests for the device are answered here.

Time: slirp's TCP timers (retransmits to the device, delayed ACKs) read `clock_ns()`, which the
caller sets to the emulated chip's clock, so the guest-facing TCP runs in the device's time."""

import ctypes
import ctypes.util
import select
import socket
import struct

NET = "10.0.2.0"
MASK = "255.255.255.0"
HOST = "10.0.2.2"  # the host's 127.0.0.1 as the device sees it
DNS = "10.0.2.3"
DEVICE = "10.0.2.15"

POLL_IN, POLL_OUT, POLL_PRI, POLL_ERR, POLL_HUP = 1, 2, 4, 8, 16
SLIRP_MAC = bytes.fromhex("525500000202")
DEVICE_MAC = bytes.fromhex("525400123456")
ETH_IP, ETH_ARP = 0x0800, 0x0806


class SlirpError(Exception):
    pass


def in_addr(ip):
    # struct in_addr by value: its network-order bytes read as a host (little-endian) uint32
    return struct.unpack("<I", socket.inet_aton(ip))[0]


class SlirpConfig(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint32), ("restricted", ctypes.c_int), ("in_enabled", ctypes.c_bool),
        ("vnetwork", ctypes.c_uint32), ("vnetmask", ctypes.c_uint32), ("vhost", ctypes.c_uint32),
        ("in6_enabled", ctypes.c_bool), ("vprefix_addr6", ctypes.c_ubyte * 16),
        ("vprefix_len", ctypes.c_uint8), ("vhost6", ctypes.c_ubyte * 16),
        ("vhostname", ctypes.c_char_p), ("tftp_server_name", ctypes.c_char_p),
        ("tftp_path", ctypes.c_char_p), ("bootfile", ctypes.c_char_p),
        ("vdhcp_start", ctypes.c_uint32), ("vnameserver", ctypes.c_uint32),
        ("vnameserver6", ctypes.c_ubyte * 16), ("vdnssearch", ctypes.c_void_p),
        ("vdomainname", ctypes.c_char_p), ("if_mtu", ctypes.c_size_t), ("if_mru", ctypes.c_size_t),
        ("disable_host_loopback", ctypes.c_bool), ("enable_emu", ctypes.c_bool),
    ]


WRITE_CB = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
ERROR_CB = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
CLOCK_CB = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
TIMER_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
TIMER_NEW_CB = ctypes.CFUNCTYPE(ctypes.c_void_p, TIMER_CB, ctypes.c_void_p, ctypes.c_void_p)
TIMER_FREE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
TIMER_MOD_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
FD_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
NOTIFY_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
ADD_POLL_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
GET_REVENTS_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class SlirpCb(ctypes.Structure):
    _fields_ = [
        ("send_packet", WRITE_CB), ("guest_error", ERROR_CB), ("clock_get_ns", CLOCK_CB),
        ("timer_new", TIMER_NEW_CB), ("timer_free", TIMER_FREE_CB), ("timer_mod", TIMER_MOD_CB),
        ("register_poll_fd", FD_CB), ("unregister_poll_fd", FD_CB), ("notify", NOTIFY_CB),
    ]


def _lib():
    name = ctypes.util.find_library("slirp") or "libslirp.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise SlirpError(f"libslirp is not installed ({e}); install the Debian package libslirp0")
    lib.slirp_new.restype = ctypes.c_void_p
    lib.slirp_new.argtypes = [ctypes.POINTER(SlirpConfig), ctypes.POINTER(SlirpCb), ctypes.c_void_p]
    lib.slirp_input.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.slirp_pollfds_fill.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                                       ADD_POLL_CB, ctypes.c_void_p]
    lib.slirp_pollfds_poll.argtypes = [ctypes.c_void_p, ctypes.c_int, GET_REVENTS_CB, ctypes.c_void_p]
    lib.slirp_add_hostfwd.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_int,
                                      ctypes.c_uint32, ctypes.c_int]
    lib.slirp_cleanup.argtypes = [ctypes.c_void_p]
    return lib


_TO_POLL = ((POLL_IN, select.POLLIN), (POLL_OUT, select.POLLOUT), (POLL_PRI, select.POLLPRI),
            (POLL_ERR, select.POLLERR), (POLL_HUP, select.POLLHUP))


class Slirp:
    """One virtual network. `on_ip(packet)` gets each IP packet slirp sends to the device."""

    def __init__(self, on_ip, mtu=1500):
        self.lib = _lib()
        self.on_ip = on_ip
        self.now_ns = 0
        self.errors = []
        self.timers = {}  # id -> [callback, opaque, expire_ms or None]
        self._next_timer = 1
        self._fds = []
        cfg = SlirpConfig()
        cfg.version = 1
        cfg.in_enabled = True
        cfg.vnetwork, cfg.vnetmask, cfg.vhost = in_addr(NET), in_addr(MASK), in_addr(HOST)
        cfg.vdhcp_start, cfg.vnameserver = in_addr(DEVICE), in_addr(DNS)
        cfg.if_mtu = cfg.if_mru = mtu
        # the callbacks must live as long as slirp
        self._cb = SlirpCb(
            WRITE_CB(self._send_packet), ERROR_CB(self._guest_error), CLOCK_CB(lambda _o: self.now_ns),
            TIMER_NEW_CB(self._timer_new), TIMER_FREE_CB(self._timer_free),
            TIMER_MOD_CB(self._timer_mod), FD_CB(lambda fd, o: None), FD_CB(lambda fd, o: None),
            NOTIFY_CB(lambda o: None),
        )
        self._cfg = cfg
        self._add_poll = ADD_POLL_CB(self._add_poll_fd)
        self._get_revents = GET_REVENTS_CB(self._revents)
        self.ptr = self.lib.slirp_new(ctypes.byref(cfg), ctypes.byref(self._cb), None)
        if not self.ptr:
            raise SlirpError("slirp_new failed")

    # ---- callbacks from slirp ----

    def _send_packet(self, buf, n, _opaque):
        frame = ctypes.string_at(buf, n)
        kind = struct.unpack_from("!H", frame, 12)[0]
        if kind == ETH_IP:
            self.on_ip(frame[14:])
        elif kind == ETH_ARP:
            self._answer_arp(frame)
        return n

    def _guest_error(self, msg, _opaque):
        self.errors.append(msg.decode(errors="replace"))

    def _timer_new(self, cb, cb_opaque, _opaque):
        tid = self._next_timer
        self._next_timer += 1
        self.timers[tid] = [cb, cb_opaque, None]
        return tid

    def _timer_free(self, tid, _opaque):
        self.timers.pop(tid, None)

    def _timer_mod(self, tid, expire_ms, _opaque):
        if tid in self.timers:
            self.timers[tid][2] = expire_ms

    def _add_poll_fd(self, fd, events, _opaque):
        self._fds.append((fd, events))
        return len(self._fds) - 1

    def _revents(self, idx, _opaque):
        return self._ready.get(idx, 0)

    def _answer_arp(self, frame):
        # who-has DEVICE: answer with the device's (made-up) MAC
        op = struct.unpack_from("!H", frame, 20)[0]
        sender_mac, sender_ip = frame[22:28], frame[28:32]
        target_ip = frame[38:42]
        if op != 1 or target_ip != socket.inet_aton(DEVICE):
            return
        reply = (sender_mac + DEVICE_MAC + struct.pack("!H", ETH_ARP)
                 + struct.pack("!HHBBH", 1, ETH_IP, 6, 4, 2)
                 + DEVICE_MAC + target_ip + sender_mac + sender_ip)
        self.lib.slirp_input(self.ptr, reply, len(reply))

    # ---- driving ----

    def input_ip(self, packet):
        """An IP packet from the device."""
        frame = SLIRP_MAC + DEVICE_MAC + struct.pack("!H", ETH_IP) + bytes(packet)
        self.lib.slirp_input(self.ptr, frame, len(frame))

    def add_hostfwd(self, host_port, guest_port, host_ip="127.0.0.1", udp=False):
        """Forward host_ip:host_port (on this machine) to the device's guest_port."""
        r = self.lib.slirp_add_hostfwd(self.ptr, int(udp), in_addr(host_ip), host_port,
                                       in_addr(DEVICE), guest_port)
        if r < 0:
            raise SlirpError(f"cannot forward {host_ip}:{host_port} (in use?)")

    def poll(self, now_ns, wait_ms=0):
        """Sets slirp's clock, waits at most wait_ms (host time) for its sockets, serves them
        and its timers."""
        self.now_ns = int(now_ns)
        self._fds = []
        timeout = ctypes.c_uint32(max(0, int(wait_ms)))
        self.lib.slirp_pollfds_fill(self.ptr, ctypes.byref(timeout), self._add_poll, None)
        p = select.poll()
        for fd, ev in self._fds:
            mask = 0
            for s, m in _TO_POLL:
                if ev & s:
                    mask |= m
            p.register(fd, mask)
        self._ready = {}
        err = 0
        try:
            ready = p.poll(min(int(wait_ms), int(timeout.value))) if self._fds else []
        except OSError:
            ready, err = [], 1
        index = {}
        for i, (fd, _ev) in enumerate(self._fds):
            index.setdefault(fd, []).append(i)
        for fd, m in ready:
            ev = 0
            for s, pm in _TO_POLL:
                if m & pm:
                    ev |= s
            for i in index.get(fd, ()):
                self._ready[i] = ev
        self.lib.slirp_pollfds_poll(self.ptr, err, self._get_revents, None)
        now_ms = self.now_ns // 1_000_000
        for tid, t in list(self.timers.items()):
            if t[2] is not None and t[2] <= now_ms:
                t[2] = None
                t[0](t[1])

    def close(self):
        if self.ptr:
            self.lib.slirp_cleanup(self.ptr)
            self.ptr = None
