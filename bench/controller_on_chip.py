"""The whole RelaysController on the PPP board in the emulated RP2040, booted provisioned (the
frozen main.py runs it from /device.json) with the reference platform over https on the host
(tests/ppp/controller_program.py). Times are the device's own uptime in its log lines:
emulated milliseconds at 125 MHz from power-on.

    .cache/venv/bin/python bench/controller_on_chip.py [--smoke]

Figures: power-on to the controller's boot line, to PPP up, to registered, to its config
applied, to the first time sync, and to ready (all three done); each platform request over
https with its full TLS handshake (Connection: close; p50/p99 of the log's `ms`); GC heap free
after a collection at the boot line, once configured (/metrics), and the lowest /metrics
sample while four clients are served at once over TLS, as a board ships (goal: never under
60 KB); how many of those TLS connections waited for the one session slot, and how many were
closed or failed (/metrics api_tls_*)."""

import argparse
import sys
import time

from artifacts import ROOT
from report import table, write

sys.path.insert(0, str(ROOT / "tests" / "ppp"))

from conftest import UF2  # noqa: E402
from controller_program import ChipController  # noqa: E402
from rest_program import concurrent, raw_request  # noqa: E402

HEAP_GOAL = 60 * 1024


def pct(vals, q):
    s = sorted(vals)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def metrics(c, tok):
    """The device's /metrics over TLS -> {family: value} of its unlabelled samples."""
    status, body = raw_request(c.rest_port, "GET", "/metrics", token=tok, tls=c.client_tls)
    assert status == 200, body[:200]
    out = {}
    for ln in body.decode().splitlines():
        if ln and not ln.startswith("#"):
            name = ln.split("{")[0].split(" ")[0]
            out[name] = int(float(ln.rsplit(" ", 1)[1]))
    return out


def heap_from_metrics(c, tok):
    """GC heap free after a collection (/metrics heap_free_bytes)."""
    m = metrics(c, tok)
    if "heap_free_bytes" not in m:
        raise ValueError("no heap_free_bytes in /metrics: %s" % sorted(m))
    return m["heap_free_bytes"]


def run(c, rounds, n_https):
    first = {}
    for msg in ("boot", "PPP connected", "registered", "config applied", "time synchronised"):
        first[msg] = c.wait_log(msg, 600)[0]
    tok = c.cloud.mint_api_token(role="operator")["token"]
    heap_configured = heap_from_metrics(c, tok)
    tls0 = metrics(c, tok)
    samples, errors = [], []

    def one_round():
        try:
            st, _ = c.request("GET", "/gpio/r1", None, tok)
            if st != 200:
                errors.append(st)
            samples.append(heap_from_metrics(c, tok))
        except (OSError, AssertionError, ValueError) as e:
            errors.append(repr(e))

    concurrent(4, rounds, one_round)
    tls1 = metrics(c, tok)
    tls = {k: tls1.get(k, 0) - tls0.get(k, 0) for k in (
        "api_tls_sessions_total", "api_tls_waits_total", "api_tls_heap_waits_total",
        "api_tls_turned_away_total", "api_tls_wait_timeouts_total", "api_tls_failed_total")}
    # platform requests: each one a new TLS session
    c.board.wait_for(lambda: len(c.logged("http")) >= n_https, 900, "%d https requests" % n_https)
    https = [r["ms"] for r in c.logged("http") if "ms" in r]
    up = {k: v["up"] for k, v in first.items()}
    ready = max(up["registered"], up["config applied"], up["time synchronised"])
    figures = {
        "boot_line_ms": up["boot"], "ppp_up_ms": up["PPP connected"],
        "registered_ms": up["registered"], "config_applied_ms": up["config applied"],
        "time_synced_ms": up["time synchronised"], "ready_ms": ready,
        "https_requests": len(https), "https_p50_ms": pct(https, 0.5), "https_p99_ms": pct(https, 0.99),
        "heap_boot": first["boot"].get("heap_free"), "heap_configured": heap_configured,
        "heap_lowest_4_clients": min(samples) if samples else None, "heap_samples": len(samples),
        "client_errors": errors, "heap_goal": HEAP_GOAL, "rest_tls": tls,
        "heap_goal_met": bool(samples) and min(samples) >= HEAP_GOAL,
    }
    rows = [
        ["power-on to the controller's boot line (ms)", figures["boot_line_ms"]],
        ["power-on to PPP up (ms)", figures["ppp_up_ms"]],
        ["power-on to registered over https (ms)", figures["registered_ms"]],
        ["power-on to config applied (ms)", figures["config_applied_ms"]],
        ["power-on to first time sync (ms)", figures["time_synced_ms"]],
        ["power-on to ready (ms)", ready],
        ["platform request over https, new TLS session each: p50 (ms, n=%d)" % len(https),
         figures["https_p50_ms"]],
        ["same, p99 (ms)", figures["https_p99_ms"]],
        ["GC heap free at the boot line (B)", figures["heap_boot"]],
        ["GC heap free once configured (B)", heap_configured],
        ["GC heap free, lowest of %d samples with 4 clients (B; goal >= %d)"
         % (len(samples), HEAP_GOAL), figures["heap_lowest_4_clients"]],
        ["heap goal met", figures["heap_goal_met"]],
        ["REST TLS sessions in those rounds (one at a time)", tls["api_tls_sessions_total"]],
        ["... that waited for their turn", tls["api_tls_waits_total"]],
        ["tries again for heap (mbedtls buffers)", tls["api_tls_heap_waits_total"]],
        ["... closed unread, timed out, failed to start",
         "%d, %d, %d" % (tls["api_tls_turned_away_total"], tls["api_tls_wait_timeouts_total"],
                         tls["api_tls_failed_total"])],
        ["client errors", len(errors)],
    ]
    t = table("RelaysController on the PPP board (emulated RP2040; device uptime)",
              ["figure", "value"], rows)
    print(t)
    write("controller_on_chip", figures, [t])
    lost = tls["api_tls_turned_away_total"] + tls["api_tls_wait_timeouts_total"] + \
        tls["api_tls_failed_total"]
    return 0 if not errors and not lost else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny counts")
    args = ap.parse_args(argv)
    rounds, n_https = (1, 3) if args.smoke else (5, 20)
    if not UF2.exists():
        print(f"no firmware at {UF2}: make firmware BOARD=RELAYS_PICO_PPP", file=sys.stderr)
        return 1
    work = ROOT / ".cache" / "hil" / "controller_bench"
    work.mkdir(parents=True, exist_ok=True)
    c = ChipController(UF2, work)
    try:
        c.start()
        return run(c, rounds, n_https)
    except Exception:
        print("board output:", c.text[-3000:], file=sys.stderr)
        raise
    finally:
        c.close()


if __name__ == "__main__":
    t0 = time.monotonic()
    rc = main()
    print("controller_on_chip: %.0f s" % (time.monotonic() - t0))
    sys.exit(rc)
