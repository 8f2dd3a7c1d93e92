# iotlib.mqtt_bridge on the simulated board: commands switch relays through the relay manager
# (interval, interlock, audit with source "mqtt" and the MQTT user), RBAC and rate limits
# refuse with an error event and no relay change, retained commands are ignored, relay and
# input changes become retained states and events, Home Assistant discovery payloads, and a
# relay removed from the config retracts its entity. The broker side is a recorder.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import json
import time

from check import eq, true
from iotlib import atomic_file, logger, mqtt_bridge
from iotlib.mqtt_bridge import MqttBridge
from iotlib.mqtt_client import MQTTError
from iotlib.relay_gpio_manager import RelayGPIOManager
from standins import rm_tree, run, scratch_dir

logger.setup(echo=False)
BASE = "relays/dev-1/relay/"


def config(**mqtt):
    m = {"host": "127.0.0.1", "username": "ha"}
    m.update(mqtt)
    return {"relays": {"a": {"pin": 2, "min_interval_ms": 1000}, "b": {"pin": 3}, "c": {"pin": 4}},
            "interlocks": [{"relays": ["b", "c"], "dead_ms": 0}],
            "inputs": {"door": {"pin": 10, "pull": "up", "active_low": True, "debounce_ms": 0}},
            "restore_policy": "off", "mqtt": m}


class Config:
    def __init__(self, cfg):
        self.config = cfg


class Controller:
    # the parts of RelaysController the bridge reads
    def __init__(self, d, cfg):
        self.device_id = "dev-1"
        self.data_dir = d
        self.firmware_version = "1.2.3"
        self.config = Config(cfg)
        self.alarm_listeners = []
        self.relays = RelayGPIOManager(d)
        self.relays.start(cfg)


class Recorder:
    # what a broker would receive from the device
    def __init__(self):
        self.sent = []

    async def publish(self, topic, payload, retain=False, qos=0):
        self.sent.append((topic, payload, retain))

    def topics(self, prefix):
        return [(t, p) for t, p, r in self.sent if t.startswith(prefix)]


class Link:
    # one broker connection as the bridge drives it: publishes recorded; the reader ends when
    # lose() is called or, with lose_on_timeout, at the moment the publisher is in wait_for's
    # time-out path (awaiting the task wait_for runs), where a cancel of it goes astray
    def __init__(self, lose_on_timeout=False):
        self.sent = []
        self.connected = True
        self.lose_on_timeout = lose_on_timeout
        self.publisher = None
        self._lost = asyncio.Event()

    async def subscribe(self, topic, qos=1):
        return qos

    async def publish(self, topic, payload, retain=False, qos=0):
        if not self.connected:
            raise MQTTError("not connected")
        self.publisher = asyncio.current_task()
        self.sent.append((topic, payload))

    def lose(self):
        self._lost.set()

    async def run(self):
        if self.lose_on_timeout:
            t0 = time.ticks_ms()
            while not (self.publisher is not None
                       and isinstance(self.publisher.data, asyncio.Task)):
                if time.ticks_diff(time.ticks_ms(), t0) > 5000:
                    raise AssertionError("the publisher never reached its time-out path")
                await asyncio.sleep_ms(0)
        else:
            await self._lost.wait()
        self.connected = False
        raise MQTTError("broker closed the connection")


async def until(cond, what, ms=2000):
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep_ms(5)


def setup(cfg=None):
    d = scratch_dir("mqtt")
    c = Controller(d, cfg or config())
    return d, c, MqttBridge(c)


def errors(b):
    return [json.loads(doc)["error"] for t, doc in b.events if t == "error"]


def test_settings_defaults():
    s = mqtt_bridge.settings({"mqtt": {"host": "h"}})
    eq((s["port"], s["tls"], s["topic_prefix"], s["discovery_prefix"], s["command_role"]),
       (1883, False, "relays", "homeassistant", "operator"), "defaults")
    eq(mqtt_bridge.settings({"mqtt": {"host": "h", "tls": True, "ca_cert": "x"}})["port"], 8883,
       "TLS port")
    eq(mqtt_bridge.settings({"mqtt": {"host": "h", "enabled": False}}), None, "disabled")
    eq(mqtt_bridge.settings({}), None, "absent")
    eq(mqtt_bridge.node_id("a.b/c+#d"), "a_b_c__d", "discovery-safe node id")


def test_command_switches_through_the_manager_with_audit():
    d, c, b = setup()
    seen = []
    c.relays.listeners.append(lambda *a: seen.append(a))
    b.on_message(BASE + "b/set", b"ON", False)
    eq(c.relays.get("b"), True, "b on")
    eq(seen[0], ("b", True, "mqtt", "ha"), "source mqtt, subject the MQTT user")
    eq(c.relays.pin_levels()["3"], 1, "pin driven")
    b.on_message(BASE + "b/set", b"TOGGLE", False)
    eq(c.relays.get("b"), False, "toggled off")
    eq(errors(b), [], "no errors")
    eq(b.commands, 2, "commands counted")
    true(list(b.pending) == ["b"], "state due")
    c.relays.bank.deinit()
    rm_tree(d)


def test_bad_commands_give_errors_and_no_change():
    d, c, b = setup()
    before = c.relays.states()
    changes = c.relays.changes
    for topic, payload, want in (
            (BASE + "a/set", b"on", "invalid_payload"),
            (BASE + "a/set", b"", "invalid_payload"),
            (BASE + "a/set", b"\xff\xfe", "invalid_payload"),
            (BASE + "a/set", b"ON" * 100, "invalid_payload"),
            (BASE + "a/set", b'{"state": "ON"}', "invalid_payload"),
            (BASE + "zz/set", b"ON", "unknown_relay"),
            (BASE + "a/b/set", b"ON", "unknown_relay"),
            ("relays/dev-1/other", b"ON", "unknown_topic")):
        b.on_message(topic, payload, False)
        eq(errors(b)[-1], want, "%r %r" % (topic, payload))
    eq(c.relays.states(), before, "no relay changed")
    eq(c.relays.changes, changes, "no change counted")
    ev = json.loads(b.events[-1][1])
    eq(sorted(ev), ["error", "message", "topic"], "error event fields")
    c.relays.bank.deinit()
    rm_tree(d)


def test_retained_command_is_ignored():
    d, c, b = setup()
    b.on_message(BASE + "b/set", b"ON", True)
    eq(c.relays.get("b"), False, "a stale retained ON switched nothing")
    eq(errors(b), ["retained_ignored"], "said so")
    eq(b.retained_ignored, 1, "counted")
    c.relays.bank.deinit()
    rm_tree(d)


def test_core_rules_apply_interval_and_interlock():
    d, c, b = setup()
    b.on_message(BASE + "a/set", b"ON", False)
    b.on_message(BASE + "a/set", b"OFF", False)     # within a's 1000 ms min interval
    eq(c.relays.get("a"), True, "interval kept a on")
    b.on_message(BASE + "b/set", b"ON", False)
    b.on_message(BASE + "c/set", b"ON", False)      # b and c interlocked, dead time 0
    eq(errors(b)[0], "interval", "interval refusal named")
    states = c.relays.states()
    true(not (states["b"] and states["c"]), "never both on: %r" % states)
    c.relays.bank.deinit()
    rm_tree(d)


def test_rbac_role_from_config():
    cfg = config(command_role="viewer")
    d, c, b = setup(cfg)
    b.on_message(BASE + "b/set", b"ON", False)
    eq(c.relays.get("b"), False, "viewer role switched nothing")
    eq(errors(b), ["forbidden"], "forbidden")
    cfg2 = config(command_role="switcher")
    cfg2["api"] = {"roles": {"switcher": {"permissions": ["relays:write"]}}}
    b.apply(cfg2)
    b.on_message(BASE + "b/set", b"ON", False)
    eq(c.relays.get("b"), True, "a config role with relays:write may switch")
    c.relays.bank.deinit()
    rm_tree(d)


def test_rate_limited_like_rest():
    cfg = config()
    cfg["rate_limits"] = {"default": {"requests": 3, "window_s": 60}}
    d, c, b = setup(cfg)
    for i in range(5):
        b.on_message(BASE + "b/set", b"TOGGLE", False)
    eq(b.commands, 3, "three allowed")
    eq(errors(b), ["rate_limited", "rate_limited"], "then refused")
    eq(c.relays.get("b"), True, "odd number of toggles applied")
    c.relays.bank.deinit()
    rm_tree(d)


def test_states_events_and_input_edges_are_published():
    d, c, b = setup()
    rec = Recorder()

    async def main():
        b.poll_inputs()
        b.on_message(BASE + "b/set", b"ON", False)
        c.relays.bank.sim_drive(10, 0)       # door input active (active low)
        c.relays.bank.tick()
        b.poll_inputs()
        b._alarm("relays.persist", "disk full", "error")
        await b._publish_pending(rec)

    run(main())
    eq(rec.topics(BASE + "b/state"), [(BASE + "b/state", "ON")], "relay state")
    eq([r for t, p, r in rec.sent if t.endswith("/state")], [True, True], "states retained")
    eq(rec.topics("relays/dev-1/input/"), [("relays/dev-1/input/door/state", "ON")], "input state")
    ev = [json.loads(p) for t, p in rec.topics("relays/dev-1/events")]
    eq(ev, [{"type": "relay", "relay": "b", "state": "ON", "source": "mqtt", "subject": "ha"},
            {"type": "input", "input": "door", "state": "ON", "edges": 1}], "events in order")
    eq([json.loads(p)["key"] for t, p in rec.topics("relays/dev-1/alarm")], ["relays.persist"],
       "alarm")
    c.relays.bank.deinit()
    rm_tree(d)


def test_short_input_pulse_between_polls_is_not_lost():
    d, c, b = setup()
    bank = c.relays.bank
    b.poll_inputs()
    bank.sim_drive(10, 0)   # pressed and released between two polls
    bank.tick()
    bank.sim_drive(10, 1)
    bank.tick()
    b.poll_inputs()
    ev = [json.loads(doc) for t, doc in b.events if t == "events"]
    eq(ev, [{"type": "input", "input": "door", "state": "OFF", "edges": 2}], "both edges counted")
    eq(list(b.pending_inputs), ["door"], "state republished")
    c.relays.bank.deinit()
    rm_tree(d)


def test_event_buffer_is_bounded():
    d, c, b = setup()
    for i in range(mqtt_bridge.MAX_EVENTS + 10):
        b._alarm("k%d" % i, "m", "info")
    eq(len(b.events), mqtt_bridge.MAX_EVENTS, "bounded")
    eq(b.events_dropped, 10, "drops counted")
    eq(json.loads(b.events[0][1])["key"], "k10", "oldest dropped first")
    c.relays.bank.deinit()
    rm_tree(d)


def test_discovery_and_removed_relay_retracted():
    d, c, b = setup()
    rec = Recorder()
    run(b._announce(rec))
    cfgs = {t: json.loads(p) for t, p, r in rec.sent}
    eq(sorted(cfgs), ["homeassistant/binary_sensor/dev-1/door/config",
                      "homeassistant/switch/dev-1/a/config", "homeassistant/switch/dev-1/b/config",
                      "homeassistant/switch/dev-1/c/config"], "one entity each")
    sw = cfgs["homeassistant/switch/dev-1/a/config"]
    eq((sw["unique_id"], sw["command_topic"], sw["state_topic"], sw["availability_topic"]),
       ("dev-1_relay_a", BASE + "a/set", BASE + "a/state", "relays/dev-1/availability"), "topics")
    eq(sw["device"]["sw_version"], "1.2.3", "device info")
    true(all(r for t, p, r in rec.sent), "discovery retained")
    # c leaves the config (and its interlock): its entity and retained state are retracted
    cfg = config()
    del cfg["relays"]["c"]
    cfg["interlocks"] = []
    c.relays.reconfigure(cfg)
    rec2 = Recorder()
    run(b._announce(rec2))
    eq([(t, p) for t, p, r in rec2.sent if p == ""],
       [("homeassistant/switch/dev-1/c/config", ""), (BASE + "c/state", "")], "retracted")
    eq(atomic_file.read_json(d + "/" + mqtt_bridge.ENTITIES_FILE)["switch"], ["a", "b"],
       "remembered across boots")
    rec3 = Recorder()
    run(b._announce(rec3))
    eq([t for t, p, r in rec3.sent if p == ""], [], "retracted once")
    c.relays.bank.deinit()
    rm_tree(d)


def test_publisher_of_an_ended_connection_stops_and_takes_nothing():
    # the connection drops while its publisher is in wait_for's time-out path: the cancel sent
    # to it is forwarded to the task wait_for awaits and lost. That publisher must still stop,
    # and never take a state that is due on the next connection.
    d, c, b = setup()
    old = Link(lose_on_timeout=True)
    new = Link()

    async def main():
        await b._session(old, b.base)
        old_publisher = old.publisher
        true(old_publisher is not None, "the first connection published")
        session = asyncio.create_task(b._session(new, b.base))
        await until(lambda: (BASE + "b/state", "OFF") in new.sent, "states on the new link")
        await until(old_publisher.done, "the old publisher to stop")
        b.on_message(BASE + "b/set", b"ON", False)
        await until(lambda: (BASE + "b/state", "ON") in new.sent, "b ON on the new link")
        new.lose()
        await session

    run(main())
    eq(c.relays.get("b"), True, "switched")
    eq([e for e in new.sent if e[0] == "relays/dev-1/events"][-1:],
       [("relays/dev-1/events", json.dumps({"type": "relay", "relay": "b", "state": "ON",
                                            "source": "mqtt", "subject": "ha"}))], "event sent")
    c.relays.bank.deinit()
    rm_tree(d)


def test_state_and_event_stay_due_when_the_publish_fails():
    d, c, b = setup()
    link = Link()
    link.connected = False  # the broker went away: every publish raises

    async def main():
        b.on_message(BASE + "b/set", b"ON", False)
        try:
            await b._publish_pending(link)
        except MQTTError:
            pass
        else:
            raise AssertionError("the publish on a lost link should raise")

    run(main())
    eq(list(b.pending), ["b"], "state still due")
    eq([json.loads(doc)["relay"] for t, doc in b.events], ["b"], "event still due")
    rec = Recorder()
    run(b._publish_pending(rec))
    eq(rec.topics(BASE + "b/state"), [(BASE + "b/state", "ON")], "sent on the next link")
    eq(b.pending, {}, "then settled")
    eq(b.events, [], "events settled")
    c.relays.bank.deinit()
    rm_tree(d)


def test_change_during_its_own_publish_stays_due():
    d, c, b = setup()

    class Switching(Recorder):
        # the relay is switched again while its first state is on the wire
        async def publish(self, topic, payload, retain=False, qos=0):
            if topic == BASE + "b/state" and payload == "ON":
                b.on_message(BASE + "b/set", b"OFF", False)
            await asyncio.sleep_ms(0)
            self.sent.append((topic, payload, retain))

    rec = Switching()
    b.on_message(BASE + "b/set", b"ON", False)
    run(b._publish_pending(rec))
    eq(rec.topics(BASE + "b/state"), [(BASE + "b/state", "ON"), (BASE + "b/state", "OFF")],
       "the newer state follows")
    c.relays.bank.deinit()
    rm_tree(d)
