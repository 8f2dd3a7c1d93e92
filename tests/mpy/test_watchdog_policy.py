# iotlib.watchdog_manager's outage policy with an injected clock: missed heartbeats alone never
# reset the device (the platform counts as unreachable, one alarm, one clear); only a stuck local
# stack does, after watchdog.stuck_reset.after_missed misses, with backoff between resets in a
# row and a cap per hour, the history carried across boots. The network side is the real
# NetworkManager on the simulated WLAN, whose control file makes the stack refuse sockets.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import socket

from check import eq, true
from iotlib import config_schema, http_client, logger
from iotlib.network_manager import PROBE_LOCAL, PROBE_OK, NetworkManager, SimWLAN
from iotlib.watchdog_manager import STUCK_CAUSE, WatchdogManager
from standins import Resp, rm_tree, scratch_dir

logger.setup(echo=False)


class Platform:
    # the heartbeat endpoint as the device's auth sees it: answers, or fails as a lost platform
    def __init__(self):
        self.up = True
        self.beats = 0

    async def request(self, method, path, body=None, timeout_ms=5000):
        await asyncio.sleep_ms(0)
        if not self.up:
            raise http_client.HTTPError("POST heartbeat: cannot connect: ECONNREFUSED")
        self.beats += 1
        return Resp(200, {"config_version": 0, "desired_version": 0, "command": "none"})


class Relays:
    # the supervisor's reset request, recorded
    def __init__(self):
        self.resets = []

    def request_reset(self, cause):
        self.resets.append(cause)


class Config:
    def __init__(self, **cfg):
        self.cfg = cfg

    def get(self, key):
        return config_schema.get(self.cfg, key)


class State:
    def uptime_s(self):
        return 0

    def doc(self):
        return {}

    def note_versions(self, c, d):
        pass


class Clock:
    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms


class Board:
    # one boot of a device: a watchdog manager on a fresh clock, with the link up on the
    # simulated WLAN; the boot record's stuck history is handed from boot to boot
    def __init__(self, d, cfg, record=None, platform=None, alarms=None):
        self.d = d
        self.platform = platform or Platform()
        self.relays = Relays()
        self.clock = Clock()
        self.alarms = [] if alarms is None else alarms
        self.saved = []
        w = SimWLAN(d + "/wifi")
        w.join_ms = 0
        self.net = NetworkManager("ssid", "wifi-pw-123", w)
        http_client.set_link_check(None)  # the heartbeats here go to Platform, not a socket
        ok = asyncio.run(self.net._join())
        true(ok, "joined the simulated AP")
        self.net._connected()
        self.wd = WatchdogManager(self.platform, self.relays, Config(**cfg), State(),
                                  alarm=lambda k, m, s="error": self.alarms.append((k, s)),
                                  clock=self.clock)
        self.wd.net = self.net
        self.wd.target = ("127.0.0.1", closed_port())
        self.wd.on_history = lambda doc: self.saved.append(
            {"streak": doc["streak"], "at": list(doc["at"]), "clock_s": doc["clock_s"]})
        if record is not None:
            self.wd.load_history(record)

    def stack(self, state):
        with open(self.d + "/wifi", "w") as f:
            f.write(state)

    def beats(self, n, period_ms=1000):
        for _ in range(n):
            asyncio.run(self.wd.beat())
            self.clock.ms += period_ms

    def keys(self):
        return [k for k, _ in self.alarms]


def closed_port():
    # a privileged loopback port nobody listens on: a connect there is refused, not local
    return 1


def listening_socket():
    # a loopback listener on a free port -> (socket, port)
    import random
    for _ in range(20):
        port = 20000 + random.getrandbits(15)
        s = socket.socket()
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            s.listen(1)
            return s, port
        except OSError:
            s.close()
    raise AssertionError("no free loopback port")


def stuck_cfg(**pol):
    p = {"after_missed": 2, "backoff_s": 60, "max_per_hour": 3}
    p.update(pol)
    return {"heartbeat_max_missed": 3, "watchdog": {"stuck_reset": p}}


def test_defaults_restore_last_and_stuck_reset_on():
    eq(config_schema.get({}, "restore_policy"), "last", "default restore policy")
    eq(config_schema.stuck_reset(None), {"enabled": True, "after_missed": 3, "backoff_s": 300,
                                          "max_per_hour": 3}, "stuck_reset defaults")
    eq(config_schema.stuck_reset({"stuck_reset": {"backoff_s": 5}})["backoff_s"], 5, "override")


def test_watchdog_config_is_checked():
    base = {"relays": {"a": {"pin": 2}}}
    ok = dict(base, watchdog={"stuck_reset": {"enabled": False, "after_missed": 5,
                                                "backoff_s": 600, "max_per_hour": 2}})
    eq(config_schema.check(ok), None, "valid")
    for wd, field in (({"stuck_reset": {"after_missed": 0}}, "watchdog.stuck_reset.after_missed"),
                      ({"stuck_reset": {"enabled": 1}}, "watchdog.stuck_reset.enabled"),
                      ({"stuck_reset": {"max_per_hour": 61}}, "watchdog.stuck_reset.max_per_hour"),
                      ({"stuck_reset": {"backoff_s": "60"}}, "watchdog.stuck_reset.backoff_s"),
                      ({"stuck_reset": {"x": 1}}, "watchdog.stuck_reset.x"),
                      ({"reset_on_missed": True}, "watchdog.reset_on_missed"),
                      ([], "watchdog")):
        got = config_schema.check(dict(base, watchdog=wd))
        true(got is not None and got[0] == field, "%r -> %r" % (wd, got))


def test_probe_tells_a_stuck_stack_from_a_distant_refusal():
    d = scratch_dir("wdp")
    b = Board(d, {})
    eq(b.net.probe("127.0.0.1", closed_port())[0], PROBE_OK, "refused far away: not local")
    srv, port = listening_socket()
    verdict, why = b.net.probe("127.0.0.1", port)
    true(verdict == PROBE_OK and why in ("connected", "connect(): EINPROGRESS"), why)
    srv.close()
    b.stack("stuck")
    verdict, why = b.net.probe("127.0.0.1", 9)
    eq((verdict, why), (PROBE_LOCAL, "socket(): ENOMEM"), "the stack refuses a socket")
    true(b.net.wlan.isconnected(), "the link itself stays up")
    eq(b.net.probe_failures, 1, "counted")
    rm_tree(d)


def test_an_outage_never_resets_alarms_once_and_clears():
    d = scratch_dir("wdp")
    b = Board(d, stuck_cfg())
    b.beats(2)
    eq(b.platform.beats, 2, "answered")
    b.platform.up = False
    b.beats(2)
    true(not b.wd.outage, "two misses: not yet an outage (heartbeat_max_missed 3)")
    b.beats(100)  # far longer than heartbeat_max_missed periods
    eq(b.relays.resets, [], "no reset for a distant outage")
    true(b.wd.outage, "platform unreachable")
    eq((b.wd.missed, b.wd.stuck), (102, 0), "misses counted; the stack is fine")
    eq(b.keys(), ["platform.unreachable"], "one alarm for the whole outage")
    eq(b.alarms[0][1], "error", "severity")
    b.platform.up = True
    b.beats(1)
    true(not b.wd.outage and b.wd.missed == 0, "back")
    eq(b.keys(), ["platform.unreachable", "platform.reachable"], "and one clear")
    b.platform.up = False
    b.beats(3)
    eq(b.keys().count("platform.unreachable"), 2, "a new outage, a new alarm")
    eq(b.saved, [], "no boot record write for an outage")
    rm_tree(d)


def test_link_down_misses_do_not_reset_even_with_a_stuck_stack():
    d = scratch_dir("wdp")
    b = Board(d, stuck_cfg())
    b.platform.up = False
    b.stack("stuck")
    b.net.up = False  # what the link watcher reports while the AP is gone
    b.beats(20)
    eq((b.relays.resets, b.wd.stuck, b.net.probes), ([], 0, 0), "no probe without a link")
    rm_tree(d)


def test_stuck_stack_resets_after_after_missed_and_keeps_the_history():
    d = scratch_dir("wdp")
    b = Board(d, stuck_cfg(after_missed=3))
    b.platform.up = False
    b.stack("stuck")
    b.clock.ms = 5000
    b.beats(2)
    eq((b.relays.resets, b.wd.stuck), ([], 2), "two local failures: not yet")
    b.beats(1)
    eq(b.relays.resets, [STUCK_CAUSE], "reset on the third")
    eq(b.saved, [{"streak": 1, "at": [7], "clock_s": 7}], "history saved before the reset")
    b.beats(5)
    eq(b.relays.resets, [STUCK_CAUSE], "asked once")
    rm_tree(d)


def test_a_refusal_from_far_away_breaks_the_stuck_count():
    d = scratch_dir("wdp")
    b = Board(d, stuck_cfg(after_missed=3))
    b.platform.up = False
    for _ in range(5):
        b.stack("stuck")
        b.beats(2)
        b.stack("up")  # a socket opens again: the trouble was not local
        b.beats(1)
    eq((b.relays.resets, b.wd.stuck), ([], 0), "never 3 local failures in a row")
    rm_tree(d)


def stuck_boot(d, record, uptime_s, cfg, alarms):
    # one boot with the stack stuck from the start, running for uptime_s: -> (resets, record)
    b = Board(d, cfg, record=record, alarms=alarms)
    b.platform.up = False
    b.stack("stuck")
    while b.clock.ms < uptime_s * 1000 and not b.relays.resets:
        b.beats(1)
    return b, (b.saved[-1] if b.saved else record)


def test_backoff_doubles_between_stuck_resets_across_boots():
    d = scratch_dir("wdp")
    cfg = stuck_cfg(after_missed=2, backoff_s=60, max_per_hour=10)
    alarms = []
    b, rec = stuck_boot(d, None, 30, cfg, alarms)
    eq((b.relays.resets, rec["streak"], rec["at"]), ([STUCK_CAUSE], 1, [1]), "first: at once")
    # boot 2: 60 s of uptime required after the first reset
    b, rec2 = stuck_boot(d, rec, 59, cfg, alarms)
    eq(b.relays.resets, [], "withheld inside the backoff")
    true(b.wd.stuck_withheld >= 50, "withheld at every beat: %d" % b.wd.stuck_withheld)
    eq([k for k, _ in alarms].count("watchdog.stuck_withheld"), 1, "one alarm per reason")
    b.beats(5)  # uptime passes 60 s
    eq(b.relays.resets, [STUCK_CAUSE], "reset once the backoff is over")
    rec2 = b.saved[-1]
    eq((rec2["streak"], rec2["at"][-1] - rec["at"][-1]), (2, 60), "60 s apart, streak 2")
    # boot 3: twice the backoff now
    b, rec3 = stuck_boot(d, rec2, 119, cfg, alarms)
    eq(b.relays.resets, [], "120 s required")
    b.beats(3)
    eq(b.relays.resets, [STUCK_CAUSE], "then reset")
    rec3 = b.saved[-1]
    eq((rec3["streak"], rec3["at"][-1] - rec2["at"][-1]), (3, 120), "120 s apart")
    rm_tree(d)


def test_hourly_cap_counts_device_time_across_boots():
    d = scratch_dir("wdp")
    cfg = stuck_cfg(after_missed=1, backoff_s=1, max_per_hour=3)
    alarms = []
    rec = None
    times = []
    # the stack stays stuck: each boot beats once a second until it resets (bounded)
    for _ in range(7):
        b, rec = stuck_boot(d, rec, 7200, cfg, alarms)
        eq(b.relays.resets, [STUCK_CAUSE], "each boot ends in a reset")
        times.append(rec["at"][-1])
        true(len(rec["at"]) <= 3, "never more than max_per_hour in an hour: %r" % rec["at"])
    # backoff 1, 2, 4 s, then the cap holds until the first reset is an hour old, and so on
    eq(times, [0, 1, 3, 3600, 3608, 3624, 7200], "device seconds of the resets")
    true("watchdog.stuck_withheld" in [k for k, _ in alarms], "the cap is reported")
    rm_tree(d)


def test_an_answer_ends_the_streak_but_not_the_cap():
    d = scratch_dir("wdp")
    cfg = stuck_cfg(after_missed=1, backoff_s=600, max_per_hour=2)
    alarms = []
    b, rec = stuck_boot(d, None, 10, cfg, alarms)
    eq(rec["streak"], 1, "one stuck reset")
    b = Board(d, cfg, record=rec, alarms=alarms)
    b.beats(3)  # the platform answers: the stack works
    eq(b.saved[-1]["streak"], 0, "streak cleared in the boot record")
    eq(len(b.saved), 1, "written once, not at every answer")
    rec = b.saved[-1]
    b, rec = stuck_boot(d, rec, 10, cfg, alarms)
    eq(b.relays.resets, [STUCK_CAUSE], "no backoff after a healthy spell")
    b, rec2 = stuck_boot(d, rec, 300, cfg, alarms)
    eq(b.relays.resets, [], "but the hourly cap (2) still holds")
    rm_tree(d)


def test_disabled_never_resets():
    d = scratch_dir("wdp")
    b = Board(d, stuck_cfg(enabled=False, after_missed=1))
    b.platform.up = False
    b.stack("stuck")
    b.beats(30)
    eq((b.relays.resets, b.net.probes), ([], 0), "disabled: no probe, no reset")
    rm_tree(d)


def test_malformed_history_starts_clean():
    wd = WatchdogManager(Platform(), Relays(), Config(), State(), clock=Clock())
    for doc in (None, {}, {"streak": "x", "at": [], "clock_s": 0}, {"streak": 1, "at": 5,
                                                                      "clock_s": 0}):
        wd.load_history(doc)
        eq(wd.history, {"streak": 0, "at": [], "clock_s": 0}, "ignored: %r" % (doc,))
    wd.load_history({"streak": 2, "at": [10, 20], "clock_s": 30})
    eq(wd.device_s(), 30, "device time continues from the record")
