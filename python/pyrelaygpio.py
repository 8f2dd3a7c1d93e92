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
METRICS = ("ticks", "late_ticks", "deferred", "rejected_interval", "rejected_interlock",
           "pulses_expired", "input_edges", "wdt_feeds", "writes")
PULL_NONE = const(0)
PULL_UP = const(1)
PULL_DOWN = const(2)
MAX_RELAYS = const(32)
MAX_INPUTS = const(16)
MAX_GROUPS = const(8)
MAX_SLOTS = const(8)
MAX_SLOT_NAME = const(15)
NUM_PINS = 64 if _Pin is None else 30
# the limits of cmodules/relaygpio/relay_limits.h (tests/mpy/test_relaygpio_limits.py)
WDT_MAX_MS = const(8388)
MIN_INTERVAL_MAX_MS = const(3600000)
DEAD_TIME_MAX_MS = const(3600000)
SLOT_WINDOW_MAX_MS = const(3600000)
DEBOUNCE_MAX_MS = const(60000)
PULSE_MAX_MS = const(86400000)
TICK_MIN_US = const(100)
AUTOTICK_MIN_US = const(100)
AUTOTICK_MAX_US = const(1000000)

_MASK = const(0x3FFFFFFF)
_U32 = 0xFFFFFFFF

# group fields
_G_MEMBERS = const(0)
_G_DEAD = const(1)
_G_LEFT = const(2)       # dead time still to run, as of the last tick
_G_PENDING = const(3)    # relay waiting to turn on, or -1
_G_PULSE = const(4)      # pulse µs of the pending turn-on, 0 = a plain on
# input fields
_I_PIN = const(0)
_I_AL = const(1)
_I_TOGGLES = const(2)
_I_CAND = const(3)       # last sampled logical level
_I_STABLE = const(4)     # debounced logical level
_I_DEB = const(5)
_I_FOR = const(6)        # µs the candidate has been seen unchanged
_I_EDGES = const(7)
# slot fields
_S_NAME = const(0)
_S_WINDOW = const(1)
_S_SINCE = const(2)      # µs since the last check-in, as of the last tick
_S_LAG = const(3)        # the check-in came this long after the last tick


def _diff(end, start):
    # signed difference in the 30-bit ring, as time.ticks_diff() / relay_time_diff
    d = (end - start) & _MASK
    return d - 0x40000000 if d & 0x20000000 else d


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


def _ms(what, v, lo, hi):
    _int(v)
    if not lo <= v <= hi:
        raise ValueError("%s %d ms out of range %d..%d" % (what, v, lo, hi))
    return v


def _u32(what, v):
    # a relay mask: 32 bits, negative ones as two's complement (-1 = all 32)
    if not -0x80000000 <= _int(v) <= _U32:
        raise ValueError("%s %d wider than 32 bits" % (what, v))
    return v & _U32


def _sat(v):
    return v if v < _U32 else _U32


# The relay state kept across a reset without a flash write, packed as
# cmodules/relaygpio/hw_keep.h does: [state, pulsing, check] in watchdog
# scratch[5..7] on the RP2040, in _sim_scratch (one set per process) simulated.
_KEEP_MAGIC = 0x4B455031
_KEEP_SCRATCH = 0x40058020  # WATCHDOG scratch[5]
_sim_scratch = [0, 0, 0]


def sim_scratch(words=None):
    # the simulated scratch[5..7]: read, or load (across a simulated process restart)
    if words is None:
        return tuple(_sim_scratch)
    words = list(words)
    if len(words) != 3:
        raise ValueError("sim_scratch needs 3 words")
    words = [_u32("scratch word", w) for w in words]
    _sim_scratch[:] = words


def _keep_hash(h, word):
    # FNV-1a over the word's four bytes, little-endian (the layout, once per bank)
    for k in range(4):
        h = ((h ^ ((word >> (8 * k)) & 0xFF)) * 16777619) & _U32
    return h


def _keep_seed(pins, active_low):
    h = _keep_hash(_keep_hash(2166136261, _KEEP_MAGIC), len(pins))
    for p in pins:
        h = _keep_hash(h, p)
    return _keep_hash(h, active_low)


def _keep_check(seed, state, pulsing):
    # as hw_keep.h: one multiply by the odd seed, then an xorshift
    h = ((seed ^ state ^ (((pulsing << 16) | (pulsing >> 16)) & _U32)) * (seed | 1)) & _U32
    h ^= h >> 16
    return h or 1


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

    def keep_read(self):
        return list(_sim_scratch)

    def keep_write(self, i, word):
        _sim_scratch[i] = word


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

    def keep_read(self):
        m = self.mem32
        if m is None:
            return [0, 0, 0]  # no scratch registers: always a cold start
        return [m[_KEEP_SCRATCH + 4 * i] & _U32 for i in range(3)]

    def keep_write(self, i, word):
        if self.mem32 is not None:
            self.mem32[_KEEP_SCRATCH + 4 * i] = word


class Bank:
    # Mirrors relay_core.c field for field: every countdown holds its value as
    # of the last tick, and a timer started between ticks is credited with the
    # time since that tick ("lag"). Before the first tick there is no time base.

    def __init__(self, pins, active_low=0, on_at_boot=0, tick_us=1000, sim=None):
        if sim is None:
            sim = _Pin is None
        hw = _SimHw() if sim else _Rp2Hw()
        pins = list(pins)
        n = len(pins)
        active_low = _u32("active_low", active_low)
        on_at_boot = _u32("on_at_boot", on_at_boot)
        if not 1 <= n <= MAX_RELAYS:
            raise ValueError("1 to 32 relays, got %d" % n)
        self._hw = hw
        self._n = n
        self._used = 0  # pins taken by relays and inputs
        for p in pins:
            self._check_pin(p)
            if (self._used >> p) & 1:
                raise ValueError("duplicate pin %d" % p)
            self._used |= 1 << p
        if _int(tick_us) < TICK_MIN_US:
            raise ValueError("tick_us %d below %d" % (tick_us, TICK_MIN_US))
        active_low = self._mask(active_low)
        on_at_boot = self._mask(on_at_boot)
        self._pins = pins
        self._al = active_low
        # a watchdog or soft reset kept a state for this layout: it replaces on_at_boot
        self._seed = _keep_seed(pins, active_low)
        w = hw.keep_read()
        self._restored = None
        if w[2] == _keep_check(self._seed, w[0], w[1]):
            # relays that were in a pulse come back off: the time left is unknown
            self._restored = on_at_boot = w[0] & ~w[1] & ((1 << n) - 1)
        self._state = on_at_boot
        self._tick_us = tick_us
        self._ivl = [0] * n          # min interval, µs
        self._clear = -1             # mask: min interval known to have run (booting is no switch)
        self._last = [0] * n         # time of the last switch
        self._left = [0] * n         # min interval still to run, as of the last tick
        self._pulse = [0] * n        # pulse µs left as of the last tick, 0 = none
        self._group = [-1] * n
        self._switches = [0] * n
        self._groups = []
        self._inputs = []
        self._slots = []
        self._last_tick = 0
        self._ticked = False
        self._wdt_started = self._wdt = False
        self._stalled = -1
        self._changes = 0            # relays flipped, for tick()'s return value
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
        self._keep()

    def __len__(self):
        self._live()
        return self._n

    # --- argument checks ---

    def _live(self):
        if self._hw is None:
            raise ValueError("bank is deinitialised")

    def _check_pin(self, p):
        top = self._hw.num_pins - 1
        if not 0 <= _int(p) <= top:
            raise ValueError("pin %d out of range 0..%d" % (p, top))

    def _mask(self, mask):
        mask = _u32("mask", mask)
        if mask >> self._n:
            top = 31
            while not (mask >> top) & 1:
                top -= 1
            raise ValueError("mask names relay %d of %d" % (top, self._n))
        return mask

    def _index(self, what, i, count):
        self._live()
        if not 0 <= _int(i) < count:
            if count:
                raise IndexError("%s %d out of range 0..%d" % (what, i, count - 1))
            raise IndexError("%s %d out of range (no %ss)" % (what, i, what))
        return i

    def _relay(self, i):
        return self._index("relay", i, self._n)

    def _now(self, now):
        return _ticks_us() if now is None else _int(now) & _MASK

    # --- time ---

    def _lag(self, now):
        # time from the last tick to now (0 before the first tick: no time base)
        if not self._ticked:
            return 0
        d = _diff(now, self._last_tick)
        return d if d > 0 else 0

    def _interval_ok(self, i, now):
        ivl = self._ivl[i]
        if (self._clear >> i) & 1 or not ivl:
            return True
        d = _diff(now, self._last[i])
        if d >= ivl:
            return True
        # intervals beyond the ring's half are only seen by the countdown
        return self._ticked and self._left[i] <= self._lag(now)

    # --- switching ---

    def _keep(self):
        # the state and the relays in a pulse, kept across a reset; after every change
        pulsing = 0
        for i in range(self._n):
            if self._pulse[i]:
                pulsing |= 1 << i
        words = (self._state, pulsing, _keep_check(self._seed, self._state, pulsing))
        for i in range(3):
            self._hw.keep_write(i, words[i])

    def _apply(self, change, now):
        # flip the relays in change with one register write and book the switches
        if not change:
            return
        lag = self._lag(now)
        self._state ^= change
        self._clear &= ~change
        pinmask = levels = 0
        for i in _bits(change):
            on = (self._state >> i) & 1
            b = 1 << self._pins[i]
            pinmask |= b
            if on ^ ((self._al >> i) & 1):
                levels |= b
            self._switches[i] += 1
            self._changes += 1
            self._last[i] = now
            self._left[i] = _sat(self._ivl[i] + lag)
            if not on:
                self._pulse[i] = 0
                gi = self._group[i]
                if gi >= 0:
                    g = self._groups[gi]
                    g[_G_LEFT] = _sat(g[_G_DEAD] + lag)
        self._hw.write(pinmask, levels)
        self._writes += 1
        self._keep()

    def _reject(self, code):
        if code == REJECTED_INTERVAL:
            self._rej_interval += 1
        else:
            self._rej_interlock += 1
        return code

    def _do_set(self, i, on, pulse_us, now):
        # set(), pulse() (pulse_us > 0) and the on/off half of toggle()
        me = 1 << i
        gi = self._group[i]
        g = self._groups[gi] if gi >= 0 else None
        lag = self._lag(now)
        if not on:
            if g and g[_G_PENDING] == i:
                g[_G_PENDING] = -1
                return OK
            if not self._state & me:
                return OK
            if not self._interval_ok(i, now):
                return self._reject(REJECTED_INTERVAL)
            self._apply(me, now)
            return OK
        if self._state & me:
            # no switch: set() ends a running pulse, pulse() restarts it
            self._pulse[i] = pulse_us + lag if pulse_us else 0
            self._keep()
            return OK
        if not self._interval_ok(i, now):
            return self._reject(REJECTED_INTERVAL)
        if g:
            others = self._state & g[_G_MEMBERS]
            for j in _bits(others):
                if not self._interval_ok(j, now):
                    return self._reject(REJECTED_INTERVAL)
            # change-over: the other member goes off now, this one after the dead time
            self._apply(others, now)
            if others or g[_G_LEFT] > lag:
                g[_G_PENDING] = i
                g[_G_PULSE] = pulse_us
                self._deferred += 1
                return DEFERRED
            g[_G_PENDING] = -1  # a newer request replaces the pending one
        self._pulse[i] = pulse_us + lag if pulse_us else 0  # before _apply() keeps it
        self._apply(me, now)
        return OK

    def _do_toggle(self, i, now):
        gi = self._group[i]
        if gi >= 0 and self._groups[gi][_G_PENDING] == i:
            self._groups[gi][_G_PENDING] = -1
            return OK
        return self._do_set(i, not (self._state >> i) & 1, 0, now)

    def set(self, i, on, now=None):
        i = self._relay(i)
        return self._do_set(i, on, 0, self._now(now))

    def toggle(self, i, now=None):
        i = self._relay(i)
        return self._do_toggle(i, self._now(now))

    def pulse(self, i, ms, now=None):
        i = self._relay(i)
        if not 1 <= _int(ms) <= PULSE_MAX_MS:
            raise ValueError("pulse %d ms out of range 1..%d" % (ms, PULSE_MAX_MS))
        min_ms = self._ivl[i] // 1000
        if ms < min_ms:
            raise ValueError("pulse %d ms shorter than relay %d min interval %d ms" % (ms, i, min_ms))
        return self._do_set(i, True, ms * 1000, self._now(now))

    def write(self, mask, values, now=None):
        self._live()
        mask = self._mask(mask)
        values = _u32("values", values) & mask
        now = self._now(now)
        state = self._state
        change = (state ^ values) & mask
        turn_on = change & values
        after = (state & ~mask) | values
        lag = self._lag(now)
        # validate everything first: all or nothing
        for i in _bits(change):
            if not self._interval_ok(i, now):
                return self._reject(REJECTED_INTERVAL)
        for g in self._groups:
            m = g[_G_MEMBERS]
            if _count(after & m) > 1 or (turn_on & m and (state & m or g[_G_LEFT] > lag)):
                # a write is never deferred: no change-over, no turn-on in the dead time
                return self._reject(REJECTED_INTERLOCK)
        for i in _bits(mask):
            self._pulse[i] = 0  # written like set(): pulses end
        for g in self._groups:
            p = g[_G_PENDING]
            if p >= 0 and ((mask >> p) & 1 or turn_on & g[_G_MEMBERS]):
                g[_G_PENDING] = -1
        self._apply(change, now)
        if not change:
            self._keep()  # a write that only ended pulses
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
        self._ivl[i] = _ms("min interval", ms, 0, MIN_INTERVAL_MAX_MS) * 1000
        self._clear |= 1 << i  # the new interval counts from the next switch
        self._left[i] = 0

    def interlock(self, mask, dead_ms):
        self._live()
        mask = self._mask(mask)
        dead = _ms("dead time", dead_ms, 0, DEAD_TIME_MAX_MS)
        if _count(mask) < 2:
            raise ValueError("interlock mask %d has fewer than 2 relays" % mask)
        for i in _bits(mask):
            if self._group[i] >= 0:
                raise ValueError("relay %d already in interlock group %d" % (i, self._group[i]))
        if len(self._groups) >= MAX_GROUPS:
            raise ValueError("too many interlock groups (max %d)" % MAX_GROUPS)
        on = _count(self._state & mask)
        if on > 1:
            raise ValueError("interlock mask %d has %d relays on" % (mask, on))
        gi = len(self._groups)
        for i in _bits(mask):
            self._group[i] = gi
        self._groups.append([mask, dead * 1000, 0, -1, 0])
        return gi

    def input(self, pin, debounce_ms=20, active_low=True, pull=PULL_UP, toggles=-1):
        self._live()
        self._check_pin(pin)
        deb = _ms("debounce", debounce_ms, 0, DEBOUNCE_MAX_MS)
        if not PULL_NONE <= _int(pull) <= PULL_DOWN:
            raise ValueError("pull %d not PULL_NONE, PULL_UP or PULL_DOWN" % pull)
        if not -1 <= _int(toggles) < self._n:
            raise IndexError("relay %d out of range 0..%d" % (toggles, self._n - 1))
        if len(self._inputs) >= MAX_INPUTS:
            raise ValueError("too many inputs (max %d)" % MAX_INPUTS)
        if (self._used >> pin) & 1:
            raise ValueError("duplicate pin %d" % pin)
        self._used |= 1 << pin
        al = 1 if active_low else 0
        self._hw.init_input(pin, pull)
        level = self._hw.read(pin) ^ al
        self._inputs.append([pin, al, toggles, level, level, deb * 1000, 0, 0])
        return len(self._inputs) - 1

    def slot(self, name, window_ms):
        self._live()
        if not isinstance(name, str):
            raise TypeError("can't convert %s to str" % type(name).__name__)
        if not 1 <= len(name.encode()) <= MAX_SLOT_NAME:
            raise ValueError("slot name '%s' must be 1..%d characters" % (name, MAX_SLOT_NAME))
        w = _ms("slot window", window_ms, 1, SLOT_WINDOW_MAX_MS)
        if len(self._slots) >= MAX_SLOTS:
            raise ValueError("too many slots (max %d)" % MAX_SLOTS)
        for s in self._slots:
            if s[_S_NAME] == name:
                raise ValueError("duplicate slot name '%s'" % name)
        self._slots.append([name, w * 1000, 0, 0])
        return len(self._slots) - 1

    def watchdog(self, timeout_ms):
        self._live()
        _ms("watchdog timeout", timeout_ms, 1, WDT_MAX_MS)
        if self._wdt_started:
            raise ValueError("watchdog already started")
        for s in self._slots:
            # supervision starts fresh: time before it does not count against a slot
            s[_S_SINCE] = s[_S_LAG] = 0
        self._wdt_started = self._wdt = True
        self._hw.wdt_start(timeout_ms)

    def checkin(self, slot, now=None):
        s = self._slots[self._index("slot", slot, len(self._slots))]
        s[_S_SINCE] = 0
        s[_S_LAG] = self._lag(self._now(now))

    # --- periodic work ---

    def tick(self, now=None):
        self._live()
        now = self._now(now)
        elapsed = 0
        if self._ticked:  # the first tick only sets the time base
            elapsed = self._lag(now)
            if elapsed > 2 * self._tick_us:
                self._late += 1
        self._last_tick = now
        self._ticked = True
        self._ticks += 1
        changes = self._changes
        # 1. watchdog elapse
        if self._hw.wdt_elapse(elapsed):
            self._wdt = False  # the (simulated) device is rebooting
        # 2. countdowns, then pulse expiry
        expired = 0
        for i in range(self._n):
            b = 1 << i
            if not self._clear & b:
                left = self._left[i] - elapsed
                self._left[i] = left if left > 0 else 0
                if left <= 0:
                    self._clear |= b
            p = self._pulse[i]
            if p:
                p -= elapsed
                self._pulse[i] = p if p > 0 else 0
                if p <= 0:
                    expired |= b
        for g in self._groups:
            left = g[_G_LEFT] - elapsed
            g[_G_LEFT] = left if left > 0 else 0
        expired &= self._state
        self._apply(expired, now)
        self._expired += _count(expired)
        # 3. deferred change-overs whose dead time has run (not re-checked for interval)
        turn_on = 0
        for g in self._groups:
            p = g[_G_PENDING]
            if p >= 0 and not g[_G_LEFT] and not self._state & g[_G_MEMBERS]:
                self._pulse[p] = g[_G_PULSE]
                turn_on |= 1 << p
                g[_G_PENDING] = -1
        self._apply(turn_on, now)
        # 4. inputs: a level counts once seen unchanged for the debounce time
        for j in self._inputs:
            level = self._hw.read(j[_I_PIN]) ^ j[_I_AL]
            if level != j[_I_CAND]:
                j[_I_CAND] = level
                j[_I_FOR] = 0
            elif level != j[_I_STABLE]:
                j[_I_FOR] += elapsed  # only counted while it matters: stays a small int
            if level != j[_I_STABLE] and j[_I_FOR] >= j[_I_DEB]:
                j[_I_STABLE] = level
                j[_I_EDGES] += 1
                self._input_edges += 1
                if level and j[_I_TOGGLES] >= 0:
                    self._do_toggle(j[_I_TOGGLES], now)
        # 5. watchdog supervision: feed only while every slot is within its window
        for s in self._slots:
            e = elapsed - s[_S_LAG]
            if e > 0 and s[_S_SINCE] <= s[_S_WINDOW]:  # past the window it only stays past
                s[_S_SINCE] += e
            s[_S_LAG] = 0
        if self._wdt:
            for k in range(len(self._slots)):
                s = self._slots[k]
                if s[_S_SINCE] > s[_S_WINDOW]:
                    self._stalled = k
                    self._wdt = False
                    self._hw.wdt_reset(s[_S_NAME])  # no return on hardware
                    break
            if self._wdt:
                self._hw.wdt_feed()
                self._feeds += 1
        return self._changes - changes

    def autotick(self, period_us):
        self._live()
        if not AUTOTICK_MIN_US <= _int(period_us) <= AUTOTICK_MAX_US:
            raise ValueError("autotick period %d us out of range %d..%d"
                             % (period_us, AUTOTICK_MIN_US, AUTOTICK_MAX_US))
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

    def restored(self):
        # the state applied at creation, kept across a watchdog or soft reset; None when cold
        self._live()
        return self._restored

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

    def metrics_into(self, buf):
        # the counters in METRICS order, switches per relay, edges per input
        self._live()
        n = len(METRICS) + self._n + len(self._inputs)
        if len(buf) < n:
            raise ValueError("metrics buffer holds %d values, needs %d" % (len(buf), n))
        k = 0
        for v in (self._ticks, self._late, self._deferred, self._rej_interval, self._rej_interlock,
                  self._expired, self._input_edges, self._feeds, self._writes):
            buf[k] = v
            k += 1
        for v in self._switches:
            buf[k] = v
            k += 1
        for j in self._inputs:
            buf[k] = j[_I_EDGES]
            k += 1
        return n

    # --- simulated backend only ---

    def _sim(self, pin=None):
        self._live()
        hw = self._hw
        if not isinstance(hw, _SimHw):
            raise ValueError("bank is not simulated")
        if pin is not None:
            self._check_pin(pin)
        return hw

    def sim_level(self, pin):
        return self._sim(pin).read(pin)

    def sim_drive(self, pin, level):
        self._sim(pin).drive(pin, level)

    def sim_writes(self):
        return self._sim().writes

    def sim_resets(self):
        return self._sim().resets

    # --- end ---

    def deinit(self):
        if self._hw is None:
            return  # a second deinit() is harmless, as for machine peripherals
        self._groups = []  # nothing pending may turn on
        pinmask = levels = 0
        for i in range(self._n):
            b = 1 << self._pins[i]
            pinmask |= b
            if (self._al >> i) & 1:
                levels |= b
        self._hw.write(pinmask, levels)  # every relay at its off level
        w = self._hw.keep_read()
        if w[2] == _keep_check(self._seed, w[0], w[1]):
            self._hw.keep_write(2, 0)  # a released bank keeps nothing
        self._hw.release()
        self._hw = None
