# ConfigManager, StateManager and WatchdogManager against a scripted platform: ETag fetches,
# rejection and rollback, desired state with a retry, heartbeat misses and commands.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import time

from check import eq, true
from iotlib import logger
from iotlib.config_manager import ConfigManager
from iotlib.relay_gpio_manager import RelayGPIOManager
from iotlib.state_manager import StateManager
from iotlib.watchdog_manager import WatchdogManager
from standins import Resp, rm_tree, scratch_dir

logger.setup(echo=False)
DEFAULT = {"relays": {"a": {"pin": 2}, "b": {"pin": 3}}}


class ScriptedAuth:
    """auth.request() answered by handler(method, name, body, headers)."""

    def __init__(self, handler):
        self.handler = handler
        self.calls = []

    async def request(self, method, url, body=None, headers=None, timeout_ms=None,
                      max_body=None):
        self.calls.append((method, url, body, dict(headers or {})))
        await asyncio.sleep_ms(0)
        r = self.handler(method, url, body, headers or {})
        if isinstance(r, Exception):
            raise r
        return r


def alarms_list():
    got = []
    return got, lambda key, msg, severity="error": got.append((key, msg))


def cfg_doc(version, cfg):
    return Resp(200, {"version": version, "config": cfg}, {"etag": '"cfg-%d"' % version})


def test_config_fetch_reject_rollback_and_fallback():
    d = scratch_dir("sync")
    answers = []
    auth = ScriptedAuth(lambda m, u, b, h: answers.pop(0))
    got, alarm = alarms_list()
    cm = ConfigManager(auth, d, DEFAULT, alarm=alarm)
    eq(cm.load_local(), DEFAULT, "default before any fetch")
    applied = []
    cm.on_change(lambda new, old: applied.append(("first", new.get("log_level"))))
    v1 = dict(DEFAULT, log_level="debug")
    answers.append(cfg_doc(1, v1))
    eq(asyncio.run(cm.fetch()), True, "v1 applied")
    eq((cm.version, cm.source, applied), (1, "platform", [("first", "debug")]), "state")
    answers.append(Resp(304, b"", {"etag": '"cfg-1"'}))
    eq(asyncio.run(cm.fetch()), False, "unchanged")
    eq(auth.calls[-1][3]["If-None-Match"], '"cfg-1"', "etag sent")
    bad = {"relays": {"a": {"pin": 25}}}
    answers.append(cfg_doc(2, bad))
    eq(asyncio.run(cm.fetch()), False, "v2 rejected")
    eq(got[-1][0], "config.invalid", "alarm")
    true("relays.a.pin" in got[-1][1] and "keeping version 1" in got[-1][1], got[-1][1])
    answers.append(Resp(304, b""))
    asyncio.run(cm.fetch())
    eq(auth.calls[-1][3]["If-None-Match"], '"cfg-1", "cfg-2"', "the rejected one is not refetched")
    eq(cm.behind(2), False, "a rejected version is not behind")

    def second(new, old):
        if new.get("log_level") == "error":
            raise ValueError("cannot")
    cm.on_change(second)
    answers.append(cfg_doc(3, dict(DEFAULT, log_level="error")))
    eq(asyncio.run(cm.fetch()), False, "v3 not applicable")
    eq(applied[-2:], [("first", "error"), ("first", "debug")], "first callback rolled back")
    eq((cm.version, got[-1][0]), (1, "config.apply"), "kept v1, alarm")
    again = ConfigManager(auth, d, DEFAULT)
    eq((again.load_local(), again.version, again.source), (v1, 1, "persisted"), "fallback copy")
    rm_tree(d)


def setup_state(d, handler, cfg=None):
    auth = ScriptedAuth(handler)
    cm = ConfigManager(auth, d, cfg or DEFAULT)
    cm.load_local()
    relays = RelayGPIOManager(d, persist_min_ms=0)
    relays.start(cm.config)
    got, alarm = alarms_list()
    sm = StateManager(auth, relays, cm, "1.2.3", counters=lambda: {"x": 1, "neg": -1, "b": True},
                      alarm=alarm)
    return auth, cm, relays, sm, got


def test_desired_state_applied_once_with_retry():
    d = scratch_dir("sync")
    desired = {"version": 1, "relays": {"a": True, "ghost": True}, "updated_at": 0}

    def handler(m, u, b, h):
        if u == "desired_state":
            return Resp(200, desired, {"etag": '"desired-%d"' % desired["version"]})
        return Resp(200, {"received_at": 0, "config_version": 0, "desired_version": 1})
    cfg = {"relays": {"a": {"pin": 2, "min_interval_ms": 300}, "b": {"pin": 3}}}
    auth, cm, relays, sm, got = setup_state(d, handler, cfg)
    asyncio.run(sm.fetch_desired())
    t0 = time.ticks_us()  # a switches on after this (the core's clock is ticks_us)
    eq(sm._apply_pending(), True, "applied")
    eq((relays.states(), relays.desired_version), ({"a": True, "b": False}, 1), "v1")
    eq(got[0][0], "state.unknown_relay", "unknown relay named")
    asyncio.run(sm.fetch_desired())
    eq(sm._pending, None, "same version: nothing to do")
    desired.update(version=2, relays={"a": False, "b": True})
    asyncio.run(sm.fetch_desired())
    eq(sm._apply_pending(), False, "a is inside its interval: later")
    eq(relays.states(), {"a": True, "b": True}, "b switched already")
    # retried as the state task does, until the relay core's 300 ms interval has passed
    while not sm._apply_pending():
        true(time.ticks_diff(time.ticks_us(), t0) < 3000000, "still refused after 3 s")
        time.sleep_ms(10)  # the core reads its own clock: polled, bounded
    true(time.ticks_diff(time.ticks_us(), t0) >= 300000, "retried only after the interval")
    eq((relays.states(), relays.desired_version), ({"a": False, "b": True}, 2), "v2")
    doc = sm.doc()
    eq((doc["relays"], doc["desired_version"], doc["firmware_version"]),
       ({"a": False, "b": True}, 2, "1.2.3"), "report")
    eq(doc["counters"], {"x": 1, "b": 1}, "only non-negative integers reported")
    asyncio.run(sm.report())
    eq(auth.calls[-1][:2], ("PUT", "state"), "reported")
    relays.bank.deinit()
    rm_tree(d)


def test_heartbeat_misses_and_commands():
    d = scratch_dir("sync")
    answers = []
    auth, cm, relays, sm, got = setup_state(d, lambda m, u, b, h: answers.pop(0),
                                            dict(DEFAULT, heartbeat_max_missed=2))
    wd = WatchdogManager(auth, relays, cm, sm)
    resets = []
    relays.request_reset = resets.append
    answers.append(OSError("down"))
    eq(asyncio.run(wd.beat()), False, "missed")
    eq(resets, [], "one miss is not enough")
    answers.append(Resp(503, {"error": "x", "message": "y"}))
    asyncio.run(wd.beat())
    eq((wd.missed, resets, wd.outage), (2, [], True), "two: unreachable, never a reset")
    body = auth.calls[-1][2]
    true(body["state"]["relays"] == {"a": False, "b": False} and body["seq"] == 2, "state inside")
    wd2 = WatchdogManager(auth, relays, cm, sm)
    answers.append(Resp(200, {"command": "resync", "command_id": 7, "server_time": 0,
                              "config_version": 0, "desired_version": 0}))
    eq(asyncio.run(wd2.beat()), True, "answered")
    true(cm._kick.is_set() and sm._resync, "resync asks for config and desired state")
    answers.append(Resp(200, {"command": "reset", "command_id": 8, "server_time": 0,
                              "config_version": 0, "desired_version": 0}))
    asyncio.run(wd2.beat())
    eq(resets[-1], "cmd-reset", "reset command")
    relays.bank.deinit()
    rm_tree(d)
