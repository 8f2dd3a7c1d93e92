# iotlib.rate_limiter: exact token buckets on injected ms ticks, the bounded key
# table under an address flood, and reads staying available while writes flood.
import gc

from check import eq, raises, true
from iotlib import rate_limiter as rl
from iotlib.rate_limiter import ApiRateLimiter, Limit, RateLimiter

MASK = 0x3FFFFFFF


def drain(lim, key, now, n):
    # n checks at the same instant -> how many were allowed
    return sum(1 for _ in range(n) if lim.check(key, now)[0])


def test_limit_validation():
    raises(ValueError, "rate limit requests must be an int >= 1, got 0", Limit, 0)
    raises(ValueError, "rate limit per_s must be an int >= 1, got 0.5", Limit, 1, 0.5)
    raises(ValueError, "rate limit burst must be an int >= 1, got True", Limit, 1, 1, True)
    raises(ValueError, "max_keys must be an int >= 1", RateLimiter, Limit(1), 0)
    eq(Limit(3).burst, 3, "burst defaults to the rate")
    eq(Limit.from_config({"requests": 10, "window_s": 60}), Limit(10, 60, 10), "from config")
    eq(Limit(5, 1, 10).scaled(4), Limit(20, 1, 40), "scaled")


def test_burst_then_refused():
    r = RateLimiter(Limit(5, 1, 10))
    eq(drain(r, "a", 1000, 10), 10, "burst")
    eq(r.check("a", 1000), (False, 1), "11th")
    eq(r.rejected, 1, "rejected count")


def test_refill_is_exact():
    r = RateLimiter(Limit(5, 1, 10))
    drain(r, "a", 0, 10)
    eq(r.check("a", 199)[0], False, "199 ms: 0.995 token")
    eq(r.check("a", 200)[0], True, "200 ms: one token at 5/s")
    eq(r.check("a", 200)[0], False, "spent")
    eq(drain(r, "a", 1200, 10), 5, "one second later: five")


def test_slow_config_rate():
    # 10 per minute, as the config schema writes limits: one token every 6 s
    r = RateLimiter(Limit.from_config({"requests": 10, "window_s": 60}))
    eq(drain(r, "a", 0, 20), 10, "burst = requests")
    eq(r.check("a", 0), (False, 6), "retry after 6 s")
    eq(r.check("a", 5999)[0], False, "5.999 s")
    eq(r.check("a", 6000)[0], True, "6 s")


def test_retry_after_is_enough():
    r = RateLimiter(Limit(3, 2, 2))  # 1.5/s
    t = 0
    drain(r, "a", t, 2)
    ok, retry = r.check("a", t)
    eq((ok, retry), (False, 1), "first refusal")
    eq(r.check("a", t + retry * 1000)[0], True, "allowed after Retry-After")


def test_refusals_cost_nothing():
    r = RateLimiter(Limit(1, 1, 1))
    eq(r.check("a", 0)[0], True, "first")
    for t in range(0, 1000, 10):
        eq(r.check("a", t)[0], False, "flood at %d" % t)
    eq(r.check("a", 1000)[0], True, "refill not pushed back by refusals")


def test_idle_refills_to_burst_only():
    r = RateLimiter(Limit(5, 1, 10))
    drain(r, "a", 0, 10)
    eq(drain(r, "a", 3600000, 100), 10, "an hour later: burst, not 18000")


def test_steady_flood_gets_the_rate():
    r = RateLimiter(Limit(5, 1, 10))
    allowed = sum(1 for t in range(0, 10000, 10) if r.check("a", t)[0])
    eq(allowed, 10 + 49, "burst plus 5/s over 9.99 s")


def test_tick_wrap():
    r = RateLimiter(Limit(5, 1, 10))
    drain(r, "a", MASK - 99, 10)
    eq(r.check("a", 99)[0], False, "199 ms across the wrap")
    eq(r.check("a", 100)[0], True, "200 ms across the wrap")


def test_wide_ticks():
    # the unix port's ticks_ms() ring is wider than 30 bits: differences still hold
    base = (1 << 40) + 12345
    r = RateLimiter(Limit(5, 1, 10))
    drain(r, "a", base, 10)
    eq(r.check("a", base + 199)[0], False, "199 ms")
    eq(r.check("a", base + 200)[0], True, "200 ms")


def test_keys_are_independent():
    r = RateLimiter(Limit(5, 1, 10))
    drain(r, "10.0.0.1", 0, 50)
    eq(r.check("10.0.0.1", 0)[0], False, "flooder refused")
    eq(drain(r, "10.0.0.2", 0, 10), 10, "other client has its burst")


def test_address_flood_is_bounded():
    r = RateLimiter(Limit(5, 1, 10), max_keys=16)
    gc.collect()
    before = gc.mem_free() if hasattr(gc, "mem_free") else 0
    for i in range(2000):
        r.check("10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255), i)
        true(len(r) <= 16, "table within max_keys at %d" % i)
    gc.collect()
    if hasattr(gc, "mem_free"):
        true(before - gc.mem_free() < 8192, "heap kept: %d bytes" % (before - gc.mem_free()))
    true(r.evicted + r.overflowed >= 2000 - 16, "drops and overflows counted")


def test_eviction_keeps_drained_buckets():
    # refilled buckets go first: a flooder's drained bucket is not reset by new keys
    r = RateLimiter(Limit(5, 1, 10), max_keys=4)
    for k in ("a", "b", "c"):
        r.check(k, 0)
    drain(r, "flooder", 5000, 20)
    r.check("new1", 5000)  # a, b, c refilled at 5000: all three dropped
    eq(len(r), 2, "refilled buckets dropped")
    eq(r.check("flooder", 5000)[0], False, "flooder still limited")
    eq(r.evicted, 3, "three evicted")


def test_a_full_table_sends_newcomers_to_one_shared_bucket():
    # no eviction of an active key: a newcomer never gets a fresh burst of its own
    r = RateLimiter(Limit(1, 60, 5), max_keys=3)
    for i, k in enumerate(("a", "b", "c")):
        drain(r, k, i * 10, 5)  # all drained, none refills for a minute
    eq(drain(r, "d", 100, 5), 5, "the overflow bucket's own burst, once")
    eq(len(r), 3, "bounded")
    eq(r.check("e", 100)[0], False, "e shares d's (empty) overflow bucket")
    eq(r.check("a", 100)[0], False, "a kept its drained bucket")
    eq(r.check("c", 100)[0], False, "c kept its drained bucket")
    eq(r.overflowed, 6, "overflow checks counted")
    eq(r.evicted, 0, "no active key dropped")


def test_many_addresses_share_one_burst_once_the_table_is_full():
    # 1,000 addresses, one request each, at the same instant: 32 own buckets, one shared
    r = RateLimiter(Limit(5, 1, 10), max_keys=32)
    allowed = sum(1 for i in range(1000) if r.check("127.0.%d.%d" % (i >> 8, i & 255), 0)[0])
    eq(allowed, 32 + 10, "each tabled key its first request, the overflow bucket its burst")
    eq(r.overflowed, 1000 - 32)


def test_verification_budget_is_device_wide():
    api = ApiRateLimiter(verify_per_s=20)
    eq(sum(1 for _ in range(100) if api.check_verification(0)[0]), 20, "the burst")
    ok, retry = api.check_verification(0)
    eq((ok, retry), (False, 1), "refused with a retry time")
    eq(sum(1 for t in range(10, 1001, 10) if api.check_verification(t)[0]), 20,
       "then 20 per second")
    eq(ApiRateLimiter.from_config(None, verify_per_s=7).verify, Limit(7), "from config")
    raises(ValueError, "rate limit requests must be an int >= 1, got 0", ApiRateLimiter,
           verify_per_s=0)


def test_limit_change_keeps_ratio():
    r = RateLimiter(Limit(5, 1, 10))
    drain(r, "a", 0, 5)  # half full
    bigger = Limit(5, 1, 20)
    eq(sum(1 for _ in range(100) if r.check("a", 0, bigger)[0]), 10, "half of the new burst")


def test_api_reads_survive_write_flood():
    api = ApiRateLimiter()
    a_writes = b_writes = a_reads = b_reads = 0
    for i in range(600):  # 6 s: A writes every 10 ms, B writes every 500 ms, both read every 100 ms
        t = i * 10
        a_writes += api.check_address("10.0.0.1", t)[0]
        api.check_subject("alice", t)
        if i % 50 == 0:
            b_writes += api.check_address("10.0.0.2", t)[0] and api.check_subject("bob", t)[0]
        if i % 10 == 0:
            a_reads += api.check_address("10.0.0.1", t, read=True)[0]
            b_reads += api.check_subject("bob", t, read=True)[0] and api.check_address("10.0.0.2", t, read=True)[0]
    eq(a_writes, 10 + 29, "flooder gets burst plus 5/s over 5.99 s")
    eq(b_writes, 12, "the other client: every write")
    eq(a_reads, 60, "the flooder still reads")
    eq(b_reads, 60, "others read")
    rejected, evicted = api.stats()
    eq((rejected, evicted), (600 - 39 + 600 - 39, 0), "stats")


def test_health_class_is_more_generous():
    api = ApiRateLimiter()
    eq(api.read, Limit(20, 1, 40), "read default")
    eq(drain_api(api, True), 40, "read burst")
    eq(drain_api(api, False), 10, "write burst")


def drain_api(api, read):
    return sum(1 for _ in range(100) if api.check_address("h", 0, read=read)[0])


def test_api_from_config():
    api = ApiRateLimiter.from_config({
        "default": {"requests": 2, "window_s": 1},
        "operator": {"requests": 6, "window_s": 60},
    })
    eq(api.write, Limit(2, 1, 2), "default")
    eq(api.read, Limit(8, 1, 8), "read is 4x")
    n = sum(1 for _ in range(50) if api.check_subject("op", 0, role="operator")[0])
    eq(n, 6, "operator burst")
    eq(api.check_subject("op", 0, role="operator"), (False, 10), "operator retry: 6/min")
    n = sum(1 for _ in range(50) if api.check_subject("op", 0, read=True, role="operator")[0])
    eq(n, 24, "operator reads 4x")
    n = sum(1 for _ in range(50) if api.check_subject("v", 0, role="viewer")[0])
    eq(n, 2, "a role without an entry uses default")
    n = sum(1 for _ in range(50) if api.check_address("1.2.3.4", 0)[0])
    eq(n, 2, "address limit is default")


def test_api_no_config():
    api = ApiRateLimiter.from_config(None)
    eq((api.write, api.read), (rl.DEFAULT_WRITE, rl.DEFAULT_READ), "defaults")
