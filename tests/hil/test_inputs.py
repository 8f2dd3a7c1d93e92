"""Inputs driven from outside the chip: bounces shorter than the debounce time count no
edge; a clean press counts one edge and toggles the bound relay."""

import pytest

from harness import MS, US

RELAY_PIN = 2
BUTTON = 10  # active-low button with the pad's pull-up
DEBOUNCE_MS = 20
TICK_US = 1000


@pytest.fixture
def button(rboard):
    rboard.exec(
        "import relaygpio\n"
        f"bank = relaygpio.Bank([{RELAY_PIN}])\n"
        f"j = bank.input({BUTTON}, debounce_ms={DEBOUNCE_MS}, active_low=True, "
        "pull=relaygpio.PULL_UP, toggles=0)\n"
        f"bank.autotick({TICK_US})\n"
    )
    assert rboard.pins()[BUTTON] == "pu"
    rboard.run(5 * MS)
    assert rboard.eval("(bank.input_value(j), bank.edges(j), bank.get(0))") == (False, 0, False)
    return rboard


def bounce(board, ms_each, count, end_level):
    steps = [[(k + 1) % 2, ms_each * MS] for k in range(count)]  # starts pressed (0)
    steps.append([end_level, 40 * MS])
    return board.call("drive_seq", pin=BUTTON, steps=steps)


def test_bounces_shorter_than_debounce_count_nothing(button):
    start = button.cycles
    bounce(button, 5, 12, end_level=1)  # 60 ms of 5 ms contacts, then released
    bounce(button, 19, 4, end_level=1)  # just under the debounce time
    assert button.eval("(bank.edges(j), bank.get(0), bank.metrics()['input_edges'])") == (0, False, 0)
    assert button.log(pins=[RELAY_PIN], since=start) == []


def test_clean_press_counts_one_edge_and_toggles(button):
    start = button.cycles
    pressed = button.call("drive_seq", pin=BUTTON, steps=[[0, 60 * MS]])["at"][0]
    log = button.log(pins=[RELAY_PIN], since=start)
    assert [e[3] for e in log] == [1], log
    latency = log[0][0] - pressed
    # The next sample sees the press (up to one tick), then the level must hold for the
    # debounce time counted in ticks; tick lengths are read in the timer interrupt and
    # jitter by a few us, so an exact multiple of the tick may need one tick more.
    assert DEBOUNCE_MS * MS <= latency <= DEBOUNCE_MS * MS + 2 * TICK_US * US, latency
    assert button.eval("(bank.edges(j), bank.input_value(j), bank.get(0))") == (1, True, True)
    # release: a second edge, and the relay stays as it is
    button.call("drive_seq", pin=BUTTON, steps=[[1, 60 * MS]])
    assert button.eval("(bank.edges(j), bank.input_value(j), bank.get(0))") == (2, False, True)
    assert len(button.log(pins=[RELAY_PIN], since=start)) == 1
    print(f"\n[hil] press to relay pin: {latency:,} cycles ({latency / MS:.3f} ms) "
          f"with debounce {DEBOUNCE_MS} ms, tick {TICK_US} us")


def test_bouncy_press_counts_one_edge(button):
    start = button.cycles
    bounce(button, 2, 6, end_level=0)  # contacts chatter for 12 ms, then stay closed
    assert button.eval("(bank.edges(j), bank.get(0))") == (1, True)
    assert [e[3] for e in button.log(pins=[RELAY_PIN], since=start)] == [1]
