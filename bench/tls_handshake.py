"""TLS handshake cost on the MicroPython unix build (mbedtls 3.6, ECDHE-ECDSA P-256): the device
as the REST API's TLS server and as the platform's TLS client, against CPython peers on
127.0.0.1. Time per handshake (median, p90) and the memory a session holds (GC heap and the
C library's heap, where the unix build's mbedtls allocates).

With --board: the same handshake on the emulated RP2040 (rp2040js, 125 MHz model), both ends
on the board joined by in-memory pipes (bench/board_scripts/tls_handshake_board.py): the
emulated time in each end and the GC heap mbedtls takes there (peak and held). The
emulator's cycle counts are exact for the instruction stream but model no flash-cache misses
(XIP): real silicon is slower by that, so read them as a lower bound.

    .cache/venv/bin/python bench/tls_handshake.py [--smoke] [-n N] [--board]

RPI_PICO has no `tls` module (rp2 enables it with the network stack, and rp2040js emulates no
WiFi chip), so --board runs a UF2 of bench/boards/RPI_PICO_TLS (RPI_PICO + MICROPY_PY_SSL),
given as HIL_UF2; build it with

    B=$PWD/.cache/build/rp2-RPI_PICO_TLS
    CMAKE_ARGS="-DMICROPY_LIB_DIR=$PWD/.cache/mpylib-stub -Dpicotool_DIR=$PWD/.cache/picotool/picotool" \
      make -C .cache/src/micropython-1.25.0/ports/rp2 BOARD_DIR=$PWD/bench/boards/RPI_PICO_TLS \
      BUILD=$B USER_C_MODULES=$PWD/cmodules/micropython.cmake FROZEN_MANIFEST=$PWD/manifest.py
    HIL_UF2=$B/firmware.uf2 .cache/venv/bin/python bench/tls_handshake.py --board
"""

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading

import artifacts
from artifacts import ROOT, UNIX_BIN, need, unix_env
from report import table, write

sys.path[:0] = [str(ROOT), str(ROOT / "tools")]
from local_ca import LocalCA  # noqa: E402
from reference_platform.process import free_port  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

DEVICE = artifacts.BENCH / "board_scripts" / "tls_handshake_device.py"
BOARD_SCRIPT = artifacts.BENCH / "board_scripts" / "tls_handshake_board.py"

def der_files(folder, cert, key, ca):
    out = {}
    for name, path in (("cert", cert), ("ca", ca)):
        from cryptography import x509
        c = x509.load_pem_x509_certificate(open(path, "rb").read())
        out[name] = os.path.join(folder, name + ".der")
        open(out[name], "wb").write(c.public_bytes(serialization.Encoding.DER))
    k = serialization.load_pem_private_key(open(key, "rb").read(), password=None)
    out["key"] = os.path.join(folder, "key.der")
    open(out["key"], "wb").write(k.private_bytes(serialization.Encoding.DER,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return out


def tls_server(ctx, n, port_box, ready):
    # CPython's side of the device's client handshakes: accept n, answer each
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(60)
    port_box.append(ls.getsockname()[1])
    ready.set()
    try:
        for _ in range(n):
            raw, _ = ls.accept()
            with ctx.wrap_socket(raw, server_side=True) as s:
                s.recv(2)
                s.sendall(b"ok")
    finally:
        ls.close()


def run(n):
    """-> (handshake records, (protocol, cipher), the DER files)"""
    need(UNIX_BIN, "unix")
    tmp = tempfile.mkdtemp(prefix="tls-bench-")
    ca = LocalCA(os.path.join(tmp, "ca"))
    cert, key = ca.issue("device")
    pcert, pkey = ca.issue("platform")
    der = der_files(tmp, cert, key, ca.cert_path)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pcert, pkey)
    port_box, ready = [], threading.Event()
    srv = threading.Thread(target=tls_server, args=(sctx, n, port_box, ready), daemon=True)
    srv.start()
    ready.wait(10)
    server_port = free_port()
    proc = subprocess.Popen([str(UNIX_BIN), str(DEVICE), der["cert"], der["key"], der["ca"],
                             str(server_port), str(port_box[0]), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=unix_env())
    assert json.loads(proc.stdout.readline()) == {"listening": True}
    cctx = ssl.create_default_context(cafile=ca.cert_path)
    suite = None
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", server_port), timeout=30) as raw:
            with cctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                suite = (s.version(), s.cipher()[0])
                s.sendall(b"hi")
                s.recv(2)
    out, err = proc.communicate(timeout=120)
    srv.join(10)
    if proc.returncode != 0:
        raise SystemExit("device script failed: %s" % err[-2000:])
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return recs, suite, der


def summary(recs, kind):
    rs = [r for r in recs if r["kind"] == kind]
    us = sorted(r["us"] for r in rs)
    native = [r["native_held"] for r in rs if r["native_held"] is not None]
    return {"count": len(rs), "median_ms": statistics.median(us) / 1000,
            "p90_ms": us[min(len(us) - 1, int(len(us) * 0.9))] / 1000,
            "min_ms": us[0] / 1000,
            "heap_held_bytes": statistics.median(r["heap_held"] for r in rs),
            "native_held_bytes": statistics.median(native) if native else None}


def board(tmp_der):
    """One handshake on the emulated RP2040: {"server_us", "client_us", "heap_peak_bytes", ...}."""
    import time
    from harness import Emulator
    need(artifacts.UF2, "firmware")
    blobs = {k: open(tmp_der[k], "rb").read() for k in ("cert", "key", "ca")}
    now = time.gmtime()
    emu = Emulator(artifacts.UF2, timeout=600)
    try:
        emu.prompt()
        emu.exec("CERT = %r\nKEY = %r\nCA = %r\nNOW = %r\n" % (
            blobs["cert"], blobs["key"], blobs["ca"], tuple(now[:6])))
        c0 = emu.cycles
        out = emu.exec(BOARD_SCRIPT.read_text(), max_cycles=20_000_000_000)
        rec = json.loads(out.strip().splitlines()[-1])
        rec["cycles_total"] = emu.cycles - c0
        return rec
    finally:
        emu.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="3 handshakes each way")
    ap.add_argument("-n", type=int, default=50, help="handshakes each way")
    ap.add_argument("--board", action="store_true", help="also on the emulated RP2040")
    args = ap.parse_args()
    n = 3 if args.smoke else args.n
    recs, suite, der = run(n)
    figs = {k: summary(recs, k) for k in ("server", "client")}
    rows = [[k, figs[k]["count"], figs[k]["median_ms"], figs[k]["p90_ms"],
             figs[k]["heap_held_bytes"], figs[k]["native_held_bytes"]]
            for k in ("server", "client")]
    tables = [table("TLS handshakes on the unix build (%s, %s)" % suite,
                    ["device as", "n", "median ms", "p90 ms", "GC heap held B",
                     "mbedtls heap held B"], rows)]
    data = {"protocol": suite[0], "cipher": suite[1], "unix": figs}
    if args.board:
        b = board(der)
        if not b["ok"]:
            raise SystemExit("the handshake on the emulated board failed: %r" % b)
        data["rp2040_emulated"] = b
        tables.append(table(
            "One TLS handshake on the emulated RP2040 (125 MHz model, both ends on the board)",
            ["end", "emulated ms", "M cycles"],
            [["server (the REST API)", b["server_us"] / 1000, b["server_us"] * 125 / 1e6],
             ["client (to the platform)", b["client_us"] / 1000, b["client_us"] * 125 / 1e6]]))
        tables.append(table("GC heap on the emulated RP2040 during that handshake", [
            "heap free before B", "peak taken B", "held by the two open sessions B"],
            [[b["heap_free_before"], b["heap_peak_bytes"], b["heap_held_bytes"]]]))
    write("tls_handshake", data, tables)


if __name__ == "__main__":
    main()
