"""The PPP board's network on the emulated RP2040: lwIP's PPP client against the host's peer,
then TCP both ways through libslirp (the device to the host's 127.0.0.1, a host port forwarded
to the device)."""

import socket
import threading

from link import BoardCode
from slirp import DEVICE, DNS, HOST


def test_ppp_comes_up_with_assigned_address_and_dns(online):
    out, err = BoardCode(online, "print(p.isconnected(), p.ifconfig())").result(30)
    assert err == ""
    assert out.strip() == "True ('%s', '255.255.255.255', '%s', '%s')" % (DEVICE, HOST, DNS)
    assert online.peer.bad_fcs == 0


def test_device_reaches_host_loopback_through_nat(online):
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(30)
    port = srv.getsockname()[1]
    seen = {}

    def serve():
        c, addr = srv.accept()
        with c:
            c.settimeout(30)
            seen["data"] = c.recv(100)
            c.sendall(seen["data"][::-1])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    code = ("import socket\ns = socket.socket()\ns.connect(('%s', %d))\n"
            "s.send(b'from the chip')\nprint(s.recv(100))\ns.close()\n" % (HOST, port))
    out, err = BoardCode(online, code).result(60)
    t.join(10)
    srv.close()
    assert err == ""
    assert seen["data"] == b"from the chip"
    assert out.strip() == "b'pihc eht morf'"


def test_host_port_forwarded_to_device(online):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    host_port = probe.getsockname()[1]
    probe.close()
    with online.lock:
        online.slirp.add_hostfwd(host_port, 80)
    code = ("import socket\ns = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', 80))\ns.listen(1)\nprint('listening')\n"
            "c, a = s.accept()\nd = c.recv(100)\nc.send(b'device got ' + d)\nc.close()\ns.close()\n")
    run = BoardCode(online, code)
    online.wait_for(lambda: run.done() or "listening" in run.text, 60, "the device to listen")
    with socket.create_connection(("127.0.0.1", host_port), timeout=60) as c:
        c.sendall(b"hello device")
        got = b""
        while True:
            d = c.recv(100)
            if not d:
                break
            got += d
    out, err = run.result(60)
    assert err == ""
    assert got == b"device got hello device"
