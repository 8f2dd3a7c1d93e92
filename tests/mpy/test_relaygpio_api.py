# Behaviour of the relaygpio API on the simulated backend. Every call passes an
# explicit `now` (µs in the 30-bit ticks_us ring) so the run is deterministic.
# Timers count from the first tick (it sets the time base), so tests that time
# something tick once first.
import impl
from check import eq, raises, true

rg = impl.rg
PINS = [2, 3, 4, 5]
MS = 1000
RING = 1 << 30


def levels(b, pins=PINS):
    return [b.sim_level(p) for p in pins]


def test_constants():
    eq((rg.OK, rg.DEFERRED, rg.REJECTED_INTERVAL, rg.REJECTED_INTERLOCK), (0, 1, 2, 3), "results")
    eq(rg.REASONS, ("ok", "deferred", "interval", "interlock"), "REASONS")
    eq((rg.PULL_NONE, rg.PULL_UP, rg.PULL_DOWN), (0, 1, 2), "pulls")
    eq((rg.MAX_RELAYS, rg.MAX_INPUTS, rg.MAX_GROUPS, rg.MAX_SLOTS), (32, 16, 8, 8), "limits")
    eq(rg.WDT_MAX_MS, 8388, "WDT_MAX_MS")
    eq(rg.NUM_PINS, 64, "NUM_PINS on the simulated backend")
    true(rg.IMPL in ("c", "natmod", "python"), "IMPL")


def test_power_on_levels():
    # relay 0 active-high off, 1 active-low off, 2 active-high on, 3 active-low on
    b = rg.Bank(PINS, active_low=0b1010, on_at_boot=0b1100)
    eq(levels(b), [0, 1, 1, 0], "power-on levels")
    eq(b.state(), 0b1100, "state")
    eq([b.get(i) for i in range(4)], [False, False, True, True], "get")
    eq(b.sim_writes(), 0, "init is not a register write")


def test_set_get_toggle_state():
    b = rg.Bank(PINS, active_low=0b0010)
    eq(b.set(0, True, now=0), rg.OK, "set 0 on")
    eq(b.set(1, 1, now=0), rg.OK, "set 1 on")
    eq(levels(b), [1, 0, 0, 0], "levels follow polarity")
    eq(b.state(), 0b0011, "state")
    eq(b.sim_writes(), 2, "one write per switch")
    eq(b.set(0, 5, now=0), rg.OK, "set on while on")
    eq(b.sim_writes(), 2, "no write when nothing changes")
    eq(b.switches(0), 1, "no switch counted when nothing changes")
    eq(b.toggle(0, now=0), rg.OK, "toggle off")
    eq(b.get(0), False, "toggled off")
    eq(b.toggle(2, now=0), rg.OK, "toggle on")
    eq(b.set(1, [], now=0), rg.OK, "falsy turns off")
    eq(b.state(), 0b0100, "state after toggles")
    eq(levels(b), [0, 1, 1, 0], "levels after toggles")
    eq([b.switches(i) for i in range(4)], [2, 2, 1, 0], "switches")


def test_write_atomic():
    b = rg.Bank(PINS, active_low=0b1000)
    eq(b.write(0b1011, 0b0011, now=0), rg.OK, "write")
    eq(b.sim_writes(), 1, "one register write")
    eq(levels(b), [1, 1, 0, 1], "levels")
    eq(b.write(0b0011, 0b1111, now=0), rg.OK, "unchanged write, values outside mask ignored")
    eq(b.sim_writes(), 1, "no write when nothing changes")
    eq(b.write(0b1111, 0b1100, now=0), rg.OK, "four relays change")
    eq(b.sim_writes(), 2, "still one write")
    eq(b.state(), 0b1100, "state")
    eq(b.metrics()["writes"], 2, "writes metric")


def test_write_all_or_nothing():
    b = rg.Bank(PINS)
    b.min_interval(1, 10)
    b.set(1, 1, now=0)
    eq(b.write(0b0011, 0b0001, now=5 * MS), rg.REJECTED_INTERVAL, "relay 1 inside its interval")
    eq(b.state(), 0b0010, "nothing changed")
    eq(b.sim_writes(), 1, "no write")
    eq(b.metrics()["rejected_interval"], 1, "counted")
    eq(b.write(0b0011, 0b0011, now=5 * MS), rg.OK, "unchanged relay is not checked")
    eq(b.write(0b0011, 0b0001, now=10 * MS), rg.OK, "interval over")
    eq(b.state(), 0b0001, "state")


def test_min_interval():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.min_interval(0, 10)
    eq(b.set(0, 1, now=0), rg.OK, "first switch")
    eq(b.set(0, 0, now=9999), rg.REJECTED_INTERVAL, "off too soon")
    eq(b.toggle(0, now=9999), rg.REJECTED_INTERVAL, "toggle too soon")
    eq(b.set(0, 1, now=9999), rg.OK, "no change: not checked")
    eq(b.set(0, 0, now=10 * MS), rg.OK, "off at the interval")
    eq(b.set(0, 1, now=15 * MS), rg.REJECTED_INTERVAL, "on too soon")
    eq(b.get(0), False, "rejected changed nothing")
    eq(b.metrics()["rejected_interval"], 3, "rejections counted")
    eq(b.set(1, 1, now=15 * MS), rg.OK, "other relays are free")
    b.min_interval(1, 50)
    eq(b.set(1, 0, now=16 * MS), rg.OK, "a new interval counts from the next switch")
    eq(b.set(1, 1, now=17 * MS), rg.REJECTED_INTERVAL, "and then applies")


def test_min_interval_longer_than_ring():
    # one hour: longer than the 17.9-minute ring, kept by ticks every minute
    b = rg.Bank(PINS)
    b.min_interval(0, 3600000)
    t0 = RING - 10 * MS
    b.tick(now=t0)
    b.set(0, 1, now=t0 + 5 * MS)
    for k in range(1, 61):
        t = (t0 + k * 60000 * MS) % RING
        b.tick(now=t)
        eq(b.set(0, 0, now=t), rg.REJECTED_INTERVAL, "minute %d" % k)
    eq(b.set(0, 0, now=(t + 5 * MS - 1) % RING), rg.REJECTED_INTERVAL, "1 us short of an hour")
    eq(b.set(0, 0, now=(t + 5 * MS) % RING), rg.OK, "one hour after the switch")


def test_interlock_change_over():
    b = rg.Bank(PINS)
    b.tick(now=0)
    eq(b.interlock(0b0011, 50), 0, "group index")
    eq(b.set(0, 1, now=0), rg.OK, "0 on")
    eq(b.set(1, 1, now=MS), rg.DEFERRED, "change-over")
    eq(b.state(), 0, "0 off at once, 1 pending")
    eq(b.get(1), False, "pending reads off")
    eq(levels(b), [0, 0, 0, 0], "both pins off")
    eq(b.tick(now=50 * MS), 0, "dead time still running")
    eq(b.tick(now=51 * MS), 1, "turned on after the dead time")
    eq(b.state(), 0b0010, "1 on")
    eq(b.metrics()["deferred"], 1, "deferred counted")


def test_time_starts_at_first_tick():
    # without a tick there is no time base: timers start counting at the first tick
    b = rg.Bank(PINS)
    b.pulse(0, 50, now=0)
    eq(b.tick(now=60 * MS), 0, "the first tick only sets the time base")
    eq(b.tick(now=109 * MS), 0, "49 ms counted")
    eq(b.tick(now=110 * MS), 1, "50 ms counted")
    b.min_interval(1, 10)
    b.set(1, 1, now=200 * MS)
    eq(b.set(1, 0, now=205 * MS), rg.REJECTED_INTERVAL, "intervals are measured from the switch")
    eq(b.set(1, 0, now=210 * MS), rg.OK, "exactly")


def test_interlock_dead_time_after_off():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.interlock(0b0011, 50)
    b.set(0, 1, now=0)
    b.set(0, 0, now=100 * MS)
    eq(b.set(1, 1, now=120 * MS), rg.DEFERRED, "inside the dead time")
    eq(b.set(0, 1, now=121 * MS), rg.DEFERRED, "the same member waits too, replacing")
    eq(b.tick(now=149 * MS), 0, "not yet")
    eq(b.tick(now=150 * MS), 1, "at the dead time")
    eq(b.state(), 0b0001, "the newest request won")
    eq(b.set(2, 1, now=150 * MS), rg.OK, "relays outside the group are free")


def test_interlock_zero_dead_time_waits_for_tick():
    b = rg.Bank(PINS)
    b.interlock(0b0011, 0)
    b.set(0, 1, now=0)
    eq(b.set(1, 1, now=0), rg.DEFERRED, "change-over")
    eq(b.tick(now=0), 1, "first tick turns it on")
    eq(b.state(), 0b0010, "state")


def test_interlock_change_over_inside_interval():
    b = rg.Bank(PINS)
    b.interlock(0b0011, 50)
    b.min_interval(0, 100)
    b.set(0, 1, now=0)
    eq(b.set(1, 1, now=10 * MS), rg.REJECTED_INTERVAL, "0 may not turn off yet")
    eq(b.tick(now=200 * MS), 0, "nothing pending")
    eq(b.state(), 0b0001, "unchanged")
    eq(b.metrics()["deferred"], 0, "not deferred")


def test_pending_replaced_and_cancelled():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.interlock(0b0111, 50)
    b.set(0, 1, now=0)
    eq(b.set(1, 1, now=MS), rg.DEFERRED, "1 pending")
    eq(b.set(2, 1, now=2 * MS), rg.DEFERRED, "2 replaces 1")
    b.tick(now=60 * MS)
    eq(b.state(), 0b0100, "2 on, 1 never")
    eq(b.set(0, 1, now=100 * MS), rg.DEFERRED, "0 pending")
    eq(b.set(0, 0, now=101 * MS), rg.OK, "set off cancels")
    eq(b.set(1, 1, now=102 * MS), rg.DEFERRED, "1 pending")
    eq(b.toggle(1, now=103 * MS), rg.OK, "toggle cancels")
    eq(b.tick(now=300 * MS), 0, "nothing turns on")
    eq(b.state(), 0, "all off")
    eq(b.set(0, 1, now=310 * MS), rg.OK, "0 on")
    eq(b.set(1, 1, now=320 * MS), rg.DEFERRED, "1 pending")
    eq(b.set(2, 1, now=371 * MS), rg.OK, "dead time over: 2 on at once, replacing 1")
    eq(b.tick(now=372 * MS), 0, "1 dropped")
    eq(b.state(), 0b0100, "2 on")
    eq(b.metrics()["deferred"], 5, "deferred counted")


def test_deferred_turn_on_skips_interval():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.interlock(0b0011, 50)
    b.set(0, 1, now=0)
    eq(b.set(1, 1, now=MS), rg.DEFERRED, "checked now")
    b.min_interval(1, 1000)
    eq(b.tick(now=60 * MS), 1, "not checked again")
    eq(b.get(1), True, "on")


def test_write_interlock():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.interlock(0b0011, 50)
    eq(b.write(0b0011, 0b0011, now=0), rg.REJECTED_INTERLOCK, "both on")
    b.set(0, 1, now=0)
    eq(b.write(0b0010, 0b0010, now=MS), rg.REJECTED_INTERLOCK, "1 on while 0 on")
    eq(b.write(0b0011, 0b0010, now=MS), rg.REJECTED_INTERLOCK, "change-over without dead time")
    eq(b.write(0b0001, 0, now=MS), rg.OK, "0 off")
    eq(b.write(0b0010, 0b0010, now=20 * MS), rg.REJECTED_INTERLOCK, "inside the dead time")
    eq(b.write(0b0110, 0b0110, now=51 * MS), rg.OK, "after the dead time")
    eq(b.state(), 0b0110, "state")
    eq(b.set(0, 1, now=52 * MS), rg.DEFERRED, "change-over: 1 off, 0 pending")
    eq(b.write(0b0001, 0b0001, now=60 * MS), rg.REJECTED_INTERLOCK, "pending, inside the dead time")
    eq(b.write(0b0001, 0, now=60 * MS), rg.OK, "writing the pending relay off cancels it")
    eq(b.tick(now=200 * MS), 0, "nothing pending")
    eq(b.set(1, 1, now=200 * MS), rg.OK, "1 on")
    eq(b.set(0, 1, now=200 * MS), rg.DEFERRED, "change-over: 1 off, 0 pending")
    eq(b.write(0b0010, 0b0010, now=260 * MS), rg.OK, "dead time over: a write may turn on")
    eq(b.tick(now=261 * MS), 0, "and it cancelled the pending relay")
    eq(b.state(), 0b0110, "state")
    eq(b.metrics()["rejected_interlock"], 5, "rejections counted")
    eq(b.metrics()["deferred"], 2, "writes are never deferred")


def test_pulse_expiry():
    b = rg.Bank(PINS, active_low=0b0001)
    b.tick(now=0)
    eq(b.pulse(0, 50, now=0), rg.OK, "pulse")
    eq(levels(b)[0], 0, "on (active-low)")
    eq(b.tick(now=49999), 0, "still on")
    eq(b.tick(now=50 * MS), 1, "off")
    eq(levels(b)[0], 1, "off level")
    eq(b.metrics()["pulses_expired"], 1, "counted")


def test_pulse_restart_and_cancel():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.pulse(0, 50, now=0)
    eq(b.pulse(0, 50, now=30 * MS), rg.OK, "restart")
    b.tick(now=60 * MS)
    eq(b.get(0), True, "restarted timer")
    b.tick(now=80 * MS)
    eq(b.get(0), False, "off 50 ms after the restart")
    b.pulse(1, 50, now=100 * MS)
    b.set(1, 1, now=110 * MS)
    b.tick(now=200 * MS)
    eq(b.get(1), True, "set cancels the pulse")
    b.pulse(2, 50, now=200 * MS)
    b.write(0b0100, 0b0100, now=210 * MS)
    b.tick(now=300 * MS)
    eq(b.get(2), True, "write cancels the pulse")
    eq(b.metrics()["pulses_expired"], 1, "one expiry")


def test_pulse_deferred_by_interlock():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.interlock(0b0011, 50)
    b.set(0, 1, now=0)
    eq(b.pulse(1, 100, now=MS), rg.DEFERRED, "change-over")
    eq(b.tick(now=51 * MS), 1, "on after the dead time")
    eq(b.tick(now=150 * MS), 0, "pulse runs from the turn-on")
    eq(b.tick(now=151 * MS), 1, "off")
    eq(b.state(), 0, "state")


def test_pulse_beyond_ring_wrap():
    # a 30-minute pulse across two ring wraps, ticked every minute
    b = rg.Bank(PINS)
    t0 = RING - 5 * MS
    b.tick(now=t0)
    b.pulse(0, 30 * 60000, now=t0)
    for k in range(1, 31):
        b.tick(now=(t0 + k * 60000 * MS) % RING)
        eq(b.get(0), k < 30, "minute %d" % k)


def test_debounce_and_bound_relay():
    b = rg.Bank(PINS)
    j = b.input(10, debounce_ms=20, toggles=0)
    eq(j, 0, "input index")
    eq(b.sim_level(10), 1, "pulled up")
    eq(b.input_value(j), False, "released")
    t = 0
    b.tick(now=t)
    for k in range(8):  # bounces: 5 ms each way
        t += 5 * MS
        b.sim_drive(10, k % 2 == 0 and 0 or 1)
        b.tick(now=t)
    eq(b.edges(j), 0, "bounces make no edge")
    eq(b.get(0), False, "relay untouched")
    b.sim_drive(10, 0)
    t += MS
    b.tick(now=t)
    b.tick(now=t + 19 * MS)
    eq(b.input_value(j), False, "not stable yet")
    eq(b.tick(now=t + 20 * MS), 1, "press toggles the relay")
    eq((b.input_value(j), b.edges(j), b.get(0)), (True, 1, True), "pressed")
    b.sim_drive(10, None)
    b.tick(now=t + 30 * MS)
    b.tick(now=t + 50 * MS)
    eq((b.input_value(j), b.edges(j), b.get(0)), (False, 2, True), "release: edge, no toggle")
    m = b.metrics()
    eq((m["input_edges"], m["edges"]), (2, [2]), "metrics")


def test_input_levels_and_pulls():
    b = rg.Bank(PINS)
    b.sim_drive(11, 0)
    j0 = b.input(11)
    eq(b.input_value(j0), True, "initial value is the level at creation")
    j1 = b.input(12, debounce_ms=0, active_low=False, pull=rg.PULL_DOWN)
    j2 = b.input(13, pull=rg.PULL_NONE)
    eq((b.sim_level(12), b.sim_level(13)), (0, 0), "pull down / none")
    b.sim_drive(12, 1)
    eq(b.sim_level(12), 1, "driven")
    eq(b.input_value(j1), False, "sampled only by tick")
    b.tick(now=0)
    eq(b.input_value(j1), True, "zero debounce: first tick")
    eq((b.edges(j0), b.edges(j1), b.edges(j2)), (0, 1, 0), "edges")


def test_watchdog_feeds_while_slots_check_in():
    b = rg.Bank(PINS)
    s = b.slot("net", 100)
    eq(s, 0, "slot index")
    b.watchdog(1000)
    for k in range(30):
        t = k * 10 * MS
        if k % 5 == 0:
            b.checkin(s, now=t)
        b.tick(now=t)
    eq(b.metrics()["wdt_feeds"], 30, "every tick fed")
    eq((b.stalled(), b.sim_resets(), b.reset_cause()), (None, 0, None), "healthy")


def test_watchdog_stall_resets_with_slot_name():
    b = rg.Bank(PINS)
    b.slot("net", 100)
    mqtt = b.slot("mqtt", 50)
    b.watchdog(1000)
    b.tick(now=0)
    b.checkin(mqtt, now=10 * MS)
    b.tick(now=60 * MS)
    eq(b.stalled(), None, "mqtt 50 ms since check-in: within")
    b.tick(now=61 * MS)
    eq(b.stalled(), "mqtt", "past its window")
    eq((b.sim_resets(), b.reset_cause()), (1, "mqtt"), "reset through the watchdog")
    feeds = b.metrics()["wdt_feeds"]
    b.tick(now=62 * MS)
    eq(b.metrics()["wdt_feeds"], feeds, "supervision stopped")
    eq(b.sim_resets(), 1, "reset once")
    raises(ValueError, "watchdog already started", b.watchdog, 1000)  # it cannot be restarted


def test_watchdog_tick_gap_resets():
    b = rg.Bank(PINS)
    b.watchdog(100)
    b.tick(now=0)
    b.tick(now=100 * MS)
    eq(b.sim_resets(), 0, "a gap equal to the timeout is fine")
    b.tick(now=200 * MS + 1)
    eq((b.sim_resets(), b.reset_cause(), b.stalled()), (1, "watchdog", None), "gap reset")
    eq(b.metrics()["wdt_feeds"], 2, "no feed after the reset")


def test_late_ticks():
    b = rg.Bank(PINS, tick_us=1000)
    for t in (0, 1000, 3000, 6001, 6500):
        b.tick(now=t)
    m = b.metrics()
    eq((m["ticks"], m["late_ticks"]), (5, 1), "one tick more than two periods late")


def test_metrics_dict():
    b = rg.Bank(PINS)
    b.input(20)
    m = b.metrics()
    keys = sorted(m.keys())
    eq(keys, sorted(["ticks", "late_ticks", "deferred", "rejected_interval", "rejected_interlock",
                     "pulses_expired", "input_edges", "wdt_feeds", "writes", "switches", "edges"]),
       "keys")
    eq((m["switches"], m["edges"]), ([0, 0, 0, 0], [0]), "lists")


def test_autotick_on_host():
    b = rg.Bank(PINS)
    eq(b.autotick(1000), False, "no hardware timer on the host")
    eq(len(b), 4, "len() is the relay count")


def test_deinit():
    b = rg.Bank(PINS, on_at_boot=0b0011)
    eq(b.deinit(), None, "deinit")
    eq(b.deinit(), None, "a second deinit is harmless")
    try:
        b.get(0)
    except ValueError as e:
        eq(e.args[0], "bank is deinitialised", "message")
    else:
        raise AssertionError("get after deinit did not raise")
    b2 = rg.Bank(PINS)  # pins are free again
    eq(levels(b2), [0, 0, 0, 0], "new bank")


def test_metrics_into_fills_without_allocating():
    from array import array
    b = rg.Bank(PINS)
    b.input(10)
    b.input(11)
    eq(b.set(1, 1, 0), rg.OK, "switch")
    b.tick(now=0)
    buf = array("I", [7] * 20)
    n = b.metrics_into(buf)
    want = len(rg.METRICS) + len(PINS) + 2
    eq(n, want, "counters, switches per relay, edges per input")
    m = b.metrics()
    eq(list(buf[:len(rg.METRICS)]), [m[k] for k in rg.METRICS], "counters in METRICS order")
    eq(list(buf[len(rg.METRICS):n]), m["switches"] + m["edges"], "switches, then edges")
    eq(list(buf[n:]), [7] * (20 - n), "nothing written past them")
    short = array("I", [5] * (want - 1))
    raises(ValueError, "metrics buffer holds %d values, needs %d" % (want - 1, want),
           b.metrics_into, short)
    eq(list(short), [5] * (want - 1), "a short buffer is left as it was")


def test_switch_counts_past_256():
    # counts are kept in bit slices up to 255 and carried beyond: many relays at once
    b = rg.Bank([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    for k in range(600):
        eq(b.toggle(0, 0), rg.OK, "toggle")
        eq(b.write(0xF00, 0xF00 if k % 2 == 0 else 0, 0), rg.OK, "write four")
        if k % 3 == 0:
            b.set(5, k % 2 == 0, 0)
    eq(b.switches(0), 600, "relay 0")
    eq([b.switches(i) for i in range(8, 12)], [600] * 4, "relays 8..11")
    eq(b.switches(5), 200, "relay 5: every third pass, always a change")
    eq(b.switches(1), 0, "untouched")
    m = b.metrics()
    eq(m["switches"][0], 600, "metrics agree")
    eq(m["writes"], 600 + 600 + 200, "one register write per switching call")
