# The relay state kept across a reset without a flash write (docs/relaygpio.md,
# "State kept across a reset"), on the simulated backend. A "reset" here is what
# a watchdog or soft reset leaves: the bank is gone without deinit() and the
# scratch words stay; a "power-on" clears them (the runner does it before each test).
import impl
import pyrelaygpio
from check import eq, raises, true

rg = impl.rg
PINS = [2, 3, 4, 5]
MS = 1000


def levels(b, pins=PINS):
    return [b.sim_level(p) for p in pins]


def power_on():
    rg.sim_scratch((0, 0, 0))


def test_cold_start_uses_on_at_boot():
    b = rg.Bank(PINS, on_at_boot=0b0010)
    eq(b.restored(), None, "restored after a power-on")
    eq(b.state(), 0b0010, "state")
    eq(levels(b), [0, 1, 0, 0], "levels")


def test_reset_applies_kept_state_at_creation():
    b = rg.Bank(PINS, active_low=0b1000, on_at_boot=0b0001)
    eq(b.set(0, 0, now=0), rg.OK, "relay 0 off")
    eq(b.write(0b1100, 0b1100, now=0), rg.OK, "relays 2, 3 on")
    eq(b.toggle(1, now=0), rg.OK, "relay 1 on")
    b = rg.Bank(PINS, active_low=0b1000, on_at_boot=0b0001)  # after the reset
    eq(b.restored(), 0b1110, "restored")
    eq(b.state(), 0b1110, "the kept state, not on_at_boot")
    eq(levels(b), [0, 1, 1, 0], "levels (relay 3 active low)")
    eq(b.sim_writes(), 0, "applied at creation, no register write after it")


def test_restored_zero_is_not_a_cold_start():
    b = rg.Bank(PINS, on_at_boot=0b0001)
    b.set(0, 0, now=0)
    b = rg.Bank(PINS, on_at_boot=0b0001)
    eq(b.restored(), 0, "restored")
    eq(b.state(), 0, "off as it was, not on_at_boot")


def test_pulsing_relay_comes_back_off():
    b = rg.Bank(PINS)
    b.set(0, 1, now=0)
    eq(b.pulse(1, 500, now=0), rg.OK, "pulse 1")
    b.set(2, 1, now=0)
    eq(b.pulse(2, 500, now=0), rg.OK, "pulse over an on relay")
    eq(rg.sim_scratch()[1], 0b0110, "pulsing mask kept")
    b = rg.Bank(PINS)
    eq(b.restored(), 0b0001, "restored: the time left is unknown, so pulses end off")
    eq(levels(b), [1, 0, 0, 0], "levels")


def test_pulse_ended_without_a_switch_is_kept_on():
    b = rg.Bank(PINS)
    b.pulse(0, 500, now=0)
    b.pulse(1, 500, now=0)
    b.set(0, 1, now=0)  # no switch: ends the pulse
    b.write(0b0010, 0b0010, now=0)  # no switch: ends the pulse
    eq(rg.sim_scratch()[1], 0, "nothing pulsing")
    eq(rg.Bank(PINS).restored(), 0b0011, "restored")


def test_tick_changes_are_kept():
    b = rg.Bank(PINS)
    b.tick(now=0)
    b.pulse(0, 5, now=0)
    b.input(20, 0, False, rg.PULL_NONE, 3)
    b.sim_drive(20, 1)
    b.tick(now=10 * MS)  # the pulse ends and the button turns relay 3 on
    eq(b.state(), 0b1000, "state after the tick")
    eq(rg.Bank(PINS).restored(), 0b1000, "restored")


def test_deferred_changeover_is_kept_when_it_happens():
    b = rg.Bank(PINS)
    b.interlock(0b0011, 30)
    b.tick(now=0)
    b.set(0, 1, now=0)
    eq(b.set(1, 1, now=0), rg.DEFERRED, "change-over")
    eq(rg.sim_scratch()[0], 0, "both off in the dead time")
    b.tick(now=40 * MS)
    eq(rg.Bank(PINS).restored(), 0b0010, "restored after the dead time")


def test_other_layout_or_garbage_boots_cold():
    b = rg.Bank(PINS)
    b.set(0, 1, now=0)
    b = rg.Bank(PINS, active_low=0b0001)  # another polarity
    eq(b.restored(), None, "another polarity")
    eq(b.state(), 0, "state")
    b.set(1, 1, now=0)
    eq(rg.Bank([2, 3, 4]).restored(), None, "another pin list")
    b = rg.Bank(PINS, active_low=0b0001)
    b.set(1, 1, now=0)
    w = rg.sim_scratch()
    rg.sim_scratch((w[0] | 0b0100, w[1], w[2]))  # one bit flipped: the check fails
    b = rg.Bank(PINS, active_low=0b0001, on_at_boot=0b1000)
    eq(b.restored(), None, "garbage")
    eq(b.state(), 0b1000, "on_at_boot")


def test_deinit_keeps_nothing():
    b = rg.Bank(PINS)
    b.set(0, 1, now=0)
    b.deinit()
    b = rg.Bank(PINS, on_at_boot=0b0100)
    eq(b.restored(), None, "after deinit")
    eq(b.state(), 0b0100, "on_at_boot")


def test_scratch_survives_a_simulated_process_restart():
    b = rg.Bank(PINS)
    b.set(3, 1, now=0)
    saved = rg.sim_scratch()  # what the simulated reset writes to a file
    power_on()
    eq(rg.sim_scratch(), (0, 0, 0), "cleared")
    rg.sim_scratch(saved)  # loaded at the next boot
    eq(rg.Bank(PINS).restored(), 0b1000, "restored")


def test_sim_scratch_errors():
    raises(ValueError, "sim_scratch needs 3 words", rg.sim_scratch, (1, 2))
    raises(ValueError, "scratch word %d wider than 32 bits" % (1 << 40), rg.sim_scratch, (1, 2, 1 << 40))
    raises(TypeError, "can't convert str to int", rg.sim_scratch, (1, 2, "x"))
    eq(rg.sim_scratch(), (0, 0, 0), "unchanged by a rejected load")


def test_restored_after_deinit_raises():
    b = rg.Bank(PINS)
    b.deinit()
    raises(ValueError, "bank is deinitialised", b.restored)


def test_packing_matches_the_python_twin():
    # the same words from every implementation: hw_keep.h and pyrelaygpio agree
    ops = lambda b: (b.set(0, 1, now=0), b.pulse(2, 100, now=0), b.write(0b1000, 0b1000, now=0))
    ops(rg.Bank(PINS, active_low=0b0101))
    mine = rg.sim_scratch()
    pyrelaygpio.sim_scratch((0, 0, 0))
    ops(pyrelaygpio.Bank(PINS, active_low=0b0101))
    eq(mine, pyrelaygpio.sim_scratch(), "scratch words")
    true(mine[2] != 0, "a check word")
