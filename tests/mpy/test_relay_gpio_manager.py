# iotlib.relay_gpio_manager on the simulated board: power-on policies, coalesced atomic
# persistence, safe reconfiguration, reasons, and a reset through the watchdog supervisor.
import json
import time

from check import eq, true
from iotlib import atomic_file, logger
from iotlib.relay_gpio_manager import RelayGPIOManager
from standins import rm_tree, scratch_dir

logger.setup(echo=False)


def cfg(policy="configured", **relays):
    c = {"relays": {"a": {"pin": 2, "on_at_boot": True}, "b": {"pin": 3, "active_low": True},
                    "c": {"pin": 4}}, "restore_policy": policy}
    c["relays"].update(relays)
    return c


def manager(d, **kw):
    return RelayGPIOManager(d, **kw)


def test_power_on_policies():
    d = scratch_dir("rgm")
    atomic_file.write_json(d + "/relays.json", {"states": {"a": False, "b": True, "c": True},
                                                "desired_version": 4})
    for policy, want in (("configured", {"a": True, "b": False, "c": False}),
                         ("last", {"a": False, "b": True, "c": True}),
                         ("off", {"a": False, "b": False, "c": False})):
        m = manager(d)
        m.start(cfg(policy))
        eq(m.states(), want, policy)
        eq(m.desired_version, 4, "desired version kept")
        # pins at their levels in each relay's polarity (b is active-low)
        eq(m.pin_levels(), {"2": int(want["a"]), "3": int(not want["b"]), "4": int(want["c"])},
           policy + " pins")
        m.bank.deinit()
    rm_tree(d)


def test_interlocked_relays_never_start_together():
    d = scratch_dir("rgm")
    atomic_file.write_json(d + "/relays.json", {"states": {"a": True, "b": True, "c": True}})
    c = cfg("last")
    c["interlocks"] = [{"relays": ["a", "b"], "dead_ms": 10}]
    m = manager(d)
    m.start(c)
    eq(m.states(), {"a": False, "b": False, "c": True}, "group off")
    m.bank.deinit()
    rm_tree(d)


def test_writes_are_coalesced_and_atomic():
    d = scratch_dir("rgm")
    m = manager(d, persist_min_ms=300)
    m.start(cfg("last"))
    for name in ("b", "c", "a"):
        eq(m.toggle(name, source="test"), "ok", "toggle " + name)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 100:
        if m._save_at is not None and time.ticks_diff(time.ticks_ms(), m._save_at) >= 0:
            m.flush()
    eq(m.persist_writes, 1, "first change written at once")
    m.set("a", True)
    m.set("a", False)
    m.set("c", False)
    eq(m.persist_writes, 1, "later changes wait for the interval")
    true(m._save_at is not None and time.ticks_diff(m._save_at, time.ticks_ms()) > 100, "due later")
    m.flush()
    eq(json.loads(open(d + "/relays.json").read())["states"], m.states(), "file holds the states")
    eq(m.flush(), False, "no write when nothing changed")
    m.bank.deinit()
    rm_tree(d)


def test_no_state_writes_unless_restored():
    d = scratch_dir("rgm")
    m = manager(d, persist_min_ms=0)
    m.start(cfg("configured"))
    m.set("c", True)
    eq(m._save_at, None, "nothing scheduled")
    m.set_desired_version(3)
    eq(m.persist_writes, 1, "a desired version is still kept")
    m.bank.deinit()
    rm_tree(d)


def test_reasons_and_audit():
    d = scratch_dir("rgm")
    c = cfg(a={"pin": 2, "min_interval_ms": 1000}, c={"pin": 4, "pulse_ms": 50})
    c["interlocks"] = [{"relays": ["a", "b"], "dead_ms": 100}]
    m = manager(d)
    m.start(c)
    eq(m.set("a", True), "ok", "on")
    eq(m.set("a", False), "interval", "inside the min interval")
    eq(m.set("b", True), "interval", "change-over needs a off: still in its interval")
    eq(m.write({"a": True, "b": True}), "interlock", "atomic write never breaks an interlock")
    eq(m.set("c", True), "ok", "pulse relay")
    true(m.get("c"), "on during the pulse")
    t0 = time.ticks_ms()
    while m.get("c") and time.ticks_diff(time.ticks_ms(), t0) < 500:
        m.bank.tick()
        time.sleep_ms(5)
    true(not m.get("c"), "pulse ended by the core")
    try:
        m.set("nope", True)
        raise AssertionError("unknown relay accepted")
    except ValueError as e:
        eq(str(e), "unknown relay 'nope'", "message")
    rows = m.all()
    eq([r["name"] for r in rows], ["a", "b", "c"], "sorted names")
    eq(rows[0]["switches"], 1, "switch count")
    m.bank.deinit()
    rm_tree(d)


def test_reconfigure_in_place_and_rebuilt():
    d = scratch_dir("rgm")
    m = manager(d)
    m.start(cfg())
    m.set("b", True)
    bank = m.bank
    c2 = cfg()
    c2["relays"]["a"]["min_interval_ms"] = 500
    eq(m.reconfigure(c2), False, "timing only")
    true(m.bank is bank, "same bank")
    c3 = {"relays": {"a": {"pin": 2}, "b": {"pin": 3, "active_low": True}, "d": {"pin": 7}}}
    eq(m.reconfigure(c3), True, "new layout")
    eq(m.states(), {"a": True, "b": True, "d": False}, "kept by name and pin; new relay off")
    c4 = {"relays": {"a": {"pin": 2}, "b": {"pin": 3}}}
    m.reconfigure(c4)
    eq(m.states(), {"a": True, "b": False}, "polarity changed: off")
    bad = {"relays": {"a": {"pin": 2}, "b": {"pin": 2}}}  # the Bank refuses a duplicate pin
    try:
        m.reconfigure(bad)
        raise AssertionError("duplicate pin accepted")
    except ValueError:
        pass
    eq(m.states(), {"a": True, "b": False}, "previous layout restored")
    bank2 = m.bank
    short = {"relays": {"a": {"pin": 2, "min_interval_ms": 100, "pulse_ms": 50},
                        "b": {"pin": 3}, "e": {"pin": 8}}}
    try:
        m.reconfigure(short)
        raise AssertionError("a pulse shorter than the interval accepted")
    except ValueError as e:
        eq(str(e), "relay a: pulse_ms 50 is shorter than its min_interval_ms 100", "message")
    eq(m.states(), {"a": True, "b": False}, "still the previous layout")
    true(m.bank is bank2, "and the same bank: nothing was torn down")
    eq(m.set("b", True), "ok", "and working")
    m.bank.deinit()
    rm_tree(d)


def test_reset_through_the_supervisor():
    d = scratch_dir("rgm")
    m = manager(d)
    m.start(cfg())
    causes = []
    m.on_reset = causes.append
    m.slot("loop", 5000)
    m.watchdog(8000)
    for _ in range(3):
        m.bank.tick()
        m._check_reset()
        m.checkin("loop")
        time.sleep_ms(2)
    eq(causes, [], "supervised, fed")
    m.request_reset("hb-missed")
    time.sleep_ms(3)
    m.bank.tick()
    m._check_reset()
    eq(causes, ["hb-missed"], "reset with the slot name as cause")
    eq(m.bank.sim_resets(), 1, "one simulated reset")
    m.bank.deinit()
    rm_tree(d)


def test_state_kept_across_a_reset_is_not_overwritten_by_the_file():
    # a watchdog or soft reset: the Bank is dropped without deinit, its state kept in scratch
    d = scratch_dir("rgm")
    atomic_file.write_json(d + "/relays.json", {"states": {"a": False, "b": False, "c": False}})
    c = cfg("last", c={"pin": 4, "pulse_ms": 500})
    m = manager(d)
    m.start(c)
    eq(m.restored, None, "a power-on")
    m.set("b", True)
    m.set("c", True)  # a pulse: it comes back off
    m = manager(d)  # the file still says all off
    m.start(c)
    eq(m.restored, 0b010, "kept mask")
    eq(m.boot_policy, "kept", "policy")
    eq(m.states(), {"a": False, "b": True, "c": False}, "the kept state, not the file")
    eq(m.pin_levels(), {"2": 0, "3": 0, "4": 0}, "pins (b active-low on)")
    m.flush()
    eq(atomic_file.read_json(d + "/relays.json")["states"], m.states(), "the file follows")
    m.bank.deinit()
    rm_tree(d)


def test_kept_state_breaking_a_new_interlock_starts_the_group_off():
    d = scratch_dir("rgm")
    m = manager(d)
    m.start(cfg("configured"))
    m.set("b", True)  # a on at boot, now b too
    c = cfg("configured")
    c["interlocks"] = [{"relays": ["a", "b"], "dead_ms": 10}]  # the new config after the reset
    m = manager(d)
    m.start(c)
    eq(m.restored, 0b011, "kept mask")
    eq(m.states(), {"a": False, "b": False, "c": False}, "group off")
    m.bank.deinit()
    rm_tree(d)
