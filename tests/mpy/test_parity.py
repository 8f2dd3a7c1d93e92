# Parity: the implementation under test and pyrelaygpio run the same seeded
# pseudo-random script side by side; after every step their results, states,
# pin levels and metrics must be equal.
import impl
import pyrelaygpio
from array import array
from check import eq

# the twin against itself proves nothing: parity runs for the C module and the natmod only
if impl.rg is pyrelaygpio:
    raise ValueError("parity needs the C module or the natmod (IMPL c or natmod), not python")
COMPARED = "%s (IMPL %s) against pyrelaygpio (IMPL %s)" % (impl.rg.__name__, impl.rg.IMPL,
                                                          pyrelaygpio.IMPL)

RING = 1 << 30
PINS = [2, 3, 4, 5, 6, 7, 8, 9]
INPUT_PINS = [20, 21, 22, 23]
STEPS = 2000


class Lcg:
    # small, portable generator: the same numbers on every implementation
    def __init__(self, seed):
        self.s = seed

    def below(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) % n


def make(mod):
    b = mod.Bank(PINS, active_low=0b10100101, on_at_boot=0b01000000, tick_us=1000)
    for i, ms in ((0, 20), (3, 50), (4, 10), (6, 5)):
        b.min_interval(i, ms)
    b.interlock(0b00000111, 30)
    b.interlock(0b00110000, 0)
    b.input(20, 10, True, mod.PULL_UP, 3)
    b.input(21, 0, False, mod.PULL_DOWN, 0)
    b.input(22, 5, True, mod.PULL_UP, -1)
    b.input(23, 3, True, mod.PULL_NONE, 4)
    b.slot("a", 200)
    b.slot("b", 500)
    return b


def call(fn, args):
    # a result, or the exception as (type name, message) so errors compare too
    try:
        return fn(*args)
    except Exception as e:
        return (type(e).__name__, e.args[0] if e.args else "")


def metrics_values(b):
    buf = array("I", [0] * 40)
    return list(buf[:b.metrics_into(buf)])


def snapshot(b):
    return (
        metrics_values(b),
        b.state(),
        [b.get(i) for i in range(len(PINS))],
        [b.sim_level(p) for p in PINS + INPUT_PINS],
        [b.input_value(j) for j in range(len(INPUT_PINS))],
        b.metrics(),
        b.stalled(),
        b.reset_cause(),
        b.sim_resets(),
        b.sim_writes(),
    )


def step(r, t, checkin_odds, jump_odds):
    # one scripted operation as (method name, args); returns it and the new time
    k = r.below(100)
    if r.below(jump_odds) == 0:
        t += 250000 + r.below(200000)  # a long stall of the caller
    elif k < 40:
        t += r.below(3000)
    else:
        t += r.below(20) * 50
    now = t % RING
    i = r.below(9)  # 8 is out of range on purpose
    if k < 30:
        return ("tick", (now,)), t
    if k < 42:
        return ("set", (i, r.below(2), now)), t
    if k < 50:
        return ("toggle", (i, now)), t
    if k < 58:
        return ("write", (r.below(256), r.below(256), now)), t
    if k < 64:
        return ("pulse", (i, (1, 5, 10, 20, 50, 100, 300)[r.below(7)], now)), t
    if k < 80:
        level = (0, 1, None)[r.below(3)]
        return ("sim_drive", (INPUT_PINS[r.below(4)], level)), t
    if k < 80 + checkin_odds:
        return ("checkin", (r.below(2), now)), t
    if k < 97:
        return ("min_interval", (i, (0, 5, 20, 60)[r.below(4)])), t
    return ("state", ()), t


def run(seed, checkin_odds, jump_odds):
    a = make(impl.rg)
    b = make(pyrelaygpio)
    r = Lcg(seed)
    t = RING - 400000  # wraps the ring early in the run
    for n in range(STEPS):
        if n == 100:
            eq(call(a.watchdog, (300,)), call(b.watchdog, (300,)), "watchdog")
        (name, args), t = step(r, t, checkin_odds, jump_odds)
        got = call(getattr(a, name), args)
        want = call(getattr(b, name), args)
        eq(got, want, "seed %d step %d %s%r result" % (seed, n, name, args))
        eq(snapshot(a), snapshot(b), "seed %d step %d %s%r state" % (seed, n, name, args))
    return b.metrics()


def test_parity_supervised():
    # frequent check-ins, no long stalls: the watchdog is fed throughout
    m = run(1, 15, 1000000)
    eq(m["wdt_feeds"] > 100, True, "the watchdog was fed")


def test_parity_stalled_slot():
    run(2, 1, 1000000)


def test_parity_tick_gaps():
    run(3, 15, 300)


def test_parity_coverage():
    # the script reaches every path it is meant to compare
    m = run(4, 10, 700)
    for key in ("deferred", "rejected_interval", "rejected_interlock", "pulses_expired",
                "input_edges", "late_ticks"):
        eq(m[key] > 0, True, key + " reached")
