"""A request that reaches the chip before accept() is readable as soon as accept() returns.

modlwip refuses data on a connection not yet accepted (lwIP keeps it as refused_data); without
the project's patch (patches/micropython/modlwip-refused-data-on-accept.patch) lwIP offers it
again only from its 250 ms TCP timer, so a server's first read waits for that timer. Here the
host sends each request with its connection, sees the bytes go into the chip's UART before it
lets the chip call accept(), and the chip reads without blocking right after accept()."""

import ast
import socket
import struct

from harness import MS
from link import BoardCode
from rest_program import free_port
from slirp import DEVICE

CONNECTIONS = 3  # a lucky 250 ms timer tick between arrival and accept() cannot pass all three
SETTLE_MS = 10  # emulated time the chip runs with the bytes in before it may accept()

SERVER = """
import socket, select, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 80))
s.listen(%d)
po = select.poll()
po.register(s, select.POLLIN)
print('listening')
got = []
for i in range(%d):
    for _ in range(20000):
        if po.poll(0):
            break
        time.sleep_ms(1)
    print('pending', i)
    sys.stdin.read(1)  # the host's go: the request is in the chip by now
    c, a = s.accept()
    c.setblocking(False)
    try:
        now = c.recv(256)
    except OSError as e:
        now = e.errno
    # how long a blocking read would have waited for the bytes (emulated clock)
    c.setblocking(True)
    c.settimeout(2)
    t = time.ticks_us()
    late = b'' if isinstance(now, bytes) else c.recv(256)
    waited_us = time.ticks_diff(time.ticks_us(), t)
    got.append((now, late, waited_us))
    c.send(b'ok')
    c.close()
s.close()
print(repr(got))
""" % (CONNECTIONS, CONNECTIONS)


def tcp_payload_to(packet, ip, port):
    """The TCP payload of an IPv4 packet to ip:port (b"" for anything else)."""
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != 6:
        return b""
    if packet[16:20] != socket.inet_aton(ip):
        return b""
    ihl = (packet[0] & 15) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    tcp = packet[ihl:total]
    if struct.unpack("!H", tcp[2:4])[0] != port:
        return b""
    return bytes(tcp[(tcp[12] >> 4) * 4:])


def test_request_sent_with_the_handshake_is_readable_at_accept(online):
    host_port = free_port()
    with online.lock:
        online.slirp.add_hostfwd(host_port, 80)
    # note when slirp hands the chip each request (emulated time of the slice that queues it)
    delivered = {}
    send_ip = online.peer.send_ip

    def watch(packet):
        payload = tcp_payload_to(packet, DEVICE, 80)
        if payload.startswith(b"GET /first/"):
            delivered.setdefault(payload, online.emu_ns)
        send_ip(packet)

    online.peer.send_ip = watch
    run = BoardCode(online, SERVER)
    online.wait_for(lambda: run.done() or "listening" in run.text, 60, "the chip to listen")
    requests = [b"GET /first/%d HTTP/1.0\r\n\r\n" % i for i in range(CONNECTIONS)]
    answers = []
    for i, req in enumerate(requests):
        with socket.create_connection(("127.0.0.1", host_port), timeout=60) as c:
            c.sendall(req)  # at once, as HTTP clients send it
            online.wait_for(lambda i=i: run.done() or "pending %d" % i in run.text, 60,
                            "connection %d queued on the chip" % i)
            online.wait_for(lambda r=req: r in delivered and online.emu_ns >= delivered[r] + SETTLE_MS * MS,
                            60, "request %d in the chip" % i)
            online.call("write", data="g")
            got = b""
            while len(got) < 2:
                d = c.recv(16)
                if not d:
                    break
                got += d
            answers.append(got)
    out, err = run.result(60)
    assert err == ""
    assert answers == [b"ok"] * CONNECTIONS
    got = ast.literal_eval(out.strip().splitlines()[-1])  # [(bytes or errno, bytes, us)]
    for i, (now, late, waited_us) in enumerate(got):
        # now is the errno (EAGAIN) if the bytes were still held back; late then shows the wait
        assert (i, now) == (i, requests[i]), "connection %d: %r, then after %d us: %r" % (
            i, now, waited_us, late)
