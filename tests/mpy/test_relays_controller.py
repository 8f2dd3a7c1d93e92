# RelaysController on the unix port: the constructor of the original spec, exceptions in tasks
# as alarms, the reset path of the simulated board.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import json

from check import eq, true
from iotlib import http_client, logger
from standins import rm_tree, scratch_dir

logger.setup(echo=False)


def controller(d):
    from relays_controller import RelaysController
    c = RelaysController(
        wifi_ssid="ssid", wifi_password="wifi-password-x", device_id="pico-t",
        device_key="device-key-123456", service_discovery_url="http://127.0.0.1:9/api/devices",
        relay_pins={"relay1": 2, "relay2": 3}, data_dir=d, simulate=True, log_echo=False)
    http_client.set_link_check(None)  # the other tests here use the client with no WLAN
    return c


def keys(c):
    if hasattr(c.alarms, "pending"):
        return [k for k, _ in c.alarms.pending()]
    return [a[0] for a in c.alarms.items]


def test_seed_constructor_and_defaults():
    d = scratch_dir("rc")
    c = controller(d)
    eq(c.auth.url, "http://127.0.0.1:9/api/devices/register",
       "discovery URL as the original spec writes it")
    cfg = c.config.load_local()
    eq(cfg, {"relays": {"relay1": {"pin": 2}, "relay2": {"pin": 3}}}, "config from relay_pins")
    c.relays.start(cfg)
    eq(c.relays.states(), {"relay1": False, "relay2": False}, "safe at boot")
    ok, missing = c.ready()
    true(not ok and missing == ["registered", "config", "time"], "not ready: %r" % missing)
    eq(tuple(c.watchdog.target), ("127.0.0.1", 9), "the stuck-stack probe aims at the platform")
    c.watchdog.outage = True  # heartbeat_max_missed heartbeats went unanswered
    eq(c.ready(), (False, ["registered", "config", "time", "platform"]), "platform missing")
    eq(c.status()["platform_outage"], True, "in the board view")
    c.relays.bank.deinit()
    rm_tree(d)


def test_first_time_sync_retries_registration_and_config_at_once():
    # a board boots with its RTC in 2021: the platform's certificate is "not yet valid" until
    # the first sync, which must not leave registration or the config fetch to their backoff
    d = scratch_dir("rc")
    c = controller(d)
    c._extras(c.config.load_local())   # what run() builds once the config is known
    c.auth._retry_at, c.auth._backoff = 123456, 60000
    c.config._kick.clear()
    c.timesync.on_first_sync()
    eq((c.auth._retry_at, c.config._kick.is_set()), (None, True))
    rm_tree(d)


def test_task_exceptions_become_alarms_and_the_task_restarts():
    d = scratch_dir("rc")
    c = controller(d)
    runs = []

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("boom %d" % len(runs))

    async def scenario():
        c._spawn("flaky", flaky)
        for _ in range(60):
            await asyncio.sleep_ms(100)
            if len(runs) >= 3:
                break

    c.restart_ms = 20
    asyncio.run(scenario())
    eq(len(runs), 3, "restarted after each failure")
    true("task.flaky" in keys(c), "alarm raised: %r" % keys(c))
    eq(c.task_failures, 2, "counted")
    rm_tree(d)


def test_reset_of_the_simulated_board_persists_and_stops():
    d = scratch_dir("rc")
    c = controller(d)
    c.relays.start(c.config.load_local())
    c._boot_record()
    c.relays.set("relay2", True)
    # the watchdog saves its stuck-reset history before it asks for the reset
    c.watchdog.history = {"streak": 1, "at": [40], "clock_s": 40}
    c.watchdog._save_history()
    eq(json.loads(open(d + "/boot.json").read())["stuck_reset"]["at"], [40], "written at once")
    c._on_reset("stack-stuck")
    eq(c.exit_code, 75, "reset exit code")
    eq(json.loads(open(d + "/relays.json").read())["states"]["relay2"], True, "state persisted")
    eq(json.loads(open(d + "/boot.json").read())["pending_cause"], "stack-stuck", "cause kept")
    words = json.loads(open(d + "/sim/scratch.json").read())["words"]
    eq(words[0], 0b10, "relay state kept in the simulated scratch words")
    c.relays.bank.deinit()
    c2 = controller(d)
    c2.relays.start(c2.config.load_local())
    c2._boot_record()
    eq((c2.boot["boots"], c2.boot["resets"], c2.boot["last_reset_cause"]),
       (2, 1, "stack-stuck"), "next boot")
    eq(c2.relays.states(), {"relay1": False, "relay2": True},
       "no restore_policy in the config: 'last' by default brings relay2 back on")
    eq(c2.watchdog.history["streak"], 1, "stuck-reset history carried over")
    true(c2.watchdog.device_s() >= 40, "device time continues from the record")
    c2.relays.bank.deinit()
    rm_tree(d)


def test_main_runs_and_stops_with_an_unusable_persisted_config():
    d = scratch_dir("rc")
    from iotlib import atomic_file
    # passes the schema, but the core refuses a pulse shorter than the interval
    atomic_file.write_json(d + "/config.json", {"version": 7, "etag": '"cfg-7"', "config": {
        "relays": {"a": {"pin": 2, "min_interval_ms": 100, "pulse_ms": 50}}}})
    c = controller(d)

    async def run():
        async def stop_soon():
            await asyncio.sleep_ms(300)
            c.stop()
        asyncio.create_task(stop_soon())
        return await c.main()

    eq(asyncio.run(run()), 0, "clean stop")
    eq((c.config.source, c.relays.names), ("default", ["relay1", "relay2"]), "fell back")
    true("config.boot" in keys(c), "alarm: %r" % keys(c))
    http_client.set_link_check(None)
    logger.setup(echo=False)
    rm_tree(d)
