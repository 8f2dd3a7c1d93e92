"""The device REST API's board-side program for the PPP board: tests/rest's device_api_server.py
as it is, listening on the PPP address, with its data on a RAM LittleFS (the emulated flash takes
no writes); and a one-write HTTP client for the forwarded port."""

import json
import socket
import sys
import threading
import time
from pathlib import Path

REST = Path(__file__).resolve().parent.parent / "rest"
sys.path.insert(0, str(REST))
import rest_harness as rh  # noqa: E402, F401  (tokens, keys and the device config)

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_request(port, method, path, body=None, token=None, timeout=120, tls=None):
    """One request in one write on a new connection -> (status, body bytes). tls: an
    ssl.SSLContext for an https listener (the name checked is 127.0.0.1)."""
    data = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.1\r\nHost: device\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        method, path, len(data))
    if body is not None:
        head += "Content-Type: application/json\r\n"
    if token:
        head += "Authorization: Bearer %s\r\n" % token
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with c if tls is None else tls.wrap_socket(c, server_hostname="127.0.0.1") as c:
        c.sendall(head.encode() + b"\r\n" + data)
        got = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            got += d
    h, _, rest = got.partition(b"\r\n\r\n")
    return int(h.split()[1]), rest


def request(port, method, path, body=None, token=None, timeout=120, tls=None):
    """raw_request with the answer's JSON body decoded -> (status, body or None)."""
    status, rest = raw_request(port, method, path, body, token, timeout, tls)
    return status, json.loads(rest) if rest else None


def concurrent(clients, rounds, fn):
    """fn() run `rounds` times by each of `clients` threads at once -> every result."""
    results = []

    def client():
        for _ in range(rounds):
            results.append(fn())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results
