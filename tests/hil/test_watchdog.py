"""The watchdog supervisor: a slot that stops checking in resets the chip within its
window, and the cause survives the reset; if ticks stop, the hardware watchdog fires."""

from harness import MS, US

TICK_US = 1000


def test_stalled_slot_resets_with_its_name(rboard):
    window_ms = 100
    rboard.exec(
        "import relaygpio\n"
        "bank = relaygpio.Bank([2])\n"
        f"bank.autotick({TICK_US})\n"
        f"s = bank.slot('pump', {window_ms})\n"
        "bank.watchdog(1000)\n"
        "bank.checkin(s)\n"
    )
    rboard.run(10 * TICK_US * US)  # the window is timed by ticks: let them run first
    r = rboard.exec_raw("bank.checkin(s)\nbank.set(0, 1)\n")  # the pin marks the last check-in
    assert not r["err"], r["err"]
    last_checkin = [e for e in rboard.log(pins=[2]) if e[3] == 1][-1][0]
    reset = rboard.call("wait_reset", max_cycles=3 * window_ms * MS)["reset"]
    after = reset["cycle"] - last_checkin
    assert reset["reason"] == "force"  # the supervisor triggers the reset itself
    assert window_ms * MS <= after <= window_ms * MS + TICK_US * US, after
    assert rboard.pins()[2] == "pd"  # the reset released the relay
    rboard.prompt()
    assert rboard.eval("__import__('relaygpio').Bank([2]).reset_cause()") == "pump"
    assert rboard.eval("__import__('machine').reset_cause() == __import__('machine').WDT_RESET")
    print(f"\n[hil] slot 'pump' ({window_ms} ms window) stopped checking in: reset "
          f"{after:,} cycles ({after / MS:.3f} ms) after its last check-in")


def test_ticks_stop_then_hardware_watchdog(rboard):
    timeout_ms = 200
    r = rboard.exec_raw(
        "import relaygpio\n"
        "bank = relaygpio.Bank([2])\n"
        "bank.slot('main', 1000)\n"
        f"bank.watchdog({timeout_ms})\n"
        "bank.tick()\n"  # one feed, then no more ticks
    )
    assert not r["err"], r["err"]
    fed = r["end"]
    reset = rboard.call("wait_reset", max_cycles=2 * timeout_ms * MS)["reset"]
    assert reset["reason"] == "timer"
    assert reset["cycle"] - fed <= timeout_ms * MS
    assert reset["cycle"] - fed >= (timeout_ms - 5) * MS
    rboard.prompt()
    assert rboard.eval("__import__('relaygpio').Bank([2]).reset_cause()") == "watchdog"
    print(f"\n[hil] ticks stopped: hardware watchdog ({timeout_ms} ms) reset "
          f"{(reset['cycle'] - fed) / MS:.3f} ms after the exec that fed it last ended")


def test_no_cause_after_power_on(rboard):
    assert rboard.eval("__import__('relaygpio').Bank([2]).reset_cause()") is None
