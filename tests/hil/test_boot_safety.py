"""Boot safety: from reset on, no relay pin drives its on level unless the relay is on at
boot. The Bank is created by the first script the board runs, sent as soon as its USB
serial port is up; the pin log covers everything from the reset."""

import pytest

from conftest import require_relaygpio
from harness import MS

HIGH = [2, 3, 4, 5]  # active-high relays
LOW = [6, 7, 8, 9]  # active-low relays
PINS = HIGH + LOW
ACTIVE_LOW = 0b11110000


def on_level(i):
    return 0 if ACTIVE_LOW >> i & 1 else 1


@pytest.mark.parametrize("on_at_boot", [0, 0b00100010], ids=["all-off", "two-on"])
def test_relay_pins_never_show_on_level_at_boot(emulator, on_at_boot):
    r = emulator.exec_raw(
        "import relaygpio\n"
        f"bank = relaygpio.Bank({PINS}, active_low={ACTIVE_LOW}, on_at_boot={on_at_boot})\n"
    )
    if "ImportError" in r["err"]:
        require_relaygpio(emulator)
    assert not r["err"], r["err"]
    emulator.run(2 * MS)  # a little time after, in case anything else touches the pins
    log = emulator.log(pins=PINS)
    reached = {}
    undriven = set()
    for i, pin in enumerate(PINS):
        entries = [e for e in log if e[2] == pin]
        driven = [e for e in entries if e[3] in (0, 1)]
        boot_level = on_level(i) if on_at_boot >> i & 1 else 1 - on_level(i)
        # the first level the pin ever drives is its power-on level, and it keeps it
        assert driven, f"pin {pin} never driven: {entries}"
        assert [e[3] for e in driven] == [boot_level], f"relay {i} pin {pin}: {entries}"
        if not on_at_boot >> i & 1:
            assert all(e[3] != on_level(i) for e in entries)
        # before that, the pin was an input (never a driven level)
        before = {e[3] for e in entries if e[0] < driven[0][0]}
        assert before and not before & {0, 1}, entries
        undriven |= before
        reached[pin] = driven[0]
    assert emulator.pins()[2:10] == [
        (on_level(i) if on_at_boot >> i & 1 else 1 - on_level(i)) for i in range(8)
    ]
    cycles = {e[0] for e in reached.values()}
    steps = {e[1] for e in reached.values()}
    # one store to the output-enable register switches every relay pin to output together
    assert len(steps) == 1, reached
    c = cycles.pop()
    print(f"\n[hil] boot safety ({'on_at_boot=' + bin(on_at_boot)}): all 8 relay pins "
          f"driven to their power-on level at cycle {c:,} from reset "
          f"({c / MS:.2f} ms), in one instruction; before that undriven inputs "
          f"(pad state {'/'.join(sorted(map(str, undriven)))}; pd = pull-down)")


def test_watchdog_reset_releases_relays(rboard):
    """After a reset the pins are inputs again (the relay drivers' own bias decides), and
    the next Bank drives them to the state kept across the reset: relay 0 on, no other on."""
    rboard.exec(f"bank = __import__('relaygpio').Bank({PINS}, active_low={ACTIVE_LOW})\n"
                "bank.set(0, 1)\n"
                "import machine\n")
    r = rboard.exec_raw("machine.reset()")
    assert r.get("reset"), r
    at = r["reset"]["cycle"]
    assert all(p not in (0, 1) for p in rboard.pins()[2:10])
    rboard.exec(f"bank = __import__('relaygpio').Bank({PINS}, active_low={ACTIVE_LOW})\n")
    after = rboard.log(pins=PINS, since=at)
    for i, pin in enumerate(PINS[1:], 1):
        assert all(e[3] != on_level(i) for e in after if e[2] == pin), after
    assert [e[3] for e in after if e[2] == PINS[0] and e[3] in (0, 1)] == [on_level(0)], after
    assert rboard.pins()[2:10] == [on_level(0)] + [1 - on_level(i) for i in range(1, 8)]
