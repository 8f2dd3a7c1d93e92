"""Relay state kept across a watchdog reset in the watchdog scratch registers (hw_keep.h): a
relay on, then a watchdog reset; the Bank created after it drives the relay on again, without
a flash write. The pin log shows how long the pin was not driven and at which level it sat
(the RP2040's pads reset to inputs with pull-down). A cold power-on (scratch cleared) comes up
per on_at_boot. The Bank is created by the first script sent once the REPL answers."""

from harness import MS, US

KEEP = slice(5, 8)  # scratch[5..7]: state, pulsing, check


def window(rboard, pins, reset_cycle, on_cycle):
    """The states each pin showed from the reset to the Bank's first write (exclusive)."""
    log = rboard.log(pins=pins, since=reset_cycle)
    return {p: sorted({e[3] for e in log if e[2] == p and e[0] < on_cycle}) for p in pins}


def recreate(rboard, code):
    """Prompt, then the Bank's creation; returns (prompt answer, exec answer)."""
    p = rboard.prompt()
    r = rboard.exec_raw(code)
    assert not r["err"], r["err"]
    return p, r


def first_driven(rboard, pin, since):
    return [e for e in rboard.log(pins=[pin], since=since) if e[3] in (0, 1)][0]


def report(what, reset, p, on_cycle, states):
    gap = on_cycle - reset["cycle"]
    print(f"\n[hil] {what}: pin driven again {gap:,} cycles ({gap / US:,.0f} us) after the "
          f"reset; REPL ready after {p['since_reset'] / US:,.0f} us; not driven meanwhile, "
          f"states {states}")


def test_relay_on_again_after_watchdog_timeout(rboard):
    # relay 0 (pin 2) on, relay 1 (pin 3) off; ticks stop, the hardware watchdog fires
    r = rboard.exec_raw(
        "import relaygpio\n"
        "bank = relaygpio.Bank([2, 3])\n"
        "bank.set(0, 1)\n"
        "bank.watchdog(20)\n"
        "bank.tick()\n"
    )
    assert not r["err"], r["err"]
    assert rboard.pins()[2] == 1
    reset = rboard.call("wait_reset", max_cycles=40 * MS)["reset"]
    assert reset["reason"] == "timer"
    assert reset["scratch"][KEEP][0:2] == [0b01, 0], reset["scratch"]
    assert rboard.pins()[2] == "pd" and rboard.pins()[3] == "pd", "the reset released the pins"
    p, r = recreate(rboard, "import relaygpio\nbank = relaygpio.Bank([2, 3])\n"
                            "print(bank.restored(), bank.state())\n")
    assert r["out"].split() == ["1", "1"], r["out"]
    on = first_driven(rboard, 2, reset["cycle"])
    assert on[3] == 1, "the first level pin 2 drives after the reset is on"
    assert first_driven(rboard, 3, reset["cycle"])[3] == 0, "relay 1 stays off"
    states = window(rboard, [2, 3], reset["cycle"], on[0])
    assert states == {2: ["pd"], 3: ["pd"]}, states
    assert rboard.eval("__import__('machine').reset_cause() == __import__('machine').WDT_RESET")
    report("active-high relay, watchdog timeout", reset, p, on[0], states)


def test_active_low_relay_after_supervisor_reset(rboard):
    # active-low relays: relay 0 (pin 6) on = low, relay 1 (pin 7) off = high; a slot stalls
    window_ms = 20
    r = rboard.exec_raw(
        "import relaygpio\n"
        "bank = relaygpio.Bank([6, 7], active_low=0b11)\n"
        "bank.autotick(1000)\n"
        f"s = bank.slot('pump', {window_ms})\n"
        "bank.watchdog(1000)\n"
        "bank.set(0, 1)\n"
    )
    assert not r["err"], r["err"]
    assert rboard.pins()[6] == 0 and rboard.pins()[7] == 1
    reset = rboard.call("wait_reset", max_cycles=4 * window_ms * MS)["reset"]
    assert reset["reason"] == "force"
    p, r = recreate(rboard, "import relaygpio\nbank = relaygpio.Bank([6, 7], active_low=0b11)\n"
                            "print(bank.restored(), bank.reset_cause())\n")
    assert r["out"].split() == ["1", "pump"], r["out"]
    on = first_driven(rboard, 6, reset["cycle"])
    assert on[3] == 0, "relay 0 on: pin 6 low"
    off = first_driven(rboard, 7, reset["cycle"])
    assert off[3] == 1, "relay 1 off: pin 7 high"
    states = window(rboard, [6, 7], reset["cycle"], on[0])
    # the internal pull-down holds both pins low meanwhile: an active-low module reads that
    # as on, so relay 1 (off) needs an external pull-up (docs/relaygpio.md)
    assert states == {6: ["pd"], 7: ["pd"]}, states
    report("active-low relays, supervisor reset", reset, p, on[0], states)


def test_cold_power_on_uses_on_at_boot(rboard):
    r = rboard.exec_raw("import relaygpio\nbank = relaygpio.Bank([2, 3])\nbank.set(0, 1)\n"
                        "bank.set(1, 1)\n")
    assert not r["err"], r["err"]
    rboard.call("power_on")
    wd = rboard.call("watchdog")
    assert wd["scratch"][KEEP] == [0, 0, 0], wd
    p, r = recreate(rboard, "import relaygpio\nbank = relaygpio.Bank([2, 3], on_at_boot=0b10)\n"
                            "print(bank.restored(), bank.state())\n")
    assert r["out"].split() == ["None", "2"], r["out"]
    assert rboard.pins()[2] == 0 and rboard.pins()[3] == 1


def test_other_layout_after_reset_boots_cold(rboard):
    r = rboard.exec_raw("import relaygpio\nbank = relaygpio.Bank([2, 3])\nbank.set(0, 1)\n"
                        "bank.watchdog(20)\nbank.tick()\n")
    assert not r["err"], r["err"]
    rboard.call("wait_reset", max_cycles=40 * MS)
    p, r = recreate(rboard, "import relaygpio\nbank = relaygpio.Bank([3, 2])\n"
                            "print(bank.restored(), bank.state())\n")
    assert r["out"].split() == ["None", "0"], r["out"]
    assert rboard.pins()[2] == 0 and rboard.pins()[3] == 0


def test_natmod_keeps_state_across_reset(rboard):
    # the armv6m natmod (hw_rp2_sio.c) packs the words as the firmware's C module does
    from test_natmod_armv6m import load_natmod
    load_natmod(rboard)
    r = rboard.exec_raw("bank = relaygpio_sio.Bank([2, 3])\nbank.set(1, 1)\n"
                        "import machine\nprint(machine.mem32[0x40058020])\n")
    assert not r["err"], r["err"]
    assert r["out"].split() == ["2"], r["out"]
    r = rboard.exec_raw("bank.watchdog(20)\nbank.tick()\n")
    reset = rboard.call("wait_reset", max_cycles=40 * MS)["reset"]
    assert reset["scratch"][KEEP][0] == 0b10
    # the firmware's C module reads what the natmod kept: one packing
    p, r = recreate(rboard, "import relaygpio\nbank = relaygpio.Bank([2, 3])\n"
                            "print(bank.restored())\n")
    assert r["out"].split() == ["2"], r["out"]
    assert rboard.pins()[3] == 1 and rboard.pins()[2] == 0


def test_soft_reset_keeps_relays_driven(rboard):
    # Ctrl-D at the REPL: MicroPython restarts, the chip does not, and the pins stay driven;
    # the next Bank takes them over at the kept state without releasing them
    r = rboard.exec_raw("import relaygpio\nbank = relaygpio.Bank([2, 3])\nbank.set(1, 1)\n")
    assert not r["err"], r["err"]
    t0 = rboard.cycles
    rboard.call("write", data="\x02\x04")  # leave the raw REPL, soft reset
    rboard.call("wait_text", text="soft reboot")
    p, r = recreate(rboard, "import relaygpio\nbank = relaygpio.Bank([2, 3])\n"
                            "print(bank.restored(), bank.state())\n")
    assert r["out"].split() == ["2", "2"], r["out"]
    assert rboard.log(pins=[2, 3], since=t0) == [], "neither pin changed"
    assert rboard.pins()[3] == 1 and rboard.pins()[2] == 0
