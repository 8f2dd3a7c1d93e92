# pyrelaygpio: the relaygpio API (docs/relaygpio.md) in pure Python, for boards
# without the C module and as the reference the C core is tested against.
# Same semantics as cmodules/relaygpio/relay_core.h; runs on MicroPython and CPython.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from time import ticks_us as _ticks_us
except ImportError:  # CPython: a monotonic µs clock in the same 30-bit ring
    import time as _time

    def _ticks_us():
        return (_time.monotonic_ns() // 1000) & 0x3FFFFFFF

try:
    import machine as _machine
    _Pin = _machine.Pin
except (ImportError, AttributeError):  # CPython, or the unix port (no Pin)
    _machine = None
    _Pin = None

IMPL = "python"
OK = const(0)
DEFERRED = const(1)
REJECTED_INTERVAL = const(2)
REJECTED_INTERLOCK = const(3)
REASONS = ("ok", "deferred", "interval", "interlock")
PULL_NONE = const(0)
PULL_UP = const(1)
PULL_DOWN = const(2)
MAX_RELAYS = const(32)
MAX_INPUTS = const(16)
MAX_GROUPS = const(8)
MAX_SLOTS = const(8)
WDT_MAX_MS = const(8388)
NUM_PINS = 64 if _Pin is None else 30

_MASK = const(0x3FFFFFFF)
_MAX_INTERVAL_MS = const(3600000)
_MAX_DEAD_MS = const(60000)
_MAX_DEBOUNCE_MS = const(60000)
_MAX_WINDOW_MS = const(3600000)
_MAX_PULSE_MS = 0xFFFFFFFF
_MIN_TICK_US = const(100)
_MAX_TICK_US = const(60000000)
# Counters of time since an event stop here: past every configurable limit.
_IVL_CAP = 3600000000
_DEAD_CAP = const(60000000)
_UNSET = const(-1)

# group fields
_G_MEMBERS = const(0)
_G_DEAD = const(1)
_G_OFF = const(2)        # µs since a member last turned off (capped)
_G_OFF_AT = const(3)     # time _G_OFF was measured at
_G_PENDING = const(4)    # relay waiting to turn on, or -1
_G_PULSE = const(5)      # pulse length (µs) of the pending turn-on, 0 = plain on
# input fields
_I_PIN = const(0)
_I_AL = const(1)
_I_TOGGLES = const(2)
_I_CAND = const(3)
_I_STABLE = const(4)
_I_DEB = const(5)
_I_FOR = const(6)        # µs the candidate level has been seen unchanged
_I_EDGES = const(7)
# slot fields
_S_NAME = const(0)
_S_WINDOW = const(1)
_S_SINCE = const(2)      # µs since the last check-in
_S_AT = const(3)         # time _S_SINCE was measured at, or _UNSET


def _diff(end, start):
    # signed difference in the 30-bit ring, as time.ticks_diff() / relay_time_diff
    d = (end - start) & _MASK
    return d - 0x40000000 if d & 0x20000000 else d


def _elapsed(now, at):
    d = _diff(now, at)
    return d if d > 0 else 0


def _int(x):
    if not isinstance(x, int):
        raise TypeError("can't convert %s to int" % type(x).__name__)
    return x


def _bits(mask):
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1


def _count(mask):
    n = 0
    while mask:
        mask &= mask - 1
        n += 1
    return n


def _in_range(what, v, lo, hi):
    _int(v)
    if not lo <= v <= hi:
        raise ValueError("%s %d ms out of range %d..%d" % (what, v, lo, hi))
    return v


class _SimHw:
    # Pin levels held in memory for tests to read and drive (as hw_sim.c).
    num_pins = 64

    def __init__(self):
        self.out = 0          # pins driven as outputs
        self.level = 0        # output levels
        self.inp = 0          # pins read as inputs
        self.up = 0           # inputs pulled up
        self.driven = 0       # pins driven by the test
        self.dlevel = 0       # levels of driven pins
        self.writes = 0
        self.wdt_on = False
        self.wdt_us = 0
        self.wdt_since = 0
        self.resets = 0
        self.cause = ""

    def init_outputs(self, pins, levels):
        self.level = (self.level & ~pins) | (levels & pins)
        self.out |= pins

    def write(self, mask, levels):
        self.level = (self.level & ~mask) | (levels & mask)
        self.writes += 1

    def init_input(self, pin, pull):
        b = 1 << pin
        self.inp |= b
        self.up = (self.up | b) if pull == PULL_UP else (self.up & ~b)

    def read(self, pin):
        b = 1 << pin
        if self.out & b:
            return 1 if self.level & b else 0
        if self.driven & b:
            return 1 if self.dlevel & b else 0
        return 1 if self.up & b else 0

    def drive(self, pin, level):
        b = 1 << pin
        if level is None:
            self.driven &= ~b
        else:
            self.driven |= b
            self.dlevel = (self.dlevel | b) if level else (self.dlevel & ~b)

    def release(self):
        self.out = self.inp = self.up = 0

    def wdt_start(self, ms):
        self.wdt_on = True
        self.wdt_us = ms * 1000
        self.wdt_since = 0

    def wdt_feed(self):
        self.wdt_since = 0

    def wdt_elapse(self, us):
        # True when the gap made the (simulated) watchdog reset the device
        if not self.wdt_on:
            return False
        self.wdt_since += us
        if self.wdt_since > self.wdt_us:
            self.wdt_reset("watchdog")
            return True
        return False

    def wdt_reset(self, cause):
        self.wdt_on = False
        self.resets += 1
        self.cause = cause

    def reset_cause(self):
        return self.cause or None


class _Rp2Hw:
    # Real pins through machine.Pin; one SIO register write when possible.
    num_pins = 30

    def __init__(self):
        import sys
        self.pins = {}
        self.wdt = None
        self.mem32 = None
        if sys.platform == "rp2" and hasattr(_machine, "mem32"):
            self.mem32 = _machine.mem32

    def init_outputs(self, pins, levels):
        for p in _bits(pins):
            # value first, then output: the pin never shows the wrong level
            self.pins[p] = _Pin(p, _Pin.OUT, value=(levels >> p) & 1)

    def write(self, mask, levels):
        m = self.mem32
        if m is not None:
            # SIO GPIO_OUT_XOR flips exactly the pins that change, in one write
            m[0xD000001C] = (m[0xD0000010] ^ levels) & mask
            return
        for p in _bits(mask):
            self.pins[p].value((levels >> p) & 1)

    def init_input(self, pin, pull):
        pl = _Pin.PULL_UP if pull == PULL_UP else (_Pin.PULL_DOWN if pull == PULL_DOWN else None)
        self.pins[pin] = _Pin(pin, _Pin.IN, pl)

    def read(self, pin):
        return self.pins[pin].value()

    def release(self):
        for p in self.pins:
            _Pin(p, _Pin.IN)
        self.pins = {}

    def wdt_start(self, ms):
        self.wdt = _machine.WDT(timeout=ms)

    def wdt_feed(self):
        self.wdt.feed()

    def wdt_elapse(self, us):
        return False  # the hardware counts by itself

    def wdt_reset(self, cause):
        _machine.reset()  # no RAM survives the reset to keep the cause in

    def reset_cause(self):
        return "watchdog" if _machine.reset_cause() == _machine.WDT_RESET else None


class Bank:
    def __init__(self, pins, active_low=0, on_at_boot=0, tick_us=1000, sim=None):
        if sim is None:
            sim = _Pin is None
        hw = _SimHw() if sim else _Rp2Hw()
        pins = list(pins)
        n = len(pins)
        if not 1 <= n <= MAX_RELAYS:
            raise ValueError("1 to 32 relays, got %d" % n)
        self._hw = hw
        self._n = n
        self._used = 0  # pins taken by relays and inputs
        for p in pins:
            self._take_pin(p)
        active_low = self._mask(active_low)
        on_at_boot = self._mask(on_at_boot)
        _int(tick_us)
        if not _MIN_TICK_US <= tick_us <= _MAX_TICK_US:
            raise ValueError("tick_us %d out of range %d..%d" % (tick_us, _MIN_TICK_US, _MAX_TICK_US))
        self._pins = pins
        self._al = active_low
        self._state = on_at_boot
        self._tick_us = tick_us
        self._ivl = [0] * n            # min interval, µs
        self._since = [_IVL_CAP] * n   # µs since the last switch (capped)
        self._since_at = [0] * n
        self._pulse = [0] * n          # pulse µs left, 0 = none
        self._pulse_at = [0] * n
        self._group = [-1] * n
        self._switches = [0] * n
        self._groups = []
        self._inputs = []
        self._slots = []
        self._last_tick = 0
        self._ticked = False
        self._wdt = False
        self._stalled = -1
        self._nsw = 0                  # total switches, for tick()'s change count
        self._ticks = self._late = self._deferred = 0
        self._rej_interval = self._rej_interlock = 0
        self._expired = self._input_edges = self._feeds = self._writes = 0
        pinmask = levels = 0
        for i in range(n):
            b = 1 << pins[i]
            pinmask |= b
            if ((on_at_boot ^ active_low) >> i) & 1:
                levels |= b
        hw.init_outputs(pinmask, levels)

    # --- argument checks ---

    def _live(self):
        if self._hw is None:
            raise ValueError("bank is deinitialised")

    def _take_pin(self, p):
        _int(p)
        top = self._hw.num_pins - 1
        if not 0 <= p <= top:
            raise ValueError("pin %d out of range 0..%d" % (p, top))
        if (self._used >> p) & 1:
            raise ValueError("duplicate pin %d" % p)
        self._used |= 1 << p

    def _mask(self, mask):
        _int(mask)
        if mask < 0:
            raise ValueError("negative mask %d" % mask)
        top = -1
        m = mask
        while m:
            m >>= 1
            top += 1
        if top >= self._n:
            raise ValueError("mask names relay %d of %d" % (top, self._n))
        return mask

    def _index(self, what, i, count):
        self._live()
        _int(i)
        if not 0 <= i < count:
            if count:
                raise IndexError("%s %d out of range 0..%d" % (what, i, count - 1))
            raise IndexError("%s %d out of range (no %ss)" % (what, i, what))
        return i

    def _relay(self, i):
        return self._index("relay", i, self._n)

    def _now(self, now):
        return _ticks_us() if now is None else _int(now) & _MASK

    # --- timers: a counter plus the time it was measured at, advanced by tick() ---

    def _in_interval(self, i, now):
        ivl = self._ivl[i]
        return ivl and self._since[i] + _elapsed(now, self._since_at[i]) < ivl

    def _dead(self, g, now):
        return g[_G_OFF] + _elapsed(now, g[_G_OFF_AT]) < g[_G_DEAD]

    # --- switching ---

    def _mark(self, i, on, now):
        # bookkeeping of one relay change (the register write is done by the caller)
        b = 1 << i
        if on:
            self._state |= b
        else:
            self._state &= ~b
            self._pulse[i] = 0
            gi = self._group[i]
            if gi >= 0:
                g = self._groups[gi]
                g[_G_OFF] = 0
                g[_G_OFF_AT] = now
        self._since[i] = 0
        self._since_at[i] = now
        self._switches[i] += 1
        self._nsw += 1

    def _out(self, pinmask, levels):
        self._hw.write(pinmask, levels)
        self._writes += 1

    def _switch(self, i, on, now):
        p = self._pins[i]
        level = (1 if on else 0) ^ ((self._al >> i) & 1)
        self._out(1 << p, level << p)
        self._mark(i, on, now)

    def _reject(self, code):
        if code == REJECTED_INTERVAL:
            self._rej_interval += 1
        else:
            self._rej_interlock += 1
        return code

    def _on(self, i, now, pulse_us):
        # turn relay i (now off) on, or defer it behind its interlock group
        if self._in_interval(i, now):
            return self._reject(REJECTED_INTERVAL)
        gi = self._group[i]
        if gi >= 0:
            g = self._groups[gi]
            other = self._state & g[_G_MEMBERS]
            if other:
                a = 0
                while not (other >> a) & 1:
                    a += 1
                if self._in_interval(a, now):
                    return self._reject(REJECTED_INTERVAL)
                self._switch(a, 0, now)
            if other or g[_G_PENDING] >= 0 or self._dead(g, now):
                g[_G_PENDING] = i
                g[_G_PULSE] = pulse_us
                self._deferred += 1
                return DEFERRED
        self._switch(i, 1, now)
        if pulse_us:
            self._pulse[i] = pulse_us
            self._pulse_at[i] = now
        return OK

    def _pending_group(self, i):
        gi = self._group[i]
        if gi >= 0 and self._groups[gi][_G_PENDING] == i:
            return self._groups[gi]
        return None

    def _set(self, i, on, now):
        if (self._state >> i) & 1:
            if on:
                self._pulse[i] = 0
                return OK
            if self._in_interval(i, now):
                return self._reject(REJECTED_INTERVAL)
            self._switch(i, 0, now)
            return OK
        if on:
            return self._on(i, now, 0)
        g = self._pending_group(i)
        if g:
            g[_G_PENDING] = -1
        return OK

    def _toggle(self, i, now):
        g = self._pending_group(i)
        if g:
            g[_G_PENDING] = -1
            return OK
        return self._set(i, not (self._state >> i) & 1, now)

    def set(self, i, on, now=None):
        i = self._relay(i)
        return self._set(i, on, self._now(now))

    def toggle(self, i, now=None):
        i = self._relay(i)
        return self._toggle(i, self._now(now))

    def pulse(self, i, ms, now=None):
        i = self._relay(i)
        _int(ms)
        if not 1 <= ms <= _MAX_PULSE_MS:
            raise ValueError("pulse %d ms out of range 1..%d" % (ms, _MAX_PULSE_MS))
        us = ms * 1000
        if us < self._ivl[i]:
            raise ValueError("pulse %d ms shorter than relay %d min interval %d ms"
                             % (ms, i, self._ivl[i] // 1000))
        now = self._now(now)
        if (self._state >> i) & 1:
            self._pulse[i] = us  # already on: restart the timer
            self._pulse_at[i] = now
            return OK
        return self._on(i, now, us)

    def write(self, mask, values, now=None):
        self._live()
        mask = self._mask(mask)
        values = _int(values) & mask
        now = self._now(now)
        cur = self._state
        changed = (cur ^ values) & mask
        for i in _bits(changed):
            if self._in_interval(i, now):
                return self._reject(REJECTED_INTERVAL)
        turned_on = changed & values
        for g in self._groups:
            m = g[_G_MEMBERS]
            new_on = turned_on & m
            if new_on and (_count(new_on) > 1 or cur & m or g[_G_PENDING] >= 0 or self._dead(g, now)):
                return self._reject(REJECTED_INTERLOCK)
        for i in _bits(mask):
            self._pulse[i] = 0
        for g in self._groups:
            # a pending relay written off is cancelled, as set(b, off) would
            if g[_G_PENDING] >= 0 and (mask >> g[_G_PENDING]) & 1:
                g[_G_PENDING] = -1
        if changed:
            pinmask = levels = 0
            for i in _bits(changed):
                b = 1 << self._pins[i]
                pinmask |= b
                if ((values ^ self._al) >> i) & 1:
                    levels |= b
            self._out(pinmask, levels)
            for i in _bits(changed):
                self._mark(i, (values >> i) & 1, now)
        return OK

    def get(self, i):
        i = self._relay(i)
        return bool((self._state >> i) & 1)

    def state(self):
        self._live()
        return self._state

    # --- configuration ---

    def min_interval(self, i, ms):
        i = self._relay(i)
        self._ivl[i] = _in_range("min interval", ms, 0, _MAX_INTERVAL_MS) * 1000

    def interlock(self, mask, dead_ms):
        self._live()
        if len(self._groups) >= MAX_GROUPS:
            raise ValueError("too many interlock groups (max %d)" % MAX_GROUPS)
        mask = self._mask(mask)
        if _count(mask) < 2:
            raise ValueError("interlock mask %d has fewer than 2 relays" % mask)
        for i in _bits(mask):
            if self._group[i] >= 0:
                raise ValueError("relay %d already in interlock group %d" % (i, self._group[i]))
        on = _count(self._state & mask)
        if on > 1:
            raise ValueError("interlock mask %d has %d relays on" % (mask, on))
        dead = _in_range("dead time", dead_ms, 0, _MAX_DEAD_MS)
        gi = len(self._groups)
        for i in _bits(mask):
            self._group[i] = gi
        self._groups.append([mask, dead * 1000, _DEAD_CAP, 0, -1, 0])
        return gi

    def input(self, pin, debounce_ms=20, active_low=True, pull=PULL_UP, toggles=-1):
        self._live()
        if len(self._inputs) >= MAX_INPUTS:
            raise ValueError("too many inputs (max %d)" % MAX_INPUTS)
        used = self._used
        self._take_pin(pin)
        try:
            deb = _in_range("debounce", debounce_ms, 0, _MAX_DEBOUNCE_MS)
            _int(pull)
            if not PULL_NONE <= pull <= PULL_DOWN:
                raise ValueError("pull %d out of range 0..2" % pull)
            _int(toggles)
            if not -1 <= toggles < self._n:
                raise IndexError("relay %d out of range 0..%d" % (toggles, self._n - 1))
        except Exception:
            self._used = used
            raise
        al = 1 if active_low else 0
        self._hw.init_input(pin, pull)
        level = self._hw.read(pin) ^ al
        self._inputs.append([pin, al, toggles, level, level, deb * 1000, 0, 0])
        return len(self._inputs) - 1

    def slot(self, name, window_ms):
        self._live()
        if len(self._slots) >= MAX_SLOTS:
            raise ValueError("too many slots (max %d)" % MAX_SLOTS)
        if not isinstance(name, str):
            raise TypeError("slot name must be str")
        if not 1 <= len(name.encode()) <= 15:
            raise ValueError("slot name '%s' not 1..15 characters" % name)
        for s in self._slots:
            if s[_S_NAME] == name:
                raise ValueError("duplicate slot name '%s'" % name)
        w = _in_range("slot window", window_ms, 1, _MAX_WINDOW_MS)
        self._slots.append([name, w * 1000, 0, _UNSET])
        return len(self._slots) - 1

    def watchdog(self, timeout_ms):
        self._live()
        _in_range("watchdog timeout", timeout_ms, 1, WDT_MAX_MS)
        if self._wdt:
            raise ValueError("watchdog already started")
        for s in self._slots:
            s[_S_SINCE] = 0
            s[_S_AT] = _UNSET  # windows start at the next tick
        self._stalled = -1
        self._hw.wdt_start(timeout_ms)
        self._wdt = True

    def checkin(self, slot, now=None):
        s = self._slots[self._index("slot", slot, len(self._slots))]
        s[_S_SINCE] = 0
        s[_S_AT] = self._now(now)

    # --- periodic work ---

    def tick(self, now=None):
        self._live()
        now = self._now(now)
        e = 0
        if self._ticked:
            e = _elapsed(now, self._last_tick)
            if e > 2 * self._tick_us:
                self._late += 1
        self._ticked = True
        self._last_tick = now
        self._ticks += 1
        nsw = self._nsw
        # 1. watchdog elapse
        if self._wdt and self._hw.wdt_elapse(e):
            self._wdt = False
        # keep every timer measured from now, so none spans a ring wrap
        for i in range(self._n):
            s = self._since[i]
            if s < _IVL_CAP:
                s += _elapsed(now, self._since_at[i])
                self._since[i] = s if s < _IVL_CAP else _IVL_CAP
                self._since_at[i] = now
        for g in self._groups:
            s = g[_G_OFF]
            if s < _DEAD_CAP:
                s += _elapsed(now, g[_G_OFF_AT])
                g[_G_OFF] = s if s < _DEAD_CAP else _DEAD_CAP
                g[_G_OFF_AT] = now
        # 2. pulse expiry
        for i in range(self._n):
            left = self._pulse[i]
            if left:
                left -= _elapsed(now, self._pulse_at[i])
                if left > 0:
                    self._pulse[i] = left
                    self._pulse_at[i] = now
                else:
                    self._switch(i, 0, now)
                    self._expired += 1
        # 3. deferred change-overs, not checked against the interval again
        for g in self._groups:
            p = g[_G_PENDING]
            if p >= 0 and not self._dead(g, now):
                g[_G_PENDING] = -1
                self._switch(p, 1, now)
                if g[_G_PULSE]:
                    self._pulse[p] = g[_G_PULSE]
                    self._pulse_at[p] = now
        # 4. inputs: sample and debounce
        for j in self._inputs:
            level = self._hw.read(j[_I_PIN]) ^ j[_I_AL]
            if level != j[_I_CAND]:
                j[_I_CAND] = level
                j[_I_FOR] = 0
            elif level != j[_I_STABLE]:
                j[_I_FOR] += e
            if level != j[_I_STABLE] and j[_I_FOR] >= j[_I_DEB]:
                j[_I_STABLE] = level
                j[_I_EDGES] += 1
                self._input_edges += 1
                if level and j[_I_TOGGLES] >= 0:
                    self._toggle(j[_I_TOGGLES], now)
        # 5. watchdog supervision
        if self._wdt:
            for k in range(len(self._slots)):
                s = self._slots[k]
                if s[_S_AT] == _UNSET:
                    s[_S_AT] = now
                else:
                    s[_S_SINCE] += _elapsed(now, s[_S_AT])
                    s[_S_AT] = now
                if s[_S_SINCE] > s[_S_WINDOW]:
                    self._stalled = k
                    self._wdt = False
                    self._hw.wdt_reset(s[_S_NAME])
                    break
            if self._wdt:
                self._hw.wdt_feed()
                self._feeds += 1
        return self._nsw - nsw

    def autotick(self, period_us=1000):
        self._live()
        return False  # no hardware timer from Python: the caller ticks

    # --- reading ---

    def input_value(self, j):
        j = self._index("input", j, len(self._inputs))
        return bool(self._inputs[j][_I_STABLE])

    def edges(self, j):
        j = self._index("input", j, len(self._inputs))
        return self._inputs[j][_I_EDGES]

    def switches(self, i):
        return self._switches[self._relay(i)]

    def stalled(self):
        self._live()
        return None if self._stalled < 0 else self._slots[self._stalled][_S_NAME]

    def reset_cause(self):
        self._live()
        return self._hw.reset_cause()

    def metrics(self):
        self._live()
        return {
            "ticks": self._ticks,
            "late_ticks": self._late,
            "deferred": self._deferred,
            "rejected_interval": self._rej_interval,
            "rejected_interlock": self._rej_interlock,
            "pulses_expired": self._expired,
            "input_edges": self._input_edges,
            "wdt_feeds": self._feeds,
            "writes": self._writes,
            "switches": list(self._switches),
            "edges": [j[_I_EDGES] for j in self._inputs],
        }

    # --- simulated backend only ---

    def _sim(self):
        self._live()
        if not isinstance(self._hw, _SimHw):
            raise ValueError("bank is not simulated")
        return self._hw

    def _sim_pin(self, pin):
        hw = self._sim()
        _int(pin)
        if not 0 <= pin < hw.num_pins:
            raise ValueError("pin %d out of range 0..%d" % (pin, hw.num_pins - 1))
        return hw

    def sim_level(self, pin):
        return self._sim_pin(pin).read(pin)

    def sim_drive(self, pin, level):
        hw = self._sim_pin(pin)
        if level is not None and _int(level) not in (0, 1):
            raise ValueError("level %d not 0, 1 or None" % level)
        hw.drive(pin, level)

    def sim_writes(self):
        return self._sim().writes

    def sim_resets(self):
        return self._sim().resets

    # --- end ---

    def deinit(self):
        self._live()
        pinmask = levels = 0
        for i in range(self._n):
            b = 1 << self._pins[i]
            pinmask |= b
            if (self._al >> i) & 1:
                levels |= b
        self._hw.write(pinmask, levels)  # every relay at its off level
        self._hw.release()
        self._hw = None
