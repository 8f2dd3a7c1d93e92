# StateManager: reports the device's state to the StateServer (relays, uptime, firmware
# version, counters; the token carries tenant and namespace) and applies the desired state the
# fleet publishes. A desired version is applied once, when it is new: later local changes
# stand until the platform publishes another version (or sends "resync").
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import time

from iotlib import logger

_log = logger.get("state")
MAX_COUNTERS = 64


class StateManager:
    def __init__(self, auth, relays, config, firmware_version, counters=None, alarm=None,
                 timeout_ms=5000):
        self.auth = auth
        self.relays = relays
        self.config = config
        self.firmware_version = firmware_version
        self.counters = counters      # callable -> {name: int}
        self.alarm = alarm
        self.timeout_ms = timeout_ms
        self.net = None
        self.reports = 0
        self.report_failures = 0
        self.desired_applied = 0
        self.server_desired_version = 0
        self._desired_etag = None
        self._pending = None          # a desired document not fully applied yet
        self._resync = False
        self._report_due = True
        self._wake = asyncio.Event()
        self._up_ms = 0
        self._up_last = time.ticks_ms()

    def uptime_s(self):
        # ticks wrap every 12.4 days; summing the differences keeps counting past that
        now = time.ticks_ms()
        self._up_ms += time.ticks_diff(now, self._up_last)
        self._up_last = now
        return self._up_ms // 1000

    def doc(self):
        d = {"relays": self.relays.states(), "uptime_s": self.uptime_s(),
             "firmware_version": self.firmware_version[:32],
             "config_version": self.config.version, "desired_version": self.relays.desired_version}
        if self.counters:
            c = {}
            src = self.counters()
            for k in src:
                v = src[k]
                if type(v) is bool:
                    v = int(v)
                if type(v) is int and v >= 0 and len(c) < MAX_COUNTERS:
                    c[k] = v
            d["counters"] = c
        return d

    def changed(self):
        # a relay changed: report soon
        self._report_due = True
        self._wake.set()

    def kick(self, resync=False):
        if resync:
            self._desired_etag = None
            self._pending = None
            self._resync = True
        self._report_due = True
        self._wake.set()

    async def report(self):
        r = await self.auth.request("PUT", "state", body=self.doc(), timeout_ms=self.timeout_ms)
        if r.status != 200:
            self.report_failures += 1
            _log.warning("state report refused", status=r.status, body=r.body[:200])
            return False
        self.reports += 1
        self._report_due = False
        try:
            ack = r.json()
            self.note_versions(ack.get("config_version", 0), ack.get("desired_version", 0))
        except OSError:
            pass
        return True

    def note_versions(self, config_version, desired_version):
        # versions announced by the platform (state ack, heartbeat answer)
        self.server_desired_version = desired_version
        if self.config.behind(config_version):
            self.config.kick()
        if desired_version != self.relays.desired_version and self._pending is None:
            self._wake.set()

    async def fetch_desired(self):
        headers = {"If-None-Match": self._desired_etag} if self._desired_etag else None
        r = await self.auth.request("GET", "desired_state", headers=headers,
                                    timeout_ms=self.timeout_ms)
        if r.status == 304:
            return
        if r.status != 200:
            _log.warning("desired state fetch failed", status=r.status)
            return
        doc = r.json()
        if not isinstance(doc, dict) or not isinstance(doc.get("relays"), dict):
            _log.warning("desired state answer is not a desired state document")
            return
        self._desired_etag = r.headers.get("etag")
        resync = self._resync
        self._resync = False
        if doc.get("version", 0) != self.relays.desired_version or resync:
            self._pending = doc

    def _apply_pending(self):
        doc = self._pending
        version = doc.get("version", 0)
        relays = self.relays
        targets = doc.get("relays") or {}
        unknown = [n for n in targets if not relays.has(n)]
        if unknown:
            msg = "desired state version %d names unknown relays %s" % (version, ", ".join(unknown))
            _log.warning(msg)
            if self.alarm:
                self.alarm("state.unknown_relay", msg, "warning")
        cur = relays.states()
        change = {}
        for n in targets:
            if n in cur and cur[n] != bool(targets[n]):
                change[n] = bool(targets[n])
        results = {}
        if change:
            pulsed = False
            for n in change:
                if change[n] and relays.pulse_ms[relays.index[n]]:
                    pulsed = True
            r = None if pulsed else relays.write(change, source="desired", subject="platform")
            if r is None or r != "ok":
                # not possible in one register write: one by one, offs first (a change-over
                # then defers instead of being refused)
                for n in sorted(change, key=lambda k: change[k]):
                    results[n] = relays.set(n, change[n], source="desired", subject="platform")
            else:
                for n in change:
                    results[n] = r
        waiting = [n for n in results if results[n] == "interval"]
        if waiting:
            return False  # inside a minimum interval: try again shortly
        refused = [n for n in results if results[n] == "interlock"]
        if refused and self.alarm:
            self.alarm("state.desired_refused", "desired state version %d: %s refused by an"
                       " interlock" % (version, ", ".join(refused)), "warning")
        self._pending = None
        relays.set_desired_version(version)
        self.desired_applied += 1
        _log.info("desired state applied", version=version, changed=results)
        self._report_due = True
        return True

    async def run(self):
        last_report = None
        backoff = 1000
        while True:
            if self.net is not None:
                await self.net.wait_up()
            if last_report is not None:
                # at most one report a second, however often relays change
                gap = 1000 - time.ticks_diff(time.ticks_ms(), last_report)
                if gap > 0:
                    await asyncio.sleep_ms(gap)
            self._wake.clear()  # here, not before the wait: a kick during the work counts
            period = self.config.get("state_period_s") * 1000
            try:
                if self._pending is None:
                    await self.fetch_desired()
                if self._pending is not None:
                    self._apply_pending()
                if self._report_due or last_report is None or \
                        time.ticks_diff(time.ticks_ms(), last_report) >= period:
                    last_report = time.ticks_ms()
                    await self.report()
                backoff = 1000
            except OSError as e:
                _log.warning("state sync failed", error=e, retry_ms=backoff)
                backoff = min(backoff * 2, period)
            wait = 1000 if self._pending is not None or self._report_due else period
            wait = max(wait, backoff)
            try:
                await asyncio.wait_for_ms(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
