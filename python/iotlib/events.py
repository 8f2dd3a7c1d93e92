# The device's live events: relay changes (with who and why), input edges, alarms and readiness
# changes, published by the managers as they happen and taken by subscribers (the web page's
# event stream, an MQTT publisher). Bounded: at most max_subscribers at once, each holding at
# most max_pending events; a subscriber that falls behind is dropped, never allowed to grow the
# heap. Every event carries a bus-wide sequence number, so a subscriber that sees every event
# can tell that it missed none.
#
#   bus = EventBus()
#   bus.publish(RELAY, relay="pump", state="HIGH", cause="rest", subject="alice")
#   sub = bus.subscribe(scope=None)   # None: every event; a tuple of relay names: their events
#   ev = await sub.get(15000)         # an event; None after 15 s, or once dropped (sub.dropped)
#   sub.close()
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

RELAY = "relay"    # relay, state HIGH/LOW, cause, subject, source, switches
INPUT = "input"    # input, value, edges
ALARM = "alarm"    # key, message, severity
READY = "ready"    # ready, missing

# why a relay changed; a REST change has the client's address as its source. The boot-time
# restore has no event: it happens before any subscriber can exist (a stream starts with the
# states in its hello).
CAUSES = ("rest", "desired", "pulse_end", "interlock", "reconfigure", "mqtt", "local")
MAX_SUBSCRIBERS = 4
MAX_PENDING = 32
STALE_MS = 30000    # a subscriber that took nothing for this long may give its place
KEEP_ALARMS = 8
# the port's epoch (2000 on the board) to Unix time, as the REST API's tokens count
_UNIX_OFFSET_S = 0 if time.gmtime(0)[0] == 1970 else 946684800


def cause_of(source, on):
    # the manager's source of a change -> its cause
    if source == "core":  # the relay core alone: a pulse ran out, or a change-over completed
        return "interlock" if on else "pulse_end"
    if source in CAUSES:
        return source
    return "rest"


class Full(Exception):
    pass


class Subscriber:
    def __init__(self, bus, scope, max_pending):
        self.bus = bus
        self.scope = scope
        self.max_pending = max_pending
        self.items = []
        self.flag = asyncio.Event()
        self.dropped = None     # why it was dropped: "slow", "stale" or "closed"
        self.waiting = False
        self.last_ms = time.ticks_ms()
        self.taken = 0

    def wants(self, ev):
        # a token limited to some relays sees their events only: nothing of the whole device
        if self.scope is None:
            return True
        r = ev.get("relay")
        return r is not None and r in self.scope

    def _put(self, ev):
        if len(self.items) >= self.max_pending:
            self.bus._drop(self, "slow")
            return
        self.items.append(ev)
        self.flag.set()

    def take(self):
        # the oldest pending event, or None
        self.last_ms = time.ticks_ms()
        if not self.items:
            return None
        self.taken += 1
        return self.items.pop(0)

    async def get(self, timeout_ms=None):
        # the next event; None after timeout_ms, or at once when dropped
        while not self.items and self.dropped is None:
            self.flag.clear()
            self.waiting = True
            try:
                if timeout_ms is None:
                    await self.flag.wait()
                else:
                    try:
                        await asyncio.wait_for_ms(self.flag.wait(), timeout_ms)
                    except asyncio.TimeoutError:
                        break
            finally:
                self.waiting = False
                self.last_ms = time.ticks_ms()
        if self.dropped is not None:
            return None
        return self.take()

    def close(self):
        self.bus._drop(self, "closed")


class EventBus:
    def __init__(self, max_subscribers=MAX_SUBSCRIBERS, max_pending=MAX_PENDING,
                 stale_ms=STALE_MS, keep_alarms=KEEP_ALARMS):
        self.max_subscribers = max_subscribers
        self.max_pending = max_pending
        self.stale_ms = stale_ms
        self.keep_alarms = keep_alarms
        self.seq = 0
        self.subs = []
        self.alarms = []        # the last alarm events, oldest first
        self.ready = None       # (ok, missing) as last seen by watch_ready
        self.published = 0
        self.dropped = 0        # subscribers dropped for falling behind or going quiet
        self.refused = 0        # subscriptions refused: every place taken

    def publish(self, kind, **fields):
        # -> the event (a dict shared by every subscriber: they must not change it)
        self.seq += 1
        self.published += 1
        fields["seq"] = self.seq
        fields["type"] = kind
        fields["t"] = time.time() + _UNIX_OFFSET_S
        if kind == ALARM:
            a = self.alarms
            a.append(fields)
            if len(a) > self.keep_alarms:
                a.pop(0)
        for s in self.subs[:]:  # a slow one leaves the list while we go
            if s.wants(fields):
                s._put(fields)
        return fields

    def subscribe(self, scope=None):
        # -> Subscriber; Full when every place is taken by a live subscriber
        if len(self.subs) >= self.max_subscribers:
            now = time.ticks_ms()
            for s in self.subs[:]:
                if not s.waiting and time.ticks_diff(now, s.last_ms) > self.stale_ms:
                    self._drop(s, "stale")
        if len(self.subs) >= self.max_subscribers:
            self.refused += 1
            raise Full("too many event subscribers (max %d)" % self.max_subscribers)
        s = Subscriber(self, scope, self.max_pending)
        self.subs.append(s)
        return s

    def _drop(self, s, why):
        if s.dropped is not None:
            return
        s.dropped = why
        s.items = []
        if why != "closed":
            self.dropped += 1
        try:
            self.subs.remove(s)
        except ValueError:
            pass
        s.flag.set()  # a get() waiting returns None

    def counters(self):
        return {"events_published": self.published, "event_subscribers": len(self.subs),
                "event_subscribers_dropped": self.dropped,
                "event_subscribers_refused": self.refused}


async def watch_ready(bus, ready, period_ms=500):
    # readiness is computed, not pushed: publish its changes as seen every period_ms
    while True:
        ok, missing = ready()
        now = (ok, list(missing))
        if bus.ready is not None and now != bus.ready:
            bus.publish(READY, ready=ok, missing=now[1])
        bus.ready = now
        await asyncio.sleep_ms(period_ms)
