"""The seeded fuzzer (tools/fuzz_device_api.py) against the device API on the unix build:
a short run here (FUZZ_REQUESTS, 1,000 by default), the long one with `make fuzz` (10,000).
No crash, no undocumented 5xx, /health after every batch, no relay change without a 2xx
switch naming it, and the heap after the run within 4 KB of the heap before."""

import os
import random
import sys

from rest_harness import AUDIENCE, DEVICE, FIGURES, ISSUER, KEY, NAMESPACE, ROOT, TENANT, \
    DeviceApiServer

sys.path.insert(0, os.path.join(ROOT, "tools"))
import fuzz_device_api as fuzz  # noqa: E402

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "1000"))
# FUZZ_HEAP=200K: the board-sized heap with the frozen modules. There a fragmented heap can
# refuse a 4 KB line buffer with far more free in pieces: such requests get the documented
# 503 busy ("out of memory") and count as connection faults; with the default heap, none may.
HEAP = os.environ.get("FUZZ_HEAP") or None
SEED = int(os.environ.get("FUZZ_SEED", "20261204"))
HEAP_BOUND = 4096


def test_fuzz_the_live_device(tmp_path):
    s = DeviceApiServer(tmp_path, heap=HEAP).start()
    try:
        pins = {n: r["pin"] for n, r in DEVICE["relays"].items()}
        relays = sorted(pins)
        dev = fuzz.Device(s.port, s.control_port, relays, pins,
                          [g["relays"] for g in DEVICE["interlocks"]], proc=s.proc)
        dev.tokens = fuzz.Tokens(random.Random(SEED), KEY, ISSUER, AUDIENCE, TENANT, NAMESPACE,
                                 relays)
        rep = fuzz.run(dev, SEED, REQUESTS)
        lines = rep.lines()
        for line in lines:
            FIGURES.append(("fuzz seed %d%s" % (SEED, ", heap " + HEAP if HEAP else ""), line))
        assert rep.sent == REQUESTS
        assert rep.health_checks >= REQUESTS // 100
        assert rep.switches_2xx > 0, lines          # valid tokens got through
        assert rep.statuses.get(431, 0) > 0 and rep.statuses.get(413, 0) > 0, lines
        assert rep.heap_before - rep.heap_after <= HEAP_BOUND, lines
        if HEAP is None:
            assert rep.faults == 0, lines
        assert s.proc.poll() is None
        out = s.output()
        assert "Traceback" not in out and "MemoryError" not in out, out
    finally:
        s.stop()
