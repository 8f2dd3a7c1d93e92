# Every bad argument raises the exception type and exact message that
# docs/relaygpio.md ("Errors") gives, and changes nothing.
import impl
from check import eq, raises

rg = impl.rg
PINS = [2, 3, 4, 5]
B = rg.Bank
VE = ValueError
IE = IndexError


def test_bank_errors():
    raises(VE, "1 to 32 relays, got 0", B, [])
    raises(VE, "1 to 32 relays, got 33", B, list(range(33)))
    raises(VE, "pin 64 out of range 0..63", B, [1, 64])
    raises(VE, "pin -1 out of range 0..63", B, [-1])
    raises(VE, "duplicate pin 5", B, [5, 6, 5])
    raises(VE, "mask names relay 9 of 8", B, list(range(8)), 0x300)
    raises(VE, "mask names relay 4 of 4", B, PINS, 0, 0b10001)
    raises(VE, "mask names relay 31 of 4", B, PINS, -1)  # masks are taken as uint32
    raises(VE, "tick_us 99 below 100", B, PINS, 0, 0, 99)
    raises(VE, "tick_us 99 below 100", B, [1, 2], 0xFF, 0, 99)  # before the masks
    raises(VE, "duplicate pin 1", B, [1, 1], 0xFF, 0, 99)
    B(list(range(32)), 0xFFFFFFFF, -1, 100)  # the limits themselves are fine


def test_index_errors():
    b = B(PINS)
    raises(IE, "relay 4 out of range 0..3", b.set, 4, 1, 0)
    raises(IE, "relay -1 out of range 0..3", b.toggle, -1, 0)
    raises(IE, "relay 7 out of range 0..3", b.get, 7)
    raises(IE, "relay 4 out of range 0..3", b.pulse, 4, 10, 0)
    raises(IE, "relay 4 out of range 0..3", b.min_interval, 4, 10)
    raises(IE, "relay 4 out of range 0..3", b.switches, 4)
    raises(IE, "input 0 out of range (no inputs)", b.input_value, 0)
    raises(IE, "input 0 out of range (no inputs)", b.edges, 0)
    raises(IE, "slot 0 out of range (no slots)", b.checkin, 0, 0)
    b.input(10)
    b.slot("a", 10)
    raises(IE, "input 1 out of range 0..0", b.input_value, 1)
    raises(IE, "input -1 out of range 0..0", b.edges, -1)
    raises(IE, "slot 1 out of range 0..0", b.checkin, 1, 0)
    eq(b.state(), 0, "nothing changed")


def test_write_errors():
    b = B(PINS)
    raises(VE, "mask names relay 4 of 4", b.write, 0b10000, 0, 0)
    raises(VE, "mask names relay 31 of 4", b.write, -2, 0, 0)
    eq(b.sim_writes(), 0, "no write")


def test_interval_and_pulse_errors():
    b = B(PINS)
    raises(VE, "min interval 3600001 ms out of range 0..3600000", b.min_interval, 0, 3600001)
    raises(VE, "min interval -1 ms out of range 0..3600000", b.min_interval, 0, -1)
    b.min_interval(0, 10)
    raises(VE, "pulse 5 ms shorter than relay 0 min interval 10 ms", b.pulse, 0, 5, 0)
    raises(VE, "pulse 0 ms out of range 1..86400000", b.pulse, 1, 0, 0)
    raises(VE, "pulse 86400001 ms out of range 1..86400000", b.pulse, 1, 86400001, 0)
    raises(VE, "pulse 4294967296 ms out of range 1..86400000", b.pulse, 1, 4294967296, 0)
    eq((b.state(), b.sim_writes()), (0, 0), "nothing changed")


def test_interlock_errors():
    # checked in this order: mask, dead time, size, membership, count, relays on
    b = B(PINS, on_at_boot=0b1100)
    raises(VE, "mask names relay 4 of 4", b.interlock, 0b10001, -1)
    raises(VE, "dead time 3600001 ms out of range 0..3600000", b.interlock, 0b0010, 3600001)
    raises(VE, "dead time -1 ms out of range 0..3600000", b.interlock, 0b0011, -1)
    raises(VE, "interlock mask 2 has fewer than 2 relays", b.interlock, 0b0010, 10)
    raises(VE, "interlock mask 12 has 2 relays on", b.interlock, 0b1100, 10)
    b.interlock(0b0011, 10)
    raises(VE, "relay 1 already in interlock group 0", b.interlock, 0b1110, 10)
    b8 = B(list(range(18)))
    for g in range(8):
        b8.interlock(3 << (2 * g), 0)
    raises(VE, "relay 0 already in interlock group 0", b8.interlock, 0b11, 0)
    raises(VE, "too many interlock groups (max 8)", b8.interlock, 3 << 16, 0)


def test_input_errors():
    # checked in this order: pin, debounce, pull, toggles, count, duplicate pin
    b = B(PINS)
    raises(VE, "pin 64 out of range 0..63", b.input, 64, -1)
    raises(VE, "debounce 60001 ms out of range 0..60000", b.input, 2, 60001)
    raises(VE, "debounce -1 ms out of range 0..60000", b.input, 10, -1)
    raises(VE, "pull 3 not PULL_NONE, PULL_UP or PULL_DOWN", b.input, 2, 20, True, 3)
    raises(IE, "relay 4 out of range 0..3", b.input, 2, 20, True, 1, 4)
    raises(IE, "relay -2 out of range 0..3", b.input, 10, 20, True, 1, -2)
    raises(VE, "duplicate pin 2", b.input, 2)
    eq(b.input(10), 0, "a failed input() leaves its pin free")
    raises(VE, "duplicate pin 10", b.input, 10)
    for p in range(11, 26):
        b.input(p)
    raises(VE, "too many inputs (max 16)", b.input, 10)


def test_slot_and_watchdog_errors():
    # slot(): name length, window, count, duplicate name
    b = B(PINS)
    raises(VE, "slot name '' must be 1..15 characters", b.slot, "", 0)
    raises(VE, "slot name 'abcdefghijklmnop' must be 1..15 characters", b.slot, "abcdefghijklmnop", 10)
    raises(VE, "slot window 0 ms out of range 1..3600000", b.slot, "a", 0)
    raises(VE, "slot window 3600001 ms out of range 1..3600000", b.slot, "a", 3600001)
    b.slot("abcdefghijklmno", 10)
    raises(VE, "duplicate slot name 'abcdefghijklmno'", b.slot, "abcdefghijklmno", 10)
    for k in range(7):
        b.slot("s%d" % k, 10)
    raises(VE, "too many slots (max 8)", b.slot, "s0", 10)
    raises(VE, "watchdog timeout 0 ms out of range 1..8388", b.watchdog, 0)
    raises(VE, "watchdog timeout 8389 ms out of range 1..8388", b.watchdog, 8389)
    b.watchdog(8388)
    raises(VE, "watchdog already started", b.watchdog, 100)
    raises(VE, "watchdog timeout 0 ms out of range 1..8388", b.watchdog, 0)  # range first


def test_autotick_errors():
    b = B(PINS)
    raises(VE, "autotick period 99 us out of range 100..1000000", b.autotick, 99)
    raises(VE, "autotick period 1000001 us out of range 100..1000000", b.autotick, 1000001)


def test_sim_errors():
    b = B(PINS)
    raises(VE, "pin 64 out of range 0..63", b.sim_level, 64)
    raises(VE, "pin -1 out of range 0..63", b.sim_drive, -1, 0)


def test_large_integers_are_not_truncated():
    # beyond 32 bits nothing wraps into a valid value: the error names the argument
    b = B(PINS)
    raises(VE, "mask 4294967297 wider than 32 bits", b.write, 2**32 | 1, 1, 0)
    raises(VE, "values 4294967297 wider than 32 bits", b.write, 1, 2**32 | 1, 0)
    raises(VE, "mask -4294967295 wider than 32 bits", b.write, -(2**32 - 1), 0, 0)
    raises(VE, "pulse 18446744073709551621 ms out of range 1..86400000", b.pulse, 1, 2**64 + 5, 0)
    raises(VE, "pulse -18446744073709551621 ms out of range 1..86400000", b.pulse, 1, -(2**64 + 5), 0)
    raises(VE, "mask 36893488147419103235 wider than 32 bits", b.interlock, 2**65 | 3, 0)
    raises(VE, "active_low 4294967296 wider than 32 bits", B, PINS, 2**32)
    raises(VE, "on_at_boot 4294967297 wider than 32 bits", B, PINS, 0, 2**32 + 1)
    raises(VE, "pin 4294967298 out of range 0..63", B, [2, 2**32 + 2])
    raises(VE, "pin -4294967296 out of range 0..63", B, [-(2**32)])
    raises(IE, "relay 4294967296 out of range 0..3", b.set, 2**32, 1, 0)
    raises(IE, "relay 18446744073709551616 out of range 0..3", b.toggle, 2**64, 0)
    raises(IE, "relay 4294967296 out of range 0..3", b.get, 2**32)
    raises(VE, "min interval 4294967306 ms out of range 0..3600000", b.min_interval, 0, 2**32 + 10)
    raises(VE, "dead time 4294967296 ms out of range 0..3600000", b.interlock, 3, 2**32)
    raises(VE, "debounce 4294967316 ms out of range 0..60000", b.input, 10, 2**32 + 20)
    raises(VE, "slot window 4294967306 ms out of range 1..3600000", b.slot, "a", 2**32 + 10)
    raises(VE, "watchdog timeout 4294967396 ms out of range 1..8388", b.watchdog, 2**32 + 100)
    raises(VE, "autotick period 4294968296 us out of range 100..1000000", b.autotick, 2**32 + 1000)
    raises(VE, "tick_us -4294967296 below 100", B, PINS, 0, 0, -(2**32))
    eq((b.state(), b.sim_writes()), (0, 0), "nothing changed")
    # the widest legal values still work
    eq(b.write(0xF, 0xFFFFFFFF, 0), rg.OK, "values keep only the mask's bits")
    eq(b.state(), 0xF, "all four on")
    eq(b.write(-1 & 0xF, 0, 0), rg.OK, "a mask of the bank's relays")
    big = B(list(range(32)))
    eq(big.write(0xFFFFFFFF, 0x80000001, 0), rg.OK, "32-bit mask")
    eq(big.state(), 0x80000001, "relays 0 and 31 on")
    eq(big.write(-1, 0, 0), rg.OK, "-1 names all 32 relays")
    eq(big.state(), 0, "all off")


def test_calls_after_deinit():
    b = B(PINS)
    b.slot("a", 10)
    b.input(10)
    b.deinit()
    msg = "bank is deinitialised"
    calls = [
        (b.set, (0, 1, 0)), (b.toggle, (0, 0)), (b.write, (1, 1, 0)), (b.pulse, (0, 10, 0)),
        (b.get, (0,)), (b.state, ()), (b.min_interval, (0, 1)), (b.interlock, (3, 0)),
        (b.input, (11,)), (b.input_value, (0,)), (b.edges, (0,)), (b.tick, (0,)),
        (b.autotick, (1000,)), (b.slot, ("b", 10)), (b.checkin, (0, 0)), (b.watchdog, (100,)),
        (b.stalled, ()), (b.reset_cause, ()), (b.switches, (0,)), (b.metrics, ()),
        (b.sim_level, (2,)), (b.sim_drive, (10, 1)), (b.sim_writes, ()), (b.sim_resets, ()),
        (len, (b,)),
    ]
    for fn, args in calls:
        raises(VE, msg, fn, *args)
    b.deinit()  # a second deinit() is harmless
