# WatchdogManager: heartbeats to the platform with the reported state, and the device's
# last resort. A distant outage never resets the device: heartbeat_max_missed heartbeats in a
# row without an answer make the platform "unreachable" (/ready names it, the alarm
# platform.unreachable is queued once, platform.reachable when an answer comes back) while the
# relays and the local REST API carry on. What does reset the device, through the relaygpio
# watchdog supervisor (docs/device_app.md, "Resets"):
# - a stuck local stack: watchdog.stuck_reset.after_missed missed heartbeats in a row, each
#   with the link up and NetworkManager.probe() refused by the device's own stack, cause
#   "stack-stuck"; resets in a row need backoff_s, 2*backoff_s, ... of uptime between them and
#   at most max_per_hour happen per hour; that history lives in the boot record (boot.json);
# - the asyncio loop stalling longer than loop_window_ms (the "loop" slot stops being checked
#   in while the C tick keeps supervising), cause "loop".
# A "reset" command from the platform resets at once (cause "cmd-reset"); "resync" makes the
# config and the desired state be fetched again now.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import time

from iotlib import config_schema, logger
from iotlib.network_manager import PROBE_LOCAL

_log = logger.get("watchdog")
STUCK_CAUSE = "stack-stuck"
HOUR_S = 3600
MAX_BACKOFF_S = 86400


class WatchdogManager:
    def __init__(self, auth, relays, config, state, alarm=None, loop_window_ms=10000,
                 wdt_timeout_ms=8000, clock=None):
        self.auth = auth
        self.relays = relays
        self.config = config
        self.state = state
        self.alarm = alarm
        self.loop_window_ms = loop_window_ms
        self.wdt_timeout_ms = wdt_timeout_ms
        self.seq = 0
        self.sent = 0
        self.answered = 0
        self.missed = 0           # in a row
        self.missed_total = 0
        self.commands = 0
        self.last_command = None
        self.on_resync = None     # extra work on "resync" (time sync...)
        self.on_recover = None    # the platform answers again after misses
        self.net = None
        self.target = None        # (host, port) of the platform, for the stuck-stack probe
        self.outage = False       # heartbeat_max_missed misses in a row, until an answer
        self.stuck = 0            # misses in a row with a local socket failure
        self.stuck_withheld = 0   # stuck resets not done: backoff or hourly cap
        self.on_history = None    # fn(doc): persist the stuck-reset history (boot record)
        # stuck resets across boots: streak in a row, device seconds of the last hour's resets,
        # and the device-seconds count at the last write (uptime adds to it)
        self.history = {"streak": 0, "at": [], "clock_s": 0}
        self._clock = clock       # () -> ms, monotonic; tests inject one
        self._up_ms = 0
        self._up_last = time.ticks_ms()
        self._base_ms = self._ms()  # device_s() counts from here: boot, or the last write
        self._withheld_why = None
        self._reset_asked = False

    def start(self):
        # supervision begins: from here a stalled loop resets the board
        self.relays.slot("loop", self.loop_window_ms)
        self.relays.watchdog(self.wdt_timeout_ms)

    async def feed_loop(self):
        while True:
            self.relays.checkin("loop")
            await asyncio.sleep_ms(self.loop_window_ms // 5)

    def reset(self, cause):
        if not self._reset_asked:
            self._reset_asked = True
            self.relays.request_reset(cause)

    def load_history(self, doc):
        # the boot record's copy; anything malformed starts a clean history
        try:
            h = {"streak": int(doc["streak"]), "at": [int(t) for t in doc["at"]],
                 "clock_s": int(doc["clock_s"])}
        except (KeyError, TypeError, ValueError):
            return
        self.history = h

    def _ms(self):
        if self._clock is not None:
            return self._clock()
        # ticks wrap; summing the differences keeps counting past that
        now = time.ticks_ms()
        self._up_ms += time.ticks_diff(now, self._up_last)
        self._up_last = now
        return self._up_ms

    def device_s(self):
        # seconds on a clock that survives resets: what it counted at the last history write
        # plus the uptime since (time powered off is not counted: the cap can only tighten)
        return self.history["clock_s"] + (self._ms() - self._base_ms) // 1000

    def _save_history(self):
        h = self.history
        ms = self._ms()
        whole = (ms - self._base_ms) // 1000
        h["clock_s"] += whole
        self._base_ms += whole * 1000
        if self.on_history is not None:
            try:
                self.on_history(h)
            except Exception as e:  # a reset must not wait on a flash problem
                _log.error("stuck-reset history not saved", error=e)

    # ---- the stuck-stack reset ----

    def _stuck_policy(self):
        return config_schema.stuck_reset(self.config.get("watchdog"))

    def _stuck_allowed(self, pol):
        # (True, None) or (False, why): backoff after a reset in a row, or the hourly cap
        h = self.history
        now = self.device_s()
        recent = [t for t in h["at"] if now - t < HOUR_S]
        if len(recent) >= pol["max_per_hour"]:
            return False, "%d stuck resets in the last hour (max_per_hour %d)" % (
                len(recent), pol["max_per_hour"])
        if h["streak"] and h["at"]:
            wait = min(pol["backoff_s"] << min(h["streak"] - 1, 16), MAX_BACKOFF_S)
            if now - h["at"][-1] < wait:
                return False, "backoff: %d s since the last stuck reset, %d s required" % (
                    now - h["at"][-1], wait)
        return True, None

    def _check_stuck(self, error):
        # after a missed heartbeat: is the local stack the reason? Reset only on that evidence.
        pol = self._stuck_policy()
        if self._reset_asked or not pol["enabled"] or self.net is None or not self.net.up \
                or self.target is None:
            self.stuck = 0
            return
        verdict, why = self.net.probe(self.target[0], self.target[1])
        if verdict != PROBE_LOCAL:
            self.stuck = 0  # the stack opened a socket: the trouble is further away
            return
        self.stuck += 1
        _log.warning("local stack refused a socket", probe=why, stuck=self.stuck,
                     after_missed=pol["after_missed"])
        if self.stuck < pol["after_missed"]:
            return
        ok, withheld = self._stuck_allowed(pol)
        if not ok:
            self.stuck_withheld += 1
            if withheld.split(":")[0] != self._withheld_why:  # once per reason, not per beat
                self._withheld_why = withheld.split(":")[0]
                _log.error("stuck stack: reset withheld", reason=withheld)
                if self.alarm:
                    self.alarm("watchdog.stuck_withheld", "local stack stuck (%s); reset "
                               "withheld: %s" % (why, withheld), "critical")
            return
        h = self.history
        now = self.device_s()
        h["at"] = [t for t in h["at"] if now - t < HOUR_S] + [now]
        h["streak"] += 1
        self._save_history()
        _log.error("stuck stack: resetting", probe=why, stuck=self.stuck, streak=h["streak"],
                   heartbeat_error=error)
        self.reset(STUCK_CAUSE)

    def _answered(self):
        # the platform answered: the outage is over, and the stack works (a streak ends)
        if self.outage:
            self.outage = False
            _log.info("platform reachable again", after_missed=self.missed)
            if self.alarm:
                self.alarm("platform.reachable", "heartbeats answered again after %d missed"
                           % self.missed, "info")
        self.stuck = 0
        self._withheld_why = None
        if self.history["streak"]:
            self.history["streak"] = 0
            self._save_history()

    def _command(self, cmd, cid):
        self.commands += 1
        self.last_command = cmd
        _log.info("platform command", command=cmd, command_id=cid)
        if cmd == "reset":
            self.reset("cmd-reset")
        elif cmd == "resync":
            self.config.kick()
            self.state.kick(resync=True)
            if self.on_resync:
                self.on_resync()

    async def beat(self):
        self.seq += 1
        body = {"seq": self.seq, "uptime_s": self.state.uptime_s(), "state": self.state.doc()}
        period_ms = self._period()
        self.sent += 1
        try:
            r = await self.auth.request("POST", "heartbeat", body=body,
                                        timeout_ms=max(2000, min(5000, period_ms)))
            if r.status != 200:
                raise OSError("heartbeat answered %d" % r.status)
            doc = r.json()
            if not isinstance(doc, dict):
                raise OSError("heartbeat answer is not an object")
        except OSError as e:
            self.missed += 1
            self.missed_total += 1
            limit = self.config.get("heartbeat_max_missed")
            _log.warning("heartbeat missed", error=e, missed=self.missed, limit=limit)
            if self.missed >= limit and not self.outage:
                # no reset: the relays and the local API carry on; the alarm waits in the buffer
                self.outage = True
                _log.error("platform unreachable", missed=self.missed, error=e)
                if self.alarm:
                    self.alarm("platform.unreachable", "%d heartbeats unanswered (%s); relays"
                               " kept, local API serving" % (self.missed, e), "error")
            self._check_stuck(str(e))
            return False
        self.answered += 1
        self._answered()
        if self.missed:
            _log.info("heartbeat answered again", after_missed=self.missed)
            if self.on_recover:
                self.on_recover()
        self.missed = 0
        self.state.note_versions(doc.get("config_version", 0), doc.get("desired_version", 0))
        cmd = doc.get("command", "none")
        if cmd != "none":
            self._command(cmd, doc.get("command_id"))
        return True

    async def run(self):
        while True:
            t0 = time.ticks_ms()
            if self.net is not None and not self.net.up:
                # give the link one period to come up before this beat counts as missed
                try:
                    await asyncio.wait_for_ms(self.net.wait_up(), self._period())
                except asyncio.TimeoutError:
                    pass
            await self.beat()
            # the period is read again while waiting: a new config takes effect at once
            while time.ticks_diff(time.ticks_ms(), t0) < self._period():
                await asyncio.sleep_ms(100)

    def _period(self):
        return self.config.get("heartbeat_period_s") * 1000
