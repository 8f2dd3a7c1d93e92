# The device side of bench/tls_handshake.py, on the MicroPython unix build: N TLS handshakes as
# the REST API's server (ECDSA P-256 certificate, what rest_service serves) and N as the
# platform's client (certificate chain checked against the CA), each timed with ticks_us. The
# memory a session holds is read twice: the GC heap (gc.mem_alloc) and, because the unix
# build's mbedtls allocates with the C library (the RP2040 build puts it in the GC heap),
# glibc's mallinfo2 through ffi. One JSON line per handshake on stdout.
#   micropython tls_handshake_device.py CERT.der KEY.der CA.der SERVER_PORT CLIENT_PORT N
import gc
import json
import socket
import sys
import time

import tls

try:  # glibc: struct mallinfo2 (10 size_t) comes back through a hidden pointer argument
    import ffi
    _mallinfo2 = ffi.open("libc.so.6").func("v", "mallinfo2", "p")
    _mi = bytearray(80)
except (ImportError, OSError, AttributeError):
    _mallinfo2 = None


def native_in_use():
    if _mallinfo2 is None:
        return None
    _mallinfo2(_mi)
    return int.from_bytes(_mi[56:64], "little")   # uordblks: bytes in use


def read(path):
    with open(path, "rb") as f:
        return f.read()


def measure(kind, handshake):
    gc.collect()
    heap0, native0 = gc.mem_alloc(), native_in_use()
    t0 = time.ticks_us()
    s = handshake()
    us = time.ticks_diff(time.ticks_us(), t0)
    heap1, native1 = gc.mem_alloc(), native_in_use()
    return s, {"kind": kind, "us": us, "heap_held": heap1 - heap0,
               "native_held": None if native0 is None else native1 - native0}


def main():
    cert, key, ca, server_port, client_port, n = sys.argv[1:7]
    n = int(n)
    server = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(read(cert), read(key))
    client = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    client.verify_mode = tls.CERT_REQUIRED
    client.load_verify_locations(read(ca))

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(socket.getaddrinfo("127.0.0.1", int(server_port))[0][-1])
    ls.listen(4)
    print(json.dumps({"listening": True}))
    for _ in range(n):
        raw, _addr = ls.accept()
        s, rec = measure("server", lambda: server.wrap_socket(raw, server_side=True))
        s.read(2)
        s.write(b"ok")
        s.close()
        print(json.dumps(rec))
    ls.close()
    addr = socket.getaddrinfo("127.0.0.1", int(client_port))[0][-1]
    for _ in range(n):
        raw = socket.socket()
        raw.connect(addr)
        s, rec = measure("client", lambda: client.wrap_socket(raw, server_hostname="localhost"))
        s.write(b"hi")
        s.read(2)
        s.close()
        print(json.dumps(rec))


main()
