# WatchdogManager: heartbeats to the platform with the reported state, and the device's
# last resort. Two things reset the device, both through the relaygpio watchdog supervisor:
# - heartbeat_max_missed heartbeats in a row without an answer (link, platform or a stuck
#   stack: a reboot is the remedy the fleet agreed on), cause "hb-missed";
# - the asyncio loop stalling longer than loop_window_ms (the "loop" slot stops being checked
#   in while the C tick keeps supervising), cause "loop".
# A "reset" command from the platform resets at once (cause "cmd-reset"); "resync" makes the
# config and the desired state be fetched again now.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import time

from iotlib import logger

_log = logger.get("watchdog")


class WatchdogManager:
    def __init__(self, auth, relays, config, state, alarm=None, loop_window_ms=10000,
                 wdt_timeout_ms=8000):
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
            if self.missed >= limit:
                # the alarm is raised after the reboot (RAM does not survive a reset)
                _log.error("%d heartbeats unanswered: resetting" % self.missed)
                self.reset("hb-missed")
            return False
        self.answered += 1
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
