"""Switching seen from the pins: set, toggle, the atomic write, interlock with dead time,
and pulses ended by the C autotick. Times are emulated cycles at 125 MHz."""

import pytest

from harness import MS, US

PINS = [2, 3, 4, 5]
ACTIVE_LOW = 0b1100  # relays 2 and 3 (GPIO 4, 5) are active-low
TICK_US = 1000
TICK = TICK_US * US


def level(i, on):
    return int(bool(on) ^ bool(ACTIVE_LOW >> i & 1))


@pytest.fixture
def bank(rboard):
    rboard.exec(f"import relaygpio\nbank = relaygpio.Bank({PINS}, active_low={ACTIVE_LOW})\n")
    return rboard


def relay_pins(board):
    return board.pins()[2:6]


def test_set_and_toggle(bank):
    assert relay_pins(bank) == [level(i, 0) for i in range(4)]
    assert bank.eval("(bank.set(0, 1), bank.set(2, True))") == (0, 0)
    assert relay_pins(bank) == [level(0, 1), level(1, 0), level(2, 1), level(3, 0)]
    assert bank.eval("(bank.toggle(0), bank.toggle(3), bank.state(), bank.get(2))") == (0, 0, 0b1100, True)
    assert relay_pins(bank) == [level(0, 0), level(1, 0), level(2, 1), level(3, 1)]
    # setting a relay to the state it has changes nothing on the pin
    start = bank.cycles
    assert bank.eval("bank.set(2, 1)") == 0
    assert bank.log(pins=PINS, since=start) == []


def test_write_changes_all_pins_in_one_step(bank):
    start = bank.cycles
    assert bank.eval("bank.write(0b1111, 0b1111)") == 0
    log = bank.log(pins=PINS, since=start)
    assert sorted(e[2] for e in log) == PINS
    assert len({(e[0], e[1]) for e in log}) == 1, log  # same instruction, same cycle
    assert relay_pins(bank) == [level(i, 1) for i in range(4)]

    start = bank.cycles
    assert bank.eval("bank.write(0b1111, 0b0110)") == 0  # relays 0 and 3 change
    log = bank.log(pins=PINS, since=start)
    assert sorted(e[2] for e in log) == [2, 5]
    assert len({(e[0], e[1]) for e in log}) == 1, log
    print(f"\n[hil] write(): {len(PINS)} relay pins changed in one instruction (step {log[0][1]:,})")


def test_interlock_dead_time(bank):
    dead_ms = 20
    bank.exec(f"g = bank.interlock(0b0011, {dead_ms})\nbank.autotick({TICK_US})\n")
    bank.run(3 * TICK)  # past the first tick, which only sets the time base
    assert bank.eval("bank.set(0, 1)") == 0
    start = bank.cycles
    assert bank.eval("bank.set(1, 1)") == 1  # DEFERRED: 0 goes off now, 1 after the dead time
    assert relay_pins(bank)[:2] == [0, 0]
    bank.wait_pin(3, 1, max_cycles=(dead_ms + 5) * MS)
    log = bank.log(pins=[2, 3], since=start)
    off = [e for e in log if e[2] == 2 and e[3] == 0]
    on = [e for e in log if e[2] == 3 and e[3] == 1]
    assert len(off) == 1 and len(on) == 1, log
    dead = on[0][0] - off[0][0]
    assert dead_ms * MS <= dead <= dead_ms * MS + TICK, dead
    # never both on: replay the whole log of the two pins
    state = {2: None, 3: None}
    for c, _step, pin, s in bank.log(pins=[2, 3]):
        state[pin] = s
        assert not (state[2] == 1 and state[3] == 1), f"both on at cycle {c}"
    # a write that would leave both on is refused, and nothing moves
    start = bank.cycles
    assert bank.eval("bank.write(0b0011, 0b0011)") == 3  # REJECTED_INTERLOCK
    assert bank.log(pins=PINS, since=start) == []
    print(f"\n[hil] interlock change-over: dead time {dead / MS:.3f} ms for {dead_ms} ms "
          f"requested (tick {TICK_US} us)")


def pulse_width(board, relay, ms):
    pin = PINS[relay]
    start = board.cycles
    assert board.eval(f"bank.pulse({relay}, {ms})") == 0
    board.wait_pin(pin, level(relay, 0), max_cycles=(ms + 10) * MS)
    log = board.log(pins=[pin], since=start)
    assert [e[3] for e in log] == [level(relay, 1), level(relay, 0)], log
    return log[1][0] - log[0][0]


@pytest.mark.parametrize("ms", [5, 50])
def test_pulse_ends_within_one_tick(bank, ms):
    bank.exec(f"bank.autotick({TICK_US})")
    bank.run(3 * TICK)
    widths = [pulse_width(bank, relay, ms) for relay in (0, 2)]  # active-high, active-low
    for w in widths:
        assert ms * MS <= w <= ms * MS + TICK, w
    print(f"\n[hil] pulse({ms} ms) with autotick({TICK_US} us): "
          + ", ".join(f"{w:,} cycles ({w / MS:.3f} ms)" for w in widths))
    assert bank.eval("bank.metrics()['pulses_expired']") == 2


def test_pulse_right_after_autotick_starts(bank):
    widths = []
    for delay_us in (0, 200, 500, 900):
        bank.exec("try:\n    bank.deinit()\nexcept Exception:\n    pass\n"
                  f"bank = relaygpio.Bank({PINS}, active_low={ACTIVE_LOW})\n")
        pin = PINS[0]
        start = bank.cycles
        bank.exec(f"import time\nbank.autotick({TICK_US})\ntime.sleep_us({delay_us})\nbank.pulse(0, 50)\n")
        bank.wait_pin(pin, 0, max_cycles=60 * MS)
        log = bank.log(pins=[pin], since=start)
        widths.append(log[-1][0] - log[-2][0])
    print(f"\n[hil] pulse(50 ms) right after autotick(): "
          + ", ".join(f"{w / MS:.3f} ms" for w in widths))
    for w in widths:
        assert 50 * MS <= w <= 50 * MS + TICK, w
