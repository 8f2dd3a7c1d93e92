# RelayGPIOManager: owns the relay bank. Builds it from config (names -> indices), ticks it,
# restores relay states at boot per the power-on policy (unless the Bank kept them across a
# watchdog or soft reset: then they are the current state, no file is applied), persists them with a flash-wear-aware
# policy (only on change, at most one write per persist_min_ms, atomic replace), reconfigures
# safely on hot reload, hosts the watchdog supervisor's slots, and offers the operations the
# REST layer and the desired state use, each answering a reason: ok, deferred, interval, interlock.
try:
    import relaygpio
except ImportError:
    import pyrelaygpio as relaygpio
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import time
from array import array

from iotlib import atomic_file, config_schema, events, logger

_log = logger.get("relays")
REASONS = relaygpio.REASONS
PULLS = {"up": relaygpio.PULL_UP, "down": relaygpio.PULL_DOWN, "none": relaygpio.PULL_NONE}
STATE_FILE = "relays.json"
# where each counter sits in metric_values(); switches per relay follow them
METRIC_INDEX = {k: i for i, k in enumerate(relaygpio.METRICS)}


def _layout(cfg):
    # what the Bank is built from: a change here needs a new Bank
    relays = cfg["relays"]
    names = sorted(relays)
    pins = [relays[n]["pin"] for n in names]
    al = [bool(relays[n].get("active_low", False)) for n in names]
    locks = [(sorted(g["relays"]), g["dead_ms"]) for g in cfg.get("interlocks", ())]
    inputs = cfg.get("inputs", {})
    ins = [(k, inputs[k]["pin"], inputs[k].get("pull", "up"), inputs[k].get("active_low", True),
            inputs[k].get("debounce_ms", 20)) for k in sorted(inputs)]
    return (names, pins, al, locks, ins)


class RelayGPIOManager:
    def __init__(self, data_dir, alarm=None, persist_min_ms=5000, tick_ms=10, bus=None):
        self.path = data_dir + "/" + STATE_FILE
        self.alarm = alarm
        self.persist_min_ms = persist_min_ms
        self.tick_ms = tick_ms
        self.bank = None
        self.names = []
        self.index = {}
        self.pins = []
        self.pulse_ms = []
        self.inputs = []
        self.layout = None
        self.autotick = False
        self.simulated = False
        self.on_reset = None     # callback(cause) once the supervisor has reset the device
        self.on_change = None    # callback() after any relay change
        self.listeners = []      # fn(relay, on, source, subject) for each relay that changed
        self.desired_version = 0
        self.changes = 0         # +1 at every relay change seen (requests, core, reconfigure)
        self._mask = 0
        self._metric_buf = None  # metric_values(), filled in place on every scrape
        self._last_change = {}
        self._saved = None       # states as last persisted
        self._save_at = None     # ticks_ms when the pending write is due
        self._last_write = None
        self._slots = []         # [name, window_ms, index]
        self._wdt_ms = 0
        self._resets_seen = 0
        self._reset_done = False
        self.persist_writes = 0
        self.boot_policy = None
        self.restored = None     # relay mask the Bank kept across a reset, None after a cold start
        self.cfg = None
        self.events = bus if bus is not None else events.EventBus()  # live events
        self._edges = None       # (bank, input edge counts) last published

    # ---- building ----

    def _boot_states(self, cfg):
        policy = config_schema.get(cfg, "restore_policy")
        relays = cfg["relays"]
        saved = {}
        doc = atomic_file.read_json(self.path, lambda d: isinstance(d.get("states"), dict))
        if doc is not None:
            saved = doc["states"]
            self.desired_version = doc.get("desired_version", 0)
            self._saved = dict(saved)
        states = {}
        for n in relays:
            if policy == "off":
                states[n] = False
            elif policy == "last" and n in saved:
                states[n] = bool(saved[n])
            else:
                states[n] = bool(relays[n].get("on_at_boot", False))
        self.boot_policy = policy
        return states

    def _safe(self, cfg, states):
        # never power up two members of an interlock group: the whole group starts off
        for g in cfg.get("interlocks", ()):
            if sum(1 for n in g["relays"] if states.get(n)) > 1:
                _log.warning("interlock members on together at start; all off",
                             relays=g["relays"])
                for n in g["relays"]:
                    states[n] = False
        return states

    @staticmethod
    def _check(cfg):
        # the schema allows it, the core would refuse every switch-on: refuse the config
        relays = cfg["relays"]
        for n in relays:
            p, m = relays[n].get("pulse_ms", 0), relays[n].get("min_interval_ms", 0)
            if p and p < m:
                raise ValueError("relay %s: pulse_ms %d is shorter than its min_interval_ms %d"
                                 % (n, p, m))

    def _build(self, cfg, states):
        self._check(cfg)
        names, pins, al, locks, ins = _layout(cfg)
        relays = cfg["relays"]
        al_mask = on_mask = 0
        for i, n in enumerate(names):
            if al[i]:
                al_mask |= 1 << i
            if states.get(n):
                on_mask |= 1 << i
        bank = relaygpio.Bank(pins, active_low=al_mask, on_at_boot=on_mask,
                              tick_us=self.tick_ms * 1000)
        # after a watchdog or soft reset the Bank already drives the state kept across it: that
        # is the current state, the state file and the pulses are not applied over it
        restored = bank.restored() if hasattr(bank, "restored") else None
        try:
            if restored is not None:
                kept = {n: bool(restored >> i & 1) for i, n in enumerate(names)}
                safe = self._safe(cfg, dict(kept))
                if safe != kept:  # interlocks changed across the reset: those groups go off
                    bank.write((1 << len(names)) - 1, sum(1 << i for i, n in enumerate(names)
                                                          if safe[n]))
                states = safe
            index = {}
            for i, n in enumerate(names):
                index[n] = i
                ms = relays[n].get("min_interval_ms", 0)
                if ms:
                    bank.min_interval(i, ms)
            for members, dead in locks:
                m = 0
                for n in members:
                    m |= 1 << index[n]
                bank.interlock(m, dead)
            inputs = []
            for name, pin, pull, alow, deb in ins:
                bank.input(pin, debounce_ms=deb, active_low=alow, pull=PULLS[pull])
                inputs.append(name)
        except Exception:
            bank.deinit()
            raise
        old = self.bank
        self.bank = bank
        self.names = names
        self.index = index
        self.pins = pins
        self.inputs = inputs
        self.pulse_ms = [relays[n].get("pulse_ms", 0) for n in names]
        self.layout = (names, pins, al, locks, ins)
        self.restored = restored
        for i, n in enumerate(names):
            if restored is None and states.get(n) and self.pulse_ms[i]:
                bank.pulse(i, self.pulse_ms[i])
        self._mask = bank.state()
        self.autotick = bank.autotick(self.tick_ms * 1000)
        self.simulated = hasattr(bank, "sim_resets")
        self._resets_seen = bank.sim_resets() if self.simulated else 0
        for s in self._slots:
            s[2] = bank.slot(s[0], s[1])
        if self._wdt_ms:
            bank.watchdog(self._wdt_ms)
        return old

    def start(self, cfg):
        # boot: pins go straight to their power-on levels (no glitch), then the rest is set
        states = self._safe(cfg, self._boot_states(cfg))
        self._build(cfg, states)
        self.cfg = cfg
        self._note_all()
        if self.restored is not None:
            self.boot_policy = "kept"  # across a reset, without a flash write
            if self.states() != self._saved:
                self._dirty()  # the file follows the kept state (policy "last")
        _log.info("relays up", policy=self.boot_policy, impl=relaygpio.IMPL, autotick=self.autotick,
                  relays=self.states())

    def reconfigure(self, cfg):
        # hot reload. Timing-only changes apply in place; a new layout (pins, polarity,
        # interlocks, inputs) needs a new Bank: relays kept by name and pin keep their state
        # (they may drop for the microseconds between the banks), new ones start off.
        self._check(cfg)  # before anything changes
        layout = _layout(cfg)
        relays = cfg["relays"]
        if layout == self.layout:
            for i, n in enumerate(self.names):
                self.bank.min_interval(i, relays[n].get("min_interval_ms", 0))
                self.pulse_ms[i] = relays[n].get("pulse_ms", 0)
            self.cfg = cfg
            _log.info("relay timing updated in place")
            return False
        before = self.states()
        states = self._carry(cfg, layout, before)
        self.bank.deinit()  # first, so no pin is ever driven by two banks
        try:
            self._build(cfg, states)
        except Exception as e:
            _log.error("new relay layout refused; previous one restored", error=e)
            self._build(self.cfg, self._carry(self.cfg, _layout(self.cfg), before))
            raise
        self.cfg = cfg
        after = self.states()
        for n in before:
            if before[n] != after.get(n, False):
                logger.audit("relay", relay=n, old=before[n], new=after.get(n, False),
                             subject="config", source="reconfigure")
                self._publish(n, after.get(n, False), "reconfigure", "config")
                self._tell(n, after.get(n, False), "reconfigure", "config")
        self._note_all()
        self._dirty()
        _log.info("relay bank rebuilt", relays=after)
        return True

    def _carry(self, cfg, layout, before):
        old_pins = dict(zip(self.names, self.pins))
        old_al = dict(zip(self.names, self.layout[2])) if self.layout else {}
        states = {}
        for i, n in enumerate(layout[0]):
            states[n] = bool(before.get(n) and old_pins.get(n) == layout[1][i]
                             and old_al.get(n) == layout[2][i])
        return self._safe(cfg, states)

    # ---- reading ----

    def has(self, name):
        return name in self.index

    def _i(self, name):
        i = self.index.get(name)
        if i is None:
            raise ValueError("unknown relay %r" % name)
        return i

    def get(self, name):
        return self.bank.get(self._i(name))

    def states(self):
        m = self.bank.state()
        return {n: bool(m >> i & 1) for i, n in enumerate(self.names)}

    def all(self):
        m = self.bank.state()
        return [{"name": n, "pin": self.pins[i], "state": bool(m >> i & 1),
                 "switches": self.bank.switches(i), "last_change": self._last_change.get(n, 0)}
                for i, n in enumerate(self.names)]

    def doc(self, name):
        # all()'s entry for one relay (the same dict), None for an unknown name
        i = self.index.get(name)
        if i is None:
            return None
        m = self.bank.state()
        return {"name": name, "pin": self.pins[i], "state": bool(m >> i & 1),
                "switches": self.bank.switches(i), "last_change": self._last_change.get(name, 0)}

    def metrics(self):
        m = self.bank.metrics()
        m["persist_writes"] = self.persist_writes
        return m

    def metric_values(self):
        # GET /metrics: the bank's counters with no dict per scrape (relaygpio.METRICS
        # order, then switches per relay, then edges per input)
        if self._metric_buf is None:
            n = len(METRIC_INDEX) + relaygpio.MAX_RELAYS + relaygpio.MAX_INPUTS
            self._metric_buf = array("I", bytes(4 * n))
        self.bank.metrics_into(self._metric_buf)
        return self._metric_buf

    def pin_levels(self):
        # simulated board only: the physical level on each relay pin
        return {str(p): self.bank.sim_level(p) for p in self.pins} if self.simulated else {}

    # ---- switching ----

    def _done(self, result, before, source, subject):
        after = self.bank.state()
        changed = before ^ after
        for i, n in enumerate(self.names):
            if changed >> i & 1:
                logger.audit("relay", relay=n, old=bool(before >> i & 1), new=bool(after >> i & 1),
                             subject=subject, source=source)
                self._last_change[n] = time.time()
                self._publish(n, bool(after >> i & 1), source, subject, i)
                self._tell(n, bool(after >> i & 1), source, subject)
        self._mask = after
        if changed:
            self.changes += 1
            self._dirty()
        return REASONS[result]

    def _publish(self, name, on, source, subject, i=None):
        self.events.publish(events.RELAY, relay=name, state="HIGH" if on else "LOW",
                            cause=events.cause_of(source, on), subject=subject, source=source,
                            switches=self.bank.switches(i) if i is not None else None,
                            last_change=self._last_change.get(name, 0))

    def _input_edges(self):
        # an input edge is counted by the core: publish the inputs whose count moved
        bank = self.bank
        e = self._edges
        if e is None or e[0] is not bank:
            self._edges = (bank, [bank.edges(j) for j in range(len(self.inputs))])
            return
        counts = e[1]
        for j, name in enumerate(self.inputs):
            n = bank.edges(j)
            if n != counts[j]:
                counts[j] = n
                self.events.publish(events.INPUT, input=name, value=bank.input_value(j), edges=n)

    def _tell(self, name, on, source, subject):
        for fn in self.listeners:
            try:
                fn(name, on, source, subject)
            except Exception as e:  # a listener never undoes or blocks a switch
                _log.error("relay listener failed", error=e)

    def set(self, name, on, source="local", subject=None):
        i = self._i(name)
        before = self.bank.state()
        if on and self.pulse_ms[i]:
            r = self.bank.pulse(i, self.pulse_ms[i])
        else:
            r = self.bank.set(i, 1 if on else 0)
        return self._done(r, before, source, subject)

    def toggle(self, name, source="local", subject=None):
        i = self._i(name)
        if not self.bank.get(i) and self.pulse_ms[i]:
            return self.set(name, True, source, subject)
        before = self.bank.state()
        return self._done(self.bank.toggle(i), before, source, subject)

    def pulse(self, name, ms, source="local", subject=None):
        i = self._i(name)
        before = self.bank.state()
        return self._done(self.bank.pulse(i, ms), before, source, subject)

    def write(self, states, source="local", subject=None):
        # several relays in one register write: all or nothing
        mask = values = 0
        for n in states:
            b = 1 << self._i(n)
            mask |= b
            if states[n]:
                values |= b
        before = self.bank.state()
        return self._done(self.bank.write(mask, values), before, source, subject)

    # ---- persistence ----

    def _dirty(self):
        # only restore_policy "last" reads the states back: other policies cost no flash writes
        if self.cfg is not None and config_schema.get(self.cfg, "restore_policy") != "last":
            if self.on_change:
                self.on_change()
            return
        # coalesce: the write happens persist_min_ms after the previous one at the earliest
        if self._save_at is None:
            now = time.ticks_ms()
            last = self._last_write
            if last is None or time.ticks_diff(now, last) >= self.persist_min_ms:
                self._save_at = now
            else:
                self._save_at = time.ticks_add(last, self.persist_min_ms)
        if self.on_change:
            self.on_change()

    def _note_all(self):
        t = time.time()
        for n in self.names:
            self._last_change.setdefault(n, t)

    def flush(self, force=False):
        # write the states when they differ from the persisted copy
        states = self.states()
        if not force and states == self._saved:
            self._save_at = None
            return False
        doc = {"states": states, "desired_version": self.desired_version}
        try:
            atomic_file.write_json(self.path, doc)
        except OSError as e:
            self._save_at = time.ticks_add(time.ticks_ms(), self.persist_min_ms)  # retry later
            self._alarm("relays.persist", "cannot persist relay states: %s" % e)
            return False
        self._saved = states
        self._save_at = None
        self._last_write = time.ticks_ms()
        self.persist_writes += 1
        return True

    def set_desired_version(self, v):
        if v != self.desired_version:
            self.desired_version = v
            self.flush(force=True)

    def _alarm(self, key, msg):
        _log.error(msg, key=key)
        if self.alarm:
            self.alarm(key, msg)

    # ---- watchdog supervisor ----

    def slot(self, name, window_ms):
        for s in self._slots:
            if s[0] == name:
                s[1] = window_ms
                return
        s = [name, window_ms, self.bank.slot(name, window_ms)]
        self._slots.append(s)

    def checkin(self, name):
        for s in self._slots:
            if s[0] == name:
                self.bank.checkin(s[2])
                return
        raise ValueError("no slot %r" % name)

    def watchdog(self, timeout_ms):
        if not self._wdt_ms:
            self._wdt_ms = timeout_ms
            self.bank.watchdog(timeout_ms)

    def request_reset(self, cause):
        # reset through the supervisor: a new slot with a 1 ms window is overdue at the next
        # tick, and its name becomes the reset cause
        _log.error("reset requested", cause=cause)
        self.flush()
        if not self._wdt_ms:
            self.watchdog(relaygpio.WDT_MAX_MS)
        name = cause[:15]
        for s in self._slots:
            if s[0] == name:
                return
        try:
            self.slot(name, 1)
        except ValueError:  # no free slot: stop checking in; the loop slot runs out
            self._slots = []

    def _check_reset(self):
        if self._reset_done or not self.simulated:
            return
        n = self.bank.sim_resets()
        if n > self._resets_seen:
            self._resets_seen = n
            self._reset_done = True
            cause = self.bank.reset_cause() or "watchdog"
            _log.error("watchdog reset", cause=cause)
            if self.on_reset:
                self.on_reset(cause)

    # ---- the task ----

    async def run(self):
        while True:
            if not self.autotick:
                self.bank.tick()
            m = self.bank.state()
            if m != self._mask:  # changed by the core: pulse end, change-over, input
                self._done(0, self._mask, "core", None)
            if self.inputs:
                self._input_edges()
            if self._save_at is not None and \
                    time.ticks_diff(time.ticks_ms(), self._save_at) >= 0:
                self.flush()
            self._check_reset()
            await asyncio.sleep_ms(self.tick_ms)
