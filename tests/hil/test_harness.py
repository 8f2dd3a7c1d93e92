"""The harness itself, on any MicroPython firmware: REPL, pins seen from outside, inputs
driven from outside, watchdog resets. Only machine.Pin / machine.WDT are used here."""

import pytest

from harness import MS, BoardError, Emulator


def test_boot_to_repl(emulator):
    r = emulator.prompt()
    assert ">>> " in r["banner"]
    emulator.exec("import sys")
    impl = emulator.eval("(sys.implementation.name, sys.implementation._machine)")
    assert impl[0] == "micropython"
    assert "RP2040" in impl[1]
    print(f"\n[hil] USB CDC up at cycle {r['connected_since_reset']:,}, "
          f">>> prompt at cycle {r['since_reset']:,} ({r['since_reset'] / MS:.1f} ms at 125 MHz)")


def test_boot_is_deterministic(uf2, emulator):
    first = emulator.prompt()["since_reset"]
    other = Emulator(uf2)
    try:
        assert other.prompt()["since_reset"] == first
    finally:
        other.close()


def test_exec_returns_output_and_traceback(board):
    assert board.exec("for i in range(3):\n    print(i * i)\n") == "0\n1\n4\n"
    with pytest.raises(BoardError, match="ZeroDivisionError"):
        board.exec("x = 1\n1 / 0\n")
    # the REPL is still usable after an error, and state persists between calls
    assert board.eval("x + 1") == 2


def test_output_pin_transitions_are_recorded(board):
    start = board.cycles
    board.exec("from machine import Pin\np = Pin(15, Pin.OUT, value=0)\np.value(1)\np.value(0)\n")
    log = board.log(pins=[15], since=start)
    driven = [e for e in log if e[3] in (0, 1)]
    assert [e[3] for e in driven] == [0, 1, 0]
    rise, fall = driven[1], driven[2]
    assert start < rise[0] < fall[0] <= board.cycles
    assert board.pins()[15] == 0
    print(f"\n[hil] Pin.value(1) -> Pin.value(0) from Python: {fall[0] - rise[0]:,} cycles")


def test_driven_input_is_read_by_the_board(board):
    board.exec("from machine import Pin\nb = Pin(14, Pin.IN, Pin.PULL_UP)\n")
    assert board.pins()[14] == "pu"
    assert board.eval("b.value()") == 1  # the pull-up, nothing driven
    board.drive(14, 0)
    assert board.eval("b.value()") == 0
    board.drive(14, None)
    assert board.eval("b.value()") == 1
    board.exec("b.init(Pin.IN, Pin.PULL_DOWN)")
    assert board.eval("b.value()") == 0


def test_machine_wdt_reset_is_seen(board):
    r = board.exec_raw("import machine\nw = machine.WDT(timeout=50)\n")
    armed = r["end"]
    reset = board.call("wait_reset", max_cycles=100 * MS)["reset"]
    assert reset["reason"] == "timer"
    waited = reset["cycle"] - armed
    assert 45 * MS <= waited <= 55 * MS, waited
    board.prompt()
    assert board.eval("__import__('machine').reset_cause() == __import__('machine').WDT_RESET")
    print(f"\n[hil] machine.WDT(timeout=50) reset after {waited / MS:.2f} ms")


def test_idle_board_sleeps(board):
    """USB OUT reads are held until the host sends something, as a real host NAKs: an idle
    REPL then sleeps instead of spinning on empty packets."""
    board.exec("x = 1")
    s0 = board.call("status")["steps"]
    board.run(100 * MS)
    idle = board.call("status")["steps"] - s0
    assert idle < 20_000, idle
    print(f"\n[hil] idle raw REPL: {idle:,} instructions in 100 ms emulated")
