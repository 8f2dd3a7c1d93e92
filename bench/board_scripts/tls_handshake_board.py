# One TLS handshake with both ends on the board (bench/tls_handshake.py --board): the REST
# API's server end (ECDSA P-256 certificate) and a client end that checks it against the CA,
# joined by in-memory pipes, so the emulated RP2040 needs no network. The caller defines
# CERT, KEY and CA (DER bytes) and NOW (a time.localtime() tuple inside the certificates'
# validity) before this runs; it prints one JSON line: microseconds spent in each end (the
# emulated clock) and the lowest free GC heap seen between steps (mbedtls allocates there).
import gc
import io
import json
import time

import tls

try:
    import machine
    machine.RTC().datetime((NOW[0], NOW[1], NOW[2], 0, NOW[3], NOW[4], NOW[5], 0))  # noqa: F821
except (ImportError, AttributeError):
    pass


class _Pipe:
    def __init__(self):
        self.data = b""


class _End(io.IOBase):
    # one end of a pair of byte pipes; an empty pipe reads as "would block" (None)
    def __init__(self, rx, tx):
        self.rx = rx
        self.tx = tx

    def readinto(self, buf):
        data = self.rx.data
        n = min(len(buf), len(data))
        if not n:
            return None
        buf[:n] = data[:n]
        self.rx.data = data[n:]
        return n

    def write(self, buf):
        self.tx.data += bytes(buf)
        return len(buf)

    def ioctl(self, req, arg):
        return 0


def handshake():
    a, b = _Pipe(), _Pipe()
    sctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(CERT, KEY)  # noqa: F821
    cctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    cctx.verify_mode = tls.CERT_REQUIRED
    cctx.load_verify_locations(CA)  # noqa: F821
    gc.collect()
    free0 = low = gc.mem_free()
    server = sctx.wrap_socket(_End(a, b), server_side=True, do_handshake_on_connect=False)
    client = cctx.wrap_socket(_End(b, a), server_hostname="localhost",
                              do_handshake_on_connect=False)
    t_server = t_client = 0
    sent = got = None
    for _ in range(200):
        t = time.ticks_us()
        if sent is None:
            sent = client.write(b"hi")
        else:
            client.read(1)
        t_client += time.ticks_diff(time.ticks_us(), t)
        low = min(low, gc.mem_free())
        t = time.ticks_us()
        got = server.read(2)
        t_server += time.ticks_diff(time.ticks_us(), t)
        low = min(low, gc.mem_free())
        if got:
            break
    held = free0 - gc.mem_free()
    server.close()
    client.close()
    return {"ok": got == b"hi", "server_us": t_server, "client_us": t_client,
            "heap_peak_bytes": free0 - low, "heap_held_bytes": held, "heap_free_before": free0}


print(json.dumps(handshake()))
