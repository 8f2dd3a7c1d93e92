"""The device REST API (iotlib.rest_api with the real JWTValidator, RBAC, rate limiter and
RelayGPIOManager on the relaygpio C module) served by the PPP board on the emulated RP2040,
reached from the host through the forwarded port. The board-side program is tests/rest's
device_api_server.py as it is, listening on the PPP address, with its data on a RAM LittleFS
(the emulated flash takes no writes). Tokens are HS256, made on the host with the device's key
(tests/rest/rest_harness.token), not by the platform."""

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import OPEN_PPP, WAIT_UP, UF2
from link import BoardCode, PPPBoard

REST = Path(__file__).resolve().parent.parent / "rest"
sys.path.insert(0, str(REST))
import rest_harness as rh  # noqa: E402

RAM_FS = """
import vfs, machine
class RAMBlocks:
    def __init__(self, size, count):
        self.size = size
        self.data = bytearray(size * count)
    def readblocks(self, n, buf, off=0):
        a = n * self.size + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, n, buf, off=0):
        a = n * self.size + (off or 0)
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.size
        if op == 5:
            return self.size
        if op == 6:
            return 0
ram = RAMBlocks(512, 96)
vfs.VfsLfs2.mkfs(ram)
vfs.mount(vfs.VfsLfs2(ram), '/ram')
machine.RTC().datetime(%r)
"""


def board_program(settings):
    src = (REST / "device_api_server.py").read_text()
    assert src.rstrip().endswith("main()")
    # served on the PPP address instead of the unix build's loopback; no argv on the board
    src = src.rstrip()[:-len("main()")].replace('host="127.0.0.1"', 'host="0.0.0.0"')
    t = time.gmtime()
    rtc = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)
    return (RAM_FS % (rtc,)) + src + "\nasyncio.run(serve(json.loads(%r)))\n" % json.dumps(settings)


def host_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.1\r\nHost: device\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        method, path, len(data))
    if body is not None:
        head += "Content-Type: application/json\r\n"
    if token:
        head += "Authorization: Bearer %s\r\n" % token
    with socket.create_connection(("127.0.0.1", port), timeout=120) as c:
        c.sendall(head.encode() + b"\r\n" + data)
        got = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            got += d
    h, _, rest = got.partition(b"\r\n\r\n")
    return int(h.split()[1]), json.loads(rest) if rest else None


@pytest.fixture(scope="module")
def rest_board(tmp_path_factory):
    if not UF2.exists():
        pytest.fail(f"no firmware at {UF2}: build it with `make firmware BOARD=RELAYS_PICO_PPP`")
    b = PPPBoard(UF2, log=tmp_path_factory.mktemp("ppp") / "emulator.log")
    try:
        b.emu.prompt()
        assert b.emu.exec(OPEN_PPP).strip() == "connecting"
        b.start()
        b.wait_for(lambda: b.peer.ip_up, 60, "PPP up")
        assert BoardCode(b, WAIT_UP).result(60)[0].strip() == "True"
        port = host_port()
        with b.lock:
            b.slirp.add_hostfwd(port, 80)
        settings = {"port": 80, "control_port": 8080, "data_dir": "/ram/d", "device": rh.DEVICE,
                    "jwt": {"key": rh.KEY.decode(), "issuer": rh.ISSUER, "audience": rh.AUDIENCE},
                    "tenant": rh.TENANT, "namespace": rh.NAMESPACE}
        server = BoardCode(b, board_program(settings))
        b.wait_for(lambda: server.done() or "serving on" in server.text, 300, "the REST API")
        assert "serving on" in server.text, server.text[-1500:]
        # the listener opens just after the line is printed: bounded retries
        for _ in range(50):
            try:
                status, _ = request(port, "GET", "/health")
                if status == 200:
                    break
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.2)
        b.rest_port = port
        b.server = server
        yield b
    finally:
        b.close()


def gp(b, pin):
    return b.call("pins")["pins"][pin]


def test_token_switches_relay_and_emulated_gpio_follows(rest_board):
    b = rest_board
    op = rh.token()
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "HIGH"}, op)
    assert status == 200, body
    b.wait_for(lambda: gp(b, 2) == 1, 30, "GP2 high")
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "LOW"}, op)
    assert status == 200, body
    b.wait_for(lambda: gp(b, 2) == 0, 30, "GP2 low")


def test_bad_token_refused_relay_unchanged(rest_board):
    b = rest_board
    before = (gp(b, 2), gp(b, 3))
    log0 = len(b.call("log", pins=[2, 3])["log"])
    forged = rh.token(key=b"another-key-0123456789abcdef-0123")
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "TOGGLE"}, forged)
    assert status == 401 and body["error"], body
    status, body = request(b.rest_port, "POST", "/gpio/r2", {"state": "HIGH"}, None)
    assert status == 401, body
    assert (gp(b, 2), gp(b, 3)) == before
    assert len(b.call("log", pins=[2, 3])["log"]) == log0  # no pin moved, not even briefly


def test_four_concurrent_clients_served(rest_board):
    b = rest_board
    tok = rh.token()
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "HIGH"}, tok)
    assert status == 200, body
    results = []

    def client():
        for _ in range(3):
            results.append(request(b.rest_port, "GET", "/gpio/r1", None, tok))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 12
    assert all(st == 200 and body["state"] == "HIGH" for st, body in results), results
    assert gp(b, 2) == 1
