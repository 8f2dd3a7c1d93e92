# iotlib.events: sequence numbers without gaps, scoping by relay list, the bounds (subscribers,
# pending events), a slow subscriber dropped with its memory, quiet ones giving their place,
# readiness changes published; and the relay manager publishing who and why of each change.
import gc
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from check import eq, raises, true
from iotlib import events, logger
from iotlib.events import EventBus
from iotlib.relay_gpio_manager import RelayGPIOManager
from standins import rm_tree, scratch_dir

logger.setup(echo=False)


def drain(sub):
    out = []
    while True:
        ev = sub.take()
        if ev is None:
            return out
        out.append(ev)


def test_sequence_numbers_in_order_without_gaps():
    bus = EventBus()
    sub = bus.subscribe()
    for i in range(10):
        bus.publish(events.RELAY, relay="r%d" % (i % 3), state="HIGH")
    got = drain(sub)
    eq([e["seq"] for e in got], list(range(1, 11)), "seq")
    eq([e["relay"] for e in got][:4], ["r0", "r1", "r2", "r0"], "order")
    eq(got[0]["type"], "relay", "type")
    true(got[0]["t"] > 1600000000, "Unix time: %r" % got[0]["t"])
    eq(bus.seq, 10, "bus seq")


def test_scope_limits_to_relay_events_of_the_list():
    bus = EventBus()
    scoped = bus.subscribe(("a",))
    whole = bus.subscribe()
    bus.publish(events.RELAY, relay="a", state="HIGH")
    bus.publish(events.RELAY, relay="b", state="HIGH")
    bus.publish(events.ALARM, key="x", message="m", severity="error")
    bus.publish(events.INPUT, input="btn", value=True, edges=1)
    bus.publish(events.READY, ready=False, missing=["time"])
    eq([(e["seq"], e.get("relay")) for e in drain(scoped)], [(1, "a")], "scoped: a only")
    eq([e["seq"] for e in drain(whole)], [1, 2, 3, 4, 5], "unscoped: all")
    nothing = bus.subscribe(())
    bus.publish(events.RELAY, relay="a", state="LOW")
    eq(drain(nothing), [], "an empty list sees nothing")


def test_subscribers_are_bounded():
    bus = EventBus(max_subscribers=2)
    a = bus.subscribe()
    bus.subscribe()
    raises(events.Full, "too many event subscribers (max 2)", bus.subscribe)
    eq(bus.refused, 1, "refused")
    a.close()
    bus.subscribe()  # a closed one gives its place
    eq(bus.counters()["event_subscribers"], 2, "count")
    eq(bus.dropped, 0, "a close is no drop")


def test_slow_subscriber_is_dropped_and_frees_its_memory():
    bus = EventBus(max_pending=8)
    slow = bus.subscribe()
    fast = bus.subscribe()
    for i in range(8):
        bus.publish(events.RELAY, relay="a", state="HIGH")
        fast.take()
    eq(slow.dropped, None, "8 pending: at the bound, still there")
    eq(len(slow.items), 8, "pending")
    bus.publish(events.RELAY, relay="a", state="LOW")
    eq(slow.dropped, "slow", "the 9th drops it")
    eq(slow.items, [], "its events are released")
    eq(slow.take(), None, "nothing left to take")
    eq(bus.dropped, 1, "dropped count")
    eq(len(bus.subs), 1, "out of the list")
    eq(fast.take()["seq"], 9, "the other one goes on")
    # a flood never grows the heap past the bound: one subscriber never reading
    bus.subscribe()
    gc.collect()
    before = gc.mem_free()
    for i in range(2000):
        bus.publish(events.RELAY, relay="a", state="HIGH")
        fast.take()
    gc.collect()
    true(before - gc.mem_free() < 8 * 1024, "heap grew by %d" % (before - gc.mem_free()))
    eq(bus.dropped, 2, "the non-reader dropped too")


def test_quiet_subscriber_gives_its_place_when_needed():
    bus = EventBus(max_subscribers=1, stale_ms=50)
    old = bus.subscribe()
    raises(events.Full, "too many event subscribers (max 1)", bus.subscribe)  # not quiet yet
    time.sleep_ms(80)
    bus.subscribe()
    eq(old.dropped, "stale", "the quiet one made room")


def test_get_waits_times_out_and_wakes_on_drop():
    bus = EventBus(max_pending=1)
    sub = bus.subscribe()

    async def run():
        t0 = time.ticks_ms()
        eq(await sub.get(30), None, "timeout")
        true(time.ticks_diff(time.ticks_ms(), t0) >= 25, "waited")
        eq(sub.dropped, None, "a timeout drops nothing")

        async def later():
            await asyncio.sleep_ms(10)
            bus.publish(events.ALARM, key="k", message="m", severity="info")
        asyncio.create_task(later())
        ev = await sub.get(5000)
        eq(ev["key"], "k", "woken by publish")

        async def flood():
            await asyncio.sleep_ms(10)
            for _ in range(3):
                bus.publish(events.ALARM, key="k", message="m", severity="info")
        asyncio.create_task(flood())
        sub.take()
        eq(await sub.get(5000), None, "woken by the drop")
        eq(sub.dropped, "slow", "why")
    asyncio.run(run())


def test_last_alarms_are_kept_bounded():
    bus = EventBus(keep_alarms=3)
    for i in range(5):
        bus.publish(events.ALARM, key="k%d" % i, message="m", severity="error")
    eq([a["key"] for a in bus.alarms], ["k2", "k3", "k4"], "last three")


def test_readiness_changes_are_published():
    bus = EventBus()
    sub = bus.subscribe()
    state = {"ok": False, "missing": ["time"]}

    async def run():
        t = asyncio.create_task(events.watch_ready(bus, lambda: (state["ok"], state["missing"]),
                                                   5))
        await asyncio.sleep_ms(20)
        eq(drain(sub), [], "the first look is no change")
        state["ok"], state["missing"] = True, []
        ev = await sub.get(1000)
        eq((ev["type"], ev["ready"], ev["missing"]), ("ready", True, []), "ready")
        state["ok"], state["missing"] = False, ["platform"]
        ev = await sub.get(1000)
        eq((ev["ready"], ev["missing"]), (False, ["platform"]), "not ready")
        t.cancel()
    asyncio.run(run())


def test_causes():
    eq(events.cause_of("core", False), "pulse_end", "core off")
    eq(events.cause_of("core", True), "interlock", "core on")
    eq(events.cause_of("10.0.0.7", True), "rest", "an address")
    for c in ("desired", "reconfigure", "mqtt", "local"):
        eq(events.cause_of(c, True), c, c)


def test_relay_manager_publishes_who_and_why():
    d = scratch_dir("events")
    m = RelayGPIOManager(d, tick_ms=5)
    m.start({"relays": {"a": {"pin": 2}, "f": {"pin": 3}, "r": {"pin": 4}},
             "interlocks": [{"relays": ["f", "r"], "dead_ms": 20}],
             "inputs": {"btn": {"pin": 10, "debounce_ms": 0}}})
    sub = m.events.subscribe()
    eq(m.set("a", True, "10.1.2.3", "alice"), "ok", "set")
    eq(m.set("f", True, "desired", "platform"), "ok", "f on")
    eq(m.set("r", True, "10.1.2.3", "bob"), "deferred", "change-over")
    got = drain(sub)
    eq([(e["relay"], e["state"], e["cause"], e["subject"]) for e in got],
       [("a", "HIGH", "rest", "alice"), ("f", "HIGH", "desired", "platform"),
        ("f", "LOW", "rest", "bob")], "requested changes")
    eq((got[0]["source"], got[0]["switches"]), ("10.1.2.3", 1), "source, count")

    async def run():
        task = asyncio.create_task(m.run())
        ev = await sub.get(2000)
        eq((ev["relay"], ev["state"], ev["cause"]), ("r", "HIGH", "interlock"), "after dead time")
        eq(m.pulse("a", 30, "10.1.2.3", "carol"), "ok", "pulse")
        # a pulse on a relay already on keeps it on: no event until it ends
        ev = await sub.get(2000)
        eq((ev["relay"], ev["state"], ev["cause"]), ("a", "LOW", "pulse_end"), "pulse end")
        m.bank.sim_drive(10, 0)  # active-low button pressed
        ev = await sub.get(2000)
        eq((ev["type"], ev["input"], ev["value"], ev["edges"]), ("input", "btn", True, 1), "edge")
        task.cancel()
    asyncio.run(run())
    m.bank.deinit()
    rm_tree(d)


def test_controller_alarms_and_relays_share_one_bus():
    from iotlib import http_client
    from relays_controller import RelaysController
    d = scratch_dir("events")
    c = RelaysController(
        wifi_ssid="ssid", wifi_password="wifi-password-x", device_id="pico-t",
        device_key="device-key-123456", service_discovery_url="http://127.0.0.1:9/api/devices",
        relay_pins={"relay1": 2}, data_dir=d, simulate=True, log_echo=False)
    http_client.set_link_check(None)
    true(c.relays.events is c.events, "one bus")
    c.relays.start(c.config.load_local())
    sub = c.events.subscribe()
    c.alarm("test.key", "something broke", "critical")
    eq(c.relays.set("relay1", True, "desired", "platform"), "ok", "set")
    got = drain(sub)
    eq([(e["type"], e.get("key"), e.get("severity"), e.get("relay")) for e in got],
       [("alarm", "test.key", "critical", None), ("relay", None, None, "relay1")], "events")
    eq(c.events.alarms[-1]["message"], "something broke", "kept for the page")
    c.relays.bank.deinit()
    rm_tree(d)
