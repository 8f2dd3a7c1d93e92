"""On-chip network figures of the PPP board (RELAYS_PICO_PPP) in the emulated RP2040: its UART0
joined to the host's PPP peer and libslirp (tests/ppp/link.py). Times are emulated (the 125 MHz
model's clock), at the resolution of the pump's slice (SLICE_MS below) where the host takes part.

    .cache/venv/bin/python bench/ppp_board.py [--smoke]

Figures: boot to prompt; network.PPP connect() to IPCP up; a TCP round trip device -> host
127.0.0.1 -> device (32 bytes, p50/p99); a bare microdot route on the chip (POST /gpio/2 sets
GP2) from the request's bytes entering the UART to the pin change and to the answer's first
bytes out (p50/p99); GC heap free (after a collection) after boot, with PPP up, and the lowest
while four clients are served at once. Then the device REST API itself (tests/rest's
device_api_server.py on the chip, as tests/ppp/test_rest_on_chip.py runs it): JWT verify first
time and cached (cycles), Ed25519 verify of a manifest-sized message (ms), POST /gpio/r1 with a token to GP2 and to the answer (p50/p99), and the
lowest heap sampled (control port, after a collection) while four clients are served.

FIRST DATA: each POST is a new connection whose request follows the handshake at once, as
HTTP clients send it. MicroPython 1.25's modlwip refuses data for a connection not yet
accept()ed (_lwip_tcp_recv_unaccepted returns ERR_BUF) and lwIP hands refused data over again
only from tcp_fasttmr, every 250 ms: the time to the pin was ~215-230 ms, mostly that wait.
patches/micropython/modlwip-refused-data-on-accept.patch (applied by tools/deps.sh mpy-patches)
hands it over at accept(): p50 ~16 ms (bare microdot) and ~27 ms (REST API) to the pin. A UF2
built from an unpatched tree (MPY_DIR=) still shows the wait, on the chip as on silicon."""

import argparse
import http.client
import json
import os
import socket
import struct
import sys
import threading
from pathlib import Path

from artifacts import ROOT
from report import table, write

sys.path.insert(0, str(ROOT / "tests" / "ppp"))

from harness import CLOCK_HZ, MS  # noqa: E402
from link import BoardCode, PPPBoard  # noqa: E402
from rest_program import board_program, free_port, request, rh  # noqa: E402
from slirp import HOST  # noqa: E402

UF2 = Path(os.environ.get("PPP_UF2", ROOT / ".cache" / "build" / "rp2-RELAYS_PICO_PPP" / "firmware.uf2"))
SLICE_MS = 0.25
REST_PORT = 80

OPEN = """
import gc, time, network, machine
gc.collect()
heap_boot = gc.mem_free()
u = machine.UART(0, 921600, rxbuf=2048, txbuf=2048)
p = network.PPP(u)
t_connect = time.ticks_us()
p.connect()
"""
WAIT_UP = """
for _ in range(5000):
    if p.isconnected():
        break
    time.sleep_ms(1)
up_us = time.ticks_diff(time.ticks_us(), t_connect)
gc.collect()
print(p.isconnected(), up_us, heap_boot, gc.mem_free())
"""
RTT = """
import socket
s = socket.socket()
s.connect(('%s', %d))
rtt = []
for i in range(%d):
    t = time.ticks_us()
    s.send(b'r' * 32)
    n = 0
    while n < 32:
        n += len(s.recv(64))
    rtt.append(time.ticks_diff(time.ticks_us(), t))
s.close()
print(rtt)
"""
SERVER = """
import asyncio
from microdot import Microdot
pin = machine.Pin(2, machine.Pin.OUT, value=0)
app = Microdot()
low = [gc.mem_free()]
served = [0]

@app.post('/gpio/2')
async def gpio(request):
    v = 1 if request.json.get('on') else 0
    pin.value(v)
    served[0] += 1
    if request.args.get('heap'):
        # live data only: what a collection leaves (not done for the timed requests)
        gc.collect()
        f = gc.mem_free()
        if f < low[0]:
            low[0] = f
    return {'pin': 2, 'value': v}

@app.get('/heap')
async def heap(request):
    return {'served': served[0], 'lowest': low[0]}

async def main():
    # 'serving' only once the socket listens, so no request meets a closed port
    task = asyncio.create_task(app.start_server(host='0.0.0.0', port=%d))
    while app.server is None:
        await asyncio.sleep_ms(1)
    print('serving')
    await task

asyncio.run(main())
"""


def post(port, body, path="/gpio/2"):
    """POST /gpio/2 in one write (http.client writes headers and body apart, and the second
    segment then waits on Nagle for the device's delayed ACK: ~200 ms that are no work of
    the device's). -> (status, body)"""
    req = ("POST %s HTTP/1.1\r\nHost: device\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (path, len(body), body)).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as c:
        c.sendall(req)
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def pct(vals, q):
    s = sorted(vals)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def _tcp(pkt):
    """(src_port, dst_port, payload length) of an IPv4 TCP packet, else None."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    sport, dport = struct.unpack_from("!HH", pkt, ihl)
    doff = (pkt[ihl + 12] >> 4) * 4
    return sport, dport, total - ihl - doff


class Marks:
    """Emulated times of the REST port's data packets as they cross the link."""

    def __init__(self, board):
        self.board = board
        self.req_in = []  # host -> device data to REST_PORT: the slice that carries them
        self.ans_out = []  # device -> host data from REST_PORT
        to_dev, from_dev = board.peer.send_ip, board.slirp.input_ip

        def send_ip(pkt):
            t = _tcp(pkt)
            if t and t[1] == REST_PORT and t[2] > 0:
                self.req_in.append(board.emu_ns)
            to_dev(pkt)

        def input_ip(pkt):
            t = _tcp(pkt)
            if t and t[0] == REST_PORT and t[2] > 0:
                self.ans_out.append(board.emu_ns)
            from_dev(pkt)

        board.peer.send_ip = send_ip
        board.peer.on_ip = input_ip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny counts")
    args = ap.parse_args(argv)
    n_rtt, n_http, n_conc = (3, 3, 1) if args.smoke else (50, 40, 5)
    if not UF2.exists():
        print(f"no firmware at {UF2}: make firmware BOARD=RELAYS_PICO_PPP", file=sys.stderr)
        return 1
    b = PPPBoard(UF2, log=ROOT / ".cache" / "hil" / "ppp_bench.log")
    try:
        return run(b, n_rtt, n_http, n_conc)
    except Exception:
        # what the board printed tells why it did not answer
        code = getattr(b, "last_code", None)
        if code is not None:
            code.done()
            print("board output:", code.text[-2000:], file=sys.stderr)
        raise
    finally:
        b.close()


def measure(b, marks, host_port, n_http, first=0):
    """n_http POSTs: (ms to the pin change, ms to the answer's first bytes), emulated."""
    to_pin, to_answer = [], []
    for i in range(n_http):
        want = (first + i + 1) % 2  # the pin changes on every request
        since = b.emu_ns
        k_in, k_out = len(marks.req_in), len(marks.ans_out)
        status, body = post(host_port, '{"on": %s}' % ("true" if want else "false"))
        if status != 200 or b'"value": %d' % want not in body:
            raise RuntimeError(f"request {i}: {status} {body!r}")
        t_in = marks.req_in[k_in]
        t_out = marks.ans_out[k_out]
        log = b.call("log", pins=[2], since=int(since / 8))["log"]
        pin_ns = [e[0] * 8 for e in log if e[3] == want and e[0] * 8 >= t_in]
        if not pin_ns:
            raise RuntimeError(f"request {i}: GP2 never went to {want}")
        to_pin.append((pin_ns[0] - t_in) / 1e6)
        to_answer.append((t_out - t_in) / 1e6)
    return to_pin, to_answer


JWT = """
import time, machine
from iotlib.jwt_validator import JWTValidator
machine.RTC().datetime(%r)
v = JWTValidator(%r, %r, %r, time.time, 30)
tok = %r
t = time.ticks_us()
v.validate(tok)
first = time.ticks_diff(time.ticks_us(), t)
t = time.ticks_us()
v.validate(tok)
cached = time.ticks_diff(time.ticks_us(), t)
print(first, cached)
"""


ED25519 = """
import time
from binascii import unhexlify
from iotlib import ed25519
pub, sig, msg = unhexlify(%r), unhexlify(%r), unhexlify(%r)
t = time.ticks_us()
ok = ed25519.verify(pub, sig, msg)
print(ok, time.ticks_diff(time.ticks_us(), t))
"""


def ed25519_ms(b):
    """Ed25519 verify on the chip (iotlib.ed25519, pure Python) of a message the size of an OTA
    release manifest, signed here: emulated ms."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed: deterministic input
    msg = json.dumps({"kind": "app", "version": "1.2.0", "counter": 7, "boards": ["RPI_PICO_W"],
                      "size": 123456, "sha256": "ab" * 32, "tenant": None}).encode()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    out = b.emu.exec(ED25519 % (pub.hex(), key.sign(msg).hex(), msg.hex()), 20000 * MS).split()
    if out[0] != "True":
        raise RuntimeError(f"the board refused a good signature: {out}")
    return int(out[1]) / 1000, len(msg)


def rest_api(uf2, n_http, n_conc):
    """The device REST API (tests/rest/device_api_server.py on the chip, as test_rest_on_chip
    runs it): JWT verify cost, POST /gpio/r1 to the pin and to the answer, heap under 4 clients."""
    import time as _t


    b = PPPBoard(uf2, log=ROOT / ".cache" / "hil" / "ppp_bench_rest.log")
    try:
        b.slice_ms = SLICE_MS
        b.emu.prompt()
        g = _t.gmtime()
        rtc = (g.tm_year, g.tm_mon, g.tm_mday, g.tm_wday, g.tm_hour, g.tm_min, g.tm_sec, 0)
        first, cached = (int(x) for x in b.emu.exec(
            JWT % (rtc, rh.KEY.decode(), rh.ISSUER, rh.AUDIENCE, rh.token()), 2000 * MS).split())
        ed_ms, ed_len = ed25519_ms(b)
        b.emu.exec(OPEN)
        b.start()
        out, err = BoardCode(b, WAIT_UP).result(120)
        if err or not out.startswith("True"):
            raise RuntimeError(f"PPP did not come up: {out} {err}")
        port, ctl = free_port(), free_port()
        with b.lock:
            b.slirp.add_hostfwd(port, REST_PORT)
            b.slirp.add_hostfwd(ctl, 8080)
            marks = Marks(b)
        settings = {"port": REST_PORT, "control_port": 8080, "data_dir": "/ram/d",
                    "device": rh.DEVICE, "jwt": {"key": rh.KEY.decode(), "issuer": rh.ISSUER,
                                                 "audience": rh.AUDIENCE},
                    "tenant": rh.TENANT, "namespace": rh.NAMESPACE}
        server = BoardCode(b, board_program(settings))
        b.last_code = server
        b.wait_for(lambda: server.done() or "serving on" in server.text, 300, "the REST API")
        for _ in range(50):
            try:
                if request(ctl, "GET", "/api", timeout=10)[0] == 200:
                    break
            except (OSError, IndexError, ValueError):
                _t.sleep(0.2)
        tok = rh.token()
        to_pin, to_answer = [], []
        for i in range(n_http):
            want = (i + 1) % 2
            since = b.emu_ns
            k_in, k_out = len(marks.req_in), len(marks.ans_out)
            st, body = request(port, "POST", "/gpio/r1", {"state": "HIGH" if want else "LOW"}, tok)
            if st != 200:
                raise RuntimeError(f"POST /gpio/r1: {st} {body}")
            t_in = marks.req_in[k_in]
            log = b.call("log", pins=[2], since=int(since / 8))["log"]
            pin_ns = [e[0] * 8 for e in log if e[3] == want and e[0] * 8 >= t_in]
            if not pin_ns:
                raise RuntimeError(f"request {i}: GP2 never went to {want}")
            to_pin.append((pin_ns[0] - t_in) / 1e6)
            to_answer.append((marks.ans_out[k_out] - t_in) / 1e6)
        results, heaps = [], []
        stop = threading.Event()

        def client():
            for _ in range(n_conc):
                results.append(request(port, "GET", "/gpio/r1", None, tok)[0])

        def sampler():
            while not stop.is_set():
                heaps.append(request(ctl, "GET", "/api")[1]["heap_free"])

        threads = [threading.Thread(target=client) for _ in range(4)]
        hs = threading.Thread(target=sampler)
        hs.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        stop.set()
        hs.join(600)
        if results.count(200) != 4 * n_conc:
            raise RuntimeError(f"concurrent GETs: {results}")
        return {
            "jwt_verify_first_cycles": first * 125, "jwt_verify_cached_cycles": cached * 125,
            "ed25519_verify_ms": ed_ms, "ed25519_message_bytes": ed_len,
            "rest_post_gpio_to_pin_ms_p50": pct(to_pin, 0.5),
            "rest_post_gpio_to_pin_ms_p99": pct(to_pin, 0.99),
            "rest_post_gpio_to_answer_ms_p50": pct(to_answer, 0.5),
            "rest_post_gpio_to_answer_ms_p99": pct(to_answer, 0.99),
            "rest_heap_free_lowest_sampled_4_clients": min(heaps) if heaps else None,
            "rest_heap_samples": len(heaps),
        }
    finally:
        b.close()


def run(b, n_rtt, n_http, n_conc):
    b.slice_ms = SLICE_MS
    boot = b.emu.prompt()["since_reset"]
    b.emu.exec(OPEN)
    b.start()
    out, err = BoardCode(b, WAIT_UP).result(120)
    if err:
        raise RuntimeError(err)
    ok, up_us, heap_boot, heap_up = out.split()
    if ok != "True":
        raise RuntimeError("PPP did not come up")

    # TCP round trips to an echo server on the host's 127.0.0.1
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(60)

    def echo():
        c, _ = srv.accept()
        with c:
            c.settimeout(60)
            while True:
                d = c.recv(4096)
                if not d:
                    break
                c.sendall(d)

    threading.Thread(target=echo, daemon=True).start()
    out, err = BoardCode(b, RTT % (HOST, srv.getsockname()[1], n_rtt)).result(300)
    srv.close()
    if err:
        raise RuntimeError(err)
    rtt_ms = [us / 1000 for us in eval(out.strip())]  # a list of ints printed by the board

    # a bare microdot route switching GP2, through the forwarded host port
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    host_port = probe.getsockname()[1]
    probe.close()
    with b.lock:
        b.slirp.add_hostfwd(host_port, REST_PORT)
        marks = Marks(b)
    server = BoardCode(b, SERVER % REST_PORT)
    b.last_code = server
    b.wait_for(lambda: server.done() or "serving" in server.text, 120, "the server")
    to_pin, to_answer = measure(b, marks, host_port, n_http)

    # four clients at once, the board sampling its heap after a collection in each request
    results = []

    def client(k):
        for j in range(n_conc):
            results.append(post(host_port, '{"on": %s}' % ("true" if (k + j) % 2 else "false"),
                                "/gpio/2?heap=1"))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if len(results) != 4 * n_conc or any(st != 200 for st, _ in results):
        raise RuntimeError(f"concurrent clients: {[st for st, _ in results]}")
    c = http.client.HTTPConnection("127.0.0.1", host_port, timeout=120)
    c.request("GET", "/heap")
    got = json.loads(c.getresponse().read())
    c.close()
    if got["served"] != n_http + 4 * n_conc:
        raise RuntimeError(f"the board served {got['served']} of {n_http} requests")
    lowest = got["lowest"]

    figures = {
        "boot_to_prompt_ms": boot / MS, "ppp_connect_to_up_ms": int(up_us) / 1000,
        "tcp_rtt_ms_p50": pct(rtt_ms, 0.5), "tcp_rtt_ms_p99": pct(rtt_ms, 0.99),
        "post_gpio_to_pin_ms_p50": pct(to_pin, 0.5), "post_gpio_to_pin_ms_p99": pct(to_pin, 0.99),
        "post_gpio_to_answer_ms_p50": pct(to_answer, 0.5),
        "post_gpio_to_answer_ms_p99": pct(to_answer, 0.99),
        "heap_free_after_boot": int(heap_boot), "heap_free_ppp_up": int(heap_up),
        "heap_free_lowest_4_clients": lowest, "concurrent_requests": 4 * n_conc,
        **rest_api(UF2, n_http, n_conc),
        "slice_ms": SLICE_MS, "requests": n_http, "round_trips": n_rtt, "clock_hz": CLOCK_HZ,
    }
    rows = [[k, v] for k, v in figures.items()]
    t = table("PPP board on the emulated RP2040 (emulated time)", ["figure", "value"], rows)
    write("ppp_board", figures, [t])
    return 0


if __name__ == "__main__":
    sys.exit(main())
