# One set of limits: the C module (whose constants come from relay_limits.h),
# the x64 natmod, the pure-Python twin and the configuration check agree, and
# each implementation enforces exactly its published limits.
from check import eq, true, raises
from iotlib import config_schema
import pyrelaygpio
import relaygpio
import relaygpio_natmod

IMPLS = (relaygpio, relaygpio_natmod, pyrelaygpio)
LIMITS = ("MAX_RELAYS", "MAX_INPUTS", "MAX_GROUPS", "MAX_SLOTS", "MAX_SLOT_NAME",
          "NUM_PINS", "WDT_MAX_MS", "MIN_INTERVAL_MAX_MS", "DEAD_TIME_MAX_MS",
          "SLOT_WINDOW_MAX_MS", "DEBOUNCE_MAX_MS", "PULSE_MAX_MS", "TICK_MIN_US",
          "AUTOTICK_MIN_US", "AUTOTICK_MAX_US")


def test_implementations_publish_the_same_limits():
    for name in LIMITS:
        want = getattr(relaygpio, name)
        true(type(want) is int and want > 0, "relaygpio.%s is a positive int" % name)
        for m in IMPLS[1:]:
            eq(getattr(m, name), want, "%s.%s" % (m.IMPL, name))


def test_each_implementation_enforces_its_limits():
    for m in IMPLS:
        b = m.Bank([2, 3, 4, 5])
        b.min_interval(0, m.MIN_INTERVAL_MAX_MS)
        raises(ValueError, "min interval %d ms out of range 0..%d"
               % (m.MIN_INTERVAL_MAX_MS + 1, m.MIN_INTERVAL_MAX_MS),
               b.min_interval, 0, m.MIN_INTERVAL_MAX_MS + 1)
        b.interlock(0b0110, m.DEAD_TIME_MAX_MS)
        raises(ValueError, "dead time %d ms out of range 0..%d"
               % (m.DEAD_TIME_MAX_MS + 1, m.DEAD_TIME_MAX_MS),
               b.interlock, 0b1001, m.DEAD_TIME_MAX_MS + 1)
        b.input(10, m.DEBOUNCE_MAX_MS)
        raises(ValueError, "debounce %d ms out of range 0..%d"
               % (m.DEBOUNCE_MAX_MS + 1, m.DEBOUNCE_MAX_MS),
               b.input, 11, m.DEBOUNCE_MAX_MS + 1)
        b.slot("x" * m.MAX_SLOT_NAME, m.SLOT_WINDOW_MAX_MS)
        raises(ValueError, "slot window %d ms out of range 1..%d"
               % (m.SLOT_WINDOW_MAX_MS + 1, m.SLOT_WINDOW_MAX_MS),
               b.slot, "y", m.SLOT_WINDOW_MAX_MS + 1)
        eq(b.pulse(3, m.PULSE_MAX_MS, 0), m.OK, m.IMPL + " longest pulse")
        raises(ValueError, "pulse %d ms out of range 1..%d" % (m.PULSE_MAX_MS + 1, m.PULSE_MAX_MS),
               b.pulse, 3, m.PULSE_MAX_MS + 1, 0)
        raises(ValueError, "autotick period %d us out of range %d..%d"
               % (m.AUTOTICK_MAX_US + 1, m.AUTOTICK_MIN_US, m.AUTOTICK_MAX_US),
               b.autotick, m.AUTOTICK_MAX_US + 1)
        raises(ValueError, "tick_us %d below %d" % (m.TICK_MIN_US - 1, m.TICK_MIN_US),
               m.Bank, [2], 0, 0, m.TICK_MIN_US - 1)
        m.Bank([2], 0, 0, m.TICK_MIN_US).deinit()
        b.watchdog(m.WDT_MAX_MS)
        b.deinit()


def _config(**over):
    cfg = {
        "relays": {"a": {"pin": 2}, "b": {"pin": 3}},
        "interlocks": [{"relays": ["a", "b"], "dead_ms": 0}],
        "inputs": {"door": {"pin": 10}},
    }
    if "relay" in over:
        cfg["relays"]["a"].update(over["relay"])
    if "dead_ms" in over:
        cfg["interlocks"][0]["dead_ms"] = over["dead_ms"]
    if "debounce_ms" in over:
        cfg["inputs"]["door"]["debounce_ms"] = over["debounce_ms"]
    return cfg


def _edge(field, top, **at):
    # the configuration accepts the C limit and refuses one more
    key = list(at)[0]
    eq(config_schema.check(_config(**{key: at[key](top)})), None, field + " at its limit")
    problem = config_schema.check(_config(**{key: at[key](top + 1)}))
    true(problem is not None and problem[0] == field, "%s above its limit: %r" % (field, problem))


def test_config_schema_uses_the_same_limits():
    _edge("relays.a.min_interval_ms", relaygpio.MIN_INTERVAL_MAX_MS,
          relay=lambda v: {"min_interval_ms": v})
    _edge("relays.a.pulse_ms", relaygpio.PULSE_MAX_MS, relay=lambda v: {"pulse_ms": v})
    _edge("interlocks[0].dead_ms", relaygpio.DEAD_TIME_MAX_MS, dead_ms=lambda v: v)
    _edge("inputs.door.debounce_ms", relaygpio.DEBOUNCE_MAX_MS, debounce_ms=lambda v: v)
    # as many interlock groups and inputs as a bank holds, and no more
    cfg = _config()
    cfg["interlocks"] = [{"relays": ["a", "b"], "dead_ms": 0}] * (relaygpio.MAX_GROUPS + 1)
    eq(config_schema.check(cfg)[0], "interlocks", "one group too many")
    cfg = _config()
    cfg["inputs"] = {}
    for k in range(relaygpio.MAX_INPUTS + 1):
        cfg["inputs"]["in%d" % k] = {"pin": 4 + k}
    eq(config_schema.check(cfg)[0], "inputs", "one input too many")
