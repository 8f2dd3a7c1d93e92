# iotlib.logger: JSON lines, levels, rotation and retention, masking, audit.
import json
import os
import time

from check import eq, true
from iotlib import logger
from standins import rm_tree, scratch_dir
from virtual_time import VirtualTime

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwaWNvIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"


def _lines(path):
    out = []
    for name in sorted(os.listdir(path)):
        with open(path + "/" + name) as f:
            for line in f:
                out.append((name, line))
    return out


def test_levels_fields_and_audit():
    d = scratch_dir("log")
    log = logger.Logger(d + "/d.log", level="info", echo=False, audit_path=d + "/a.log")
    log.debug("hidden")
    log.info("shown", n=1, ok=True, err=ValueError("bad"))
    log.audit("relay", relay="pump", old=False, new=True, subject="op", source="api")
    rec = json.loads(open(d + "/d.log").read())
    eq((rec["lvl"], rec["msg"], rec["n"], rec["ok"], rec["err"]),
       ("info", "shown", 1, True, "ValueError: bad"), "record")
    true("ts" in rec and "up" in rec, "times")
    a = json.loads(open(d + "/a.log").read())
    eq((a["audit"], a["relay"], a["old"], a["new"], a["subject"], a["source"]),
       ("relay", "pump", False, True, "op", "api"), "audit")
    rm_tree(d)


def test_rotation_keeps_count():
    d = scratch_dir("log")
    log = logger.Logger(d + "/d.log", max_bytes=1024, keep=2, echo=False)
    for i in range(100):
        log.info("line %d" % i, pad="x" * 50)
    names = sorted(os.listdir(d))
    eq(names, ["d.log", "d.log.1", "d.log.2"], "files")
    for n in names:
        true(os.stat(d + "/" + n)[6] <= 1024, "size of " + n)
    last = open(d + "/d.log").read().strip().split("\n")[-1]
    eq(json.loads(last)["msg"], "line 99", "newest line kept")
    rm_tree(d)


def test_masking_everywhere():
    d = scratch_dir("log")
    log = logger.Logger(d + "/d.log", echo=False)
    log.add_secret("wifi-pass-123")
    log.add_secret('key"with\\quotes')
    log.add_secret(JWT, True)
    log.add_secret("abc")  # too short to mask: would hide ordinary words
    log.info("pw wifi-pass-123", nested={"x": ["wifi-pass-123"]}, body='{"t":"%s"}' % JWT,
             q='key"with\\quotes', password="short", a="abc")
    log.info("sig only " + JWT.split(".")[2])
    log.info("cut", long="y" * 390 + JWT)  # cut by the logger
    log.info("peer cut", body='{"token": "%s' % JWT[:-9])  # cut before it reached us
    log.info("wifi-pass-123", **{"wifi-pass-123": 1})
    text = open(d + "/d.log").read()
    for s in ("wifi-pass-123", 'with\\\\quotes', JWT.split(".")[2], JWT[:-9], "short"):
        true(s not in text, "leaked %r" % s)
    true('"a": "abc"' in text, "short strings untouched")
    for line in text.strip().split("\n"):
        json.loads(line)
    rm_tree(d)


def test_rotating_secrets_are_bounded():
    log = logger.Logger(None, echo=False)
    for i in range(20):
        log.add_secret("%s%04d" % (JWT, i), True)
    true(len(log._secrets) <= logger.MAX_TEMP, "bounded")
    true(log.mask("%s0019" % JWT) == "***", "newest kept")


def test_buffered_writes_flush_on_warning():
    d = scratch_dir("log")
    log = logger.Logger(d + "/d.log", echo=False, buffer_bytes=4096)
    log.info("a")
    log.info("b")
    true(not os.listdir(d), "buffered")
    log.warning("c")
    eq([json.loads(l)["msg"] for l in open(d + "/d.log").read().split("\n") if l],
       ["a", "b", "c"], "order kept")
    rm_tree(d)


def test_module_level_functions():
    d = scratch_dir("log")
    logger.setup(path=d + "/d.log", echo=False)
    logger.add_secret("module-secret")
    logger.get("net").warning("x module-secret")
    logger.info("y")
    recs = [json.loads(l) for l in open(d + "/d.log").read().split("\n") if l]
    eq(recs[0]["mod"], "net", "named")
    eq(recs[0]["msg"], "x ***", "masked")
    logger.setup(echo=False)
    rm_tree(d)


# ---- audit lines batched inside the event loop ----

def _audit_lines(path):
    try:
        with open(path) as f:
            return [json.loads(x)["n"] for x in f if x.strip()]
    except OSError:
        return []


def test_audit_batched_in_loop():
    import asyncio
    d = scratch_dir("logab")
    a = d + "/a.log"
    log = logger.Logger(d + "/d.log", echo=False, audit_path=a)
    seen = {}

    async def main():
        log.audit("relay", n=0)
        seen["pending"] = _audit_lines(a)
        for _ in range(5):
            await asyncio.sleep_ms(0)
        seen["quiet"] = _audit_lines(a)  # quiet rounds write nothing: the batch waits
        for i in range(1, logger.AUDIT_MAX_LINES):
            log.audit("relay", n=i)
            await asyncio.sleep_ms(0)
        seen["bound"] = _audit_lines(a)
        seen["appends"] = log.audit_appends
        log.audit("relay", n=100)
        log.flush()  # stop / controlled reset
        seen["flush"] = _audit_lines(a)[-1]
        log.audit("relay", n=101)
        log.error("reset requested")  # an error line writes what is pending first
        seen["error"] = _audit_lines(a)[-1]

    asyncio.run(main())
    eq(seen["pending"], [], "pending")
    eq(seen["quiet"], [], "quiet rounds")
    eq(seen["bound"], list(range(logger.AUDIT_MAX_LINES)), "line bound")
    eq(seen["appends"], 1, "one append for the full batch")
    eq(seen["flush"], 100, "flush")
    eq(seen["error"], 101, "error line")
    eq(_audit_lines(a), list(range(logger.AUDIT_MAX_LINES)) + [100, 101], "order")
    eq(log.audit_appends, 3, "appends")
    rm_tree(d)


def test_audit_burst_written_in_batches():
    # concurrent tasks, a line per scheduler round each (like requests under load)
    import asyncio
    d = scratch_dir("logbb")
    a = d + "/a.log"
    vt = VirtualTime()
    log = logger.Logger(d + "/d.log", echo=False, audit_path=a, ticks_ms=vt.ticks_ms)
    tasks, per = 4, 25
    total = tasks * per
    seen = {}

    async def burst(k):
        for i in range(per):
            log.audit("relay", n=k * per + i)
            await asyncio.sleep_ms(0)

    async def main():
        await asyncio.gather(*[burst(k) for k in range(tasks)])
        seen["appends"] = log.audit_appends
        seen["lines"] = len(_audit_lines(a))
        t0 = vt.ticks_ms()
        idle0 = vt.skipped_ms
        while len(_audit_lines(a)) < total and time.ticks_diff(vt.ticks_ms(), t0) < 2000:
            await asyncio.sleep_ms(5)
        seen["ms"] = vt.skipped_ms - idle0  # time waited on timers, host delays left out

    with vt:
        asyncio.run(main())
    full = total // logger.AUDIT_MAX_LINES
    eq(seen["appends"], full, "full batches during the burst")
    eq(seen["lines"], full * logger.AUDIT_MAX_LINES, "lines of the full batches")
    true(seen["ms"] <= logger.AUDIT_MAX_AGE_MS + 5, "rest on file after %d ms" % seen["ms"])
    eq(sorted(_audit_lines(a)), list(range(total)), "every line once")
    eq(log.audit_appends, full + 1, "the rest in one more append")
    rm_tree(d)


def test_audit_line_on_file_within_age_bound():
    import asyncio
    d = scratch_dir("logal")
    a = d + "/a.log"
    vt = VirtualTime()
    log = logger.Logger(d + "/d.log", echo=False, audit_path=a, ticks_ms=vt.ticks_ms)
    seen = {}

    async def main():
        log.audit("relay", n=1)
        t0 = vt.ticks_ms()
        idle0 = vt.skipped_ms
        while not _audit_lines(a) and time.ticks_diff(vt.ticks_ms(), t0) < 2000:
            await asyncio.sleep_ms(5)
        seen["ms"] = time.ticks_diff(vt.ticks_ms(), t0)
        seen["idle"] = vt.skipped_ms - idle0  # host delays left out

    with vt:
        asyncio.run(main())
    # polled every 5 ms of (virtual) time: on file when the age bound is reached, not before
    true(logger.AUDIT_MAX_AGE_MS <= seen["ms"], "on file after %d ms" % seen["ms"])
    true(seen["idle"] <= logger.AUDIT_MAX_AGE_MS + 5, "on file after %d ms idle" % seen["idle"])
    eq(_audit_lines(a), [1], "the line")
    eq(log.audit_appends, 1, "one append")
    rm_tree(d)


def test_audit_age_bound():
    import asyncio
    d = scratch_dir("logag")
    a = d + "/a.log"
    vt = VirtualTime()
    log = logger.Logger(d + "/d.log", echo=False, audit_path=a, ticks_ms=vt.ticks_ms)
    seen = {}

    async def main():
        t0 = vt.ticks_ms()
        idle0 = vt.skipped_ms
        n = 0
        # a new line in every round (so never a quiet one), one per 40 ms, fewer than the
        # line bound: the age bound writes them
        while not _audit_lines(a) and time.ticks_diff(vt.ticks_ms(), t0) < 2000:
            if n < logger.AUDIT_MAX_LINES - 2:
                log.audit("relay", n=n)
                n += 1
            vt.advance(40)  # the round is busy for 40 ms
            await asyncio.sleep_ms(0)
        seen["n"] = len(_audit_lines(a))
        seen["ms"] = time.ticks_diff(vt.ticks_ms(), t0)
        seen["busy"] = vt.skipped_ms - idle0  # the rounds' 40 ms, host delays left out

    with vt:
        asyncio.run(main())
    # written in the first round that ends past the bound
    true(logger.AUDIT_MAX_AGE_MS <= seen["ms"], "age bound %d ms" % seen["ms"])
    true(seen["busy"] <= logger.AUDIT_MAX_AGE_MS + 40, "age bound %d ms busy" % seen["busy"])
    true(0 < seen["n"] < logger.AUDIT_MAX_LINES, "before the line bound")
    rm_tree(d)


def test_audit_outside_loop_written_at_once():
    d = scratch_dir("logao")
    log = logger.Logger(d + "/d.log", echo=False, audit_path=d + "/a.log")
    log.audit("relay", n=7)
    eq(_audit_lines(d + "/a.log"), [7], "at once")
    eq(log.audit_appends, 1, "one append")
    rm_tree(d)
