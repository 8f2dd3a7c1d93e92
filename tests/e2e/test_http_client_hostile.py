"""iotlib.http_client (unix build, small heap) against a hostile CPython server on 127.0.0.1.

Each trick is followed by an endless stream of filler bytes, so a client that trusts the
trick reads far past its limits. Every answer must be an HTTPError naming the problem, with
the bytes read bounded, and never a MemoryError."""

import json
import os
import socketserver
import subprocess
import threading

import pytest

import simulation as sim

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device_scripts",
                      "http_get_each.py")
HEAP = "96K"            # below what 200 KB of stacked chunks would take
READ_BOUND = 32 * 1024  # 16 KB body limit + 8 KB head + buffering slack
FILLER_LIMIT = 2 * 1024 * 1024
OK = b"HTTP/1.1 200 OK\r\n"

# path -> (what the server sends first, the text the error must contain)
TRICKS = {
    "/negative-chunk": (OK + b"Transfer-Encoding: chunked\r\n\r\n10\r\n" + b"a" * 16 + b"\r\n"
                        b"-fa0\r\n", "bad chunk size '-fa0'"),
    "/huge-chunk": (OK + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
                    "bad chunk size"),
    "/large-chunk": (OK + b"Transfer-Encoding: chunked\r\n\r\n7fffffff\r\n",
                     "response body exceeds 16384"),
    "/garbage-chunk": (OK + b"Transfer-Encoding: chunked\r\n\r\n0x10\r\n", "bad chunk size"),
    "/signed-chunk": (OK + b"Transfer-Encoding: chunked\r\n\r\n+10\r\n", "bad chunk size"),
    "/chunk-no-crlf": (OK + b"Transfer-Encoding: chunked\r\n\r\n4\r\nabcdXY", "not followed by CRLF"),
    "/endless-trailer": (OK + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
                         + b"T: x\r\n" * 100, "trailer lines"),
    "/endless-header": (OK + b"X-Endless: ", "longer than 2048 bytes"),
    "/too-many-headers": (OK + b"X-H: 1\r\n" * 100, "more than 40 response headers"),
    "/big-head": (OK + (b"X-Big: " + b"b" * 1500 + b"\r\n") * 10, "head longer than 8192"),
    "/interim-flood": (b"HTTP/1.1 100 Continue\r\n\r\n" * 50, "more than 4 interim"),
    "/length-overflow": (OK + b"Content-Length: 18446744073709551617\r\n\r\n", "bad Content-Length"),
    "/length-negative": (OK + b"Content-Length: -1\r\n\r\n", "bad Content-Length '-1'"),
    "/length-conflict": (OK + b"Content-Length: 5\r\nContent-Length: 50000\r\n\r\n",
                         "conflicting Content-Length"),
    "/length-and-chunked": (OK + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                            "both Transfer-Encoding and Content-Length"),
    "/unknown-encoding": (OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
                          "unsupported Transfer-Encoding"),
    "/longer-than-declared": (OK + b"Content-Length: 10\r\n\r\n" + b"z" * 4000,
                              "longer than its Content-Length 10"),
}

# well-formed answers, closed after the body: parsing stays correct for honest servers
FAIR = {
    "/fair-length": OK + b"Content-Length: 5\r\n\r\nhello",
    "/fair-chunked": OK + b"Transfer-Encoding: chunked\r\n\r\n4;x=1\r\nabcd\r\n3\r\nefg\r\n"
                     b"0\r\nT: 1\r\n\r\n",
}


class Hostile(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            d = sock.recv(1024)
            if not d:
                return
            head += d
        path = head.split(b" ")[1].decode()
        if path in FAIR:
            sock.sendall(FAIR[path])
            return
        first = TRICKS[path][0]
        sent = 0
        try:
            sock.sendall(first)
            while sent < FILLER_LIMIT:  # until the client hangs up
                sock.sendall(b"f" * 4096)
                sent += 4096
        except OSError:
            pass


@pytest.fixture
def hostile_server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Hostile)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def fetch_each(base, paths):
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % os.path.join(sim.ROOT, "python"))
    out = subprocess.run([sim.MICROPYTHON, "-X", "heapsize=" + HEAP, SCRIPT, base] + paths,
                         cwd=sim.ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return {r["path"]: r for r in map(json.loads, out.stdout.splitlines())}


def test_each_trick_is_a_clear_error_with_bounded_reads(hostile_server):
    results = fetch_each(hostile_server, sorted(TRICKS))
    assert sorted(results) == sorted(TRICKS)
    for path, (_, text) in TRICKS.items():
        r = results[path]
        assert "crash" not in r, r
        assert "error" in r, r
        assert text in r["error"], (path, r["error"])
        assert r["received"] <= READ_BOUND, (path, r["received"])


def test_fair_answers_after_the_tricks_still_work(hostile_server):
    results = fetch_each(hostile_server, ["/negative-chunk", "/fair-length", "/fair-chunked"])
    assert "bad chunk size" in results["/negative-chunk"]["error"]
    assert (results["/fair-length"]["status"], results["/fair-length"]["body_len"]) == (200, 5)
    assert (results["/fair-chunked"]["status"], results["/fair-chunked"]["body_len"]) == (200, 7)
