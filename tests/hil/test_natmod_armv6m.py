"""The relay core as an armv6m native module (hw_rp2_sio.c: direct register access) on the
emulated RP2040, on two firmwares:

- stock: the stock RPI_PICO UF2 (`make firmware-stock`) with the .mpy from `make natmod` as
  /relaygpio.mpy in the board's own littlefs filesystem, built on the host and placed at the
  firmware's filesystem offset in flash, as a user's board holds it; `import relaygpio`.
- own: our firmware, which has `relaygpio` compiled in: the .mpy is sent over the REPL into an
  in-RAM user VFS and imported as `relaygpio_sio` (the built-in module would shadow the name).

Either way the tests call it `relaygpio_sio`. The natmod has no autotick, so the board ticks
it with explicit tick() calls."""

import base64

import pytest

from harness import MS, ROOT, US, Emulator

NATMOD = ROOT / ".cache" / "build" / "natmod-armv6m" / "relaygpio.mpy"
HIGH = [2, 3, 4, 5]  # active-high relays
LOW = [6, 7, 8, 9]  # active-low relays
PINS = HIGH + LOW
ACTIVE_LOW = 0b11110000
CHUNK = 3072  # bytes of .mpy per exec (4 KB of base64)

USERFS = ROOT / "tests" / "hil" / "board_scripts" / "natmod_userfs.py"


def firmware(board):
    return "stock UF2" if getattr(board, "natmod_in_flash", False) else "own UF2"


def on_level(i):
    return 0 if ACTIVE_LOW >> i & 1 else 1


def load_natmod(board):
    """Imports the natmod as relaygpio_sio: from the board's filesystem on the stock
    firmware, else sent over the REPL."""
    if getattr(board, "natmod_in_flash", False):
        out = board.exec("import relaygpio as relaygpio_sio\n"
                         "print(relaygpio_sio.IMPL, relaygpio_sio.__file__)\n")
        # found through sys.path's '' entry, the current directory: / on the flash
        assert out.split() == ["natmod", "relaygpio.mpy"], out
        return
    data = NATMOD.read_bytes()
    assert data[:4] == b"M\x06\x13\x1f", data[:4]  # mpy v6, armv6m, native code
    board.exec("import binascii\n_chunks = []\n")
    for i in range(0, len(data), CHUNK):
        b64 = base64.b64encode(data[i:i + CHUNK]).decode()
        board.exec(f"_chunks.append(binascii.a2b_base64('{b64}'))\n")
    assert board.exec(USERFS.read_text()).strip() == "natmod"


@pytest.fixture(params=["stock", "own"], ids=["stock-uf2", "own-uf2"])
def nboard(request):
    if not NATMOD.exists():
        pytest.fail(f"no armv6m natmod at {NATMOD}: build it with `make natmod`")
    if request.param == "stock":
        uf2, _ = request.getfixturevalue("stock_with_files")({"relaygpio.mpy": NATMOD.read_bytes()})
        board = Emulator(uf2)
        request.addfinalizer(board.close)
        board.prompt()
        board.natmod_in_flash = True
    else:
        board = request.getfixturevalue("board")
    load_natmod(board)
    return board


@pytest.fixture
def bank(nboard):
    nboard.exec(f"bank = relaygpio_sio.Bank({PINS}, active_low={ACTIVE_LOW})\n")
    return nboard


def relay_pins(board):
    return board.pins()[PINS[0]:PINS[-1] + 1]


def test_bank_drives_off_levels_never_on(nboard):
    assert all(p not in (0, 1) for p in relay_pins(nboard))  # inputs since reset
    status = nboard.call("status")
    start = status["cycles"]
    warnings = nboard.call("warnings")["warnings"]
    nboard.exec(f"bank = relaygpio_sio.Bank({PINS}, active_low={ACTIVE_LOW})\n")
    nboard.run(2 * MS)
    # no register the emulator does not model was touched
    assert nboard.call("warnings")["warnings"] == warnings
    # IO_BANK0 GPIOn_CTRL funcsel SIO (5); PADS_BANK0 GPIOn: input enabled (IE), OD clear
    regs = nboard.eval("[(m[0x40014004 + 8 * p] & 0x1f, m[0x4001c004 + 4 * p] & 0xc0) "
                       f"for m in [__import__('machine').mem32] for p in {PINS}]")
    assert regs == [(5, 0x40)] * len(PINS), regs
    log = nboard.log(pins=PINS)
    reached = {}
    for i, pin in enumerate(PINS):
        entries = [e for e in log if e[2] == pin]
        driven = [e for e in entries if e[3] in (0, 1)]
        assert [e[3] for e in driven] == [1 - on_level(i)], f"relay {i} pin {pin}: {entries}"
        assert all(e[3] != on_level(i) for e in entries), entries
        reached[pin] = driven[0]
    assert relay_pins(nboard) == [1 - on_level(i) for i in range(len(PINS))]
    assert len({(e[0], e[1]) for e in reached.values()}) == 1, reached  # one OE store
    at = next(iter(reached.values()))[0]
    print(f"\n[hil] natmod ({firmware(nboard)}) Bank(): {len(PINS)} relay pins (4 active-low) "
          f"driven to their off level in one instruction, {at - start:,} cycles "
          f"({(at - start) / MS:.3f} ms) after the exec started "
          f"({at - status['reset_cycle']:,} cycles from reset); never their on level")


def test_set_toggle_get(bank):
    lv = lambda i, on: on_level(i) if on else 1 - on_level(i)  # noqa: E731
    assert bank.eval("(bank.set(0, 1), bank.set(4, True))") == (0, 0)
    assert relay_pins(bank) == [lv(i, i in (0, 4)) for i in range(8)]
    assert bank.eval("(bank.toggle(0), bank.toggle(7), bank.state(), bank.get(4), bank.get(0))") \
        == (0, 0, 0b10010000, True, False)
    assert relay_pins(bank) == [lv(i, i in (4, 7)) for i in range(8)]
    start = bank.cycles
    assert bank.eval("bank.set(4, 1)") == 0  # no change, no pin event
    assert bank.log(pins=PINS, since=start) == []


def test_write_changes_all_pins_in_one_instruction(bank):
    start = bank.cycles
    assert bank.eval("bank.write(0xff, 0xff)") == 0
    log = bank.log(pins=PINS, since=start)
    assert sorted(e[2] for e in log) == PINS
    assert len({(e[0], e[1]) for e in log}) == 1, log
    assert relay_pins(bank) == [on_level(i) for i in range(8)]
    start = bank.cycles
    assert bank.eval("bank.write(0b10000001, 0)") == 0  # relays 0 and 7 off
    log = bank.log(pins=PINS, since=start)
    assert sorted(e[2] for e in log) == [2, 9]
    assert len({(e[0], e[1]) for e in log}) == 1, log


@pytest.mark.parametrize("relay", [0, 4], ids=["active-high", "active-low"])
def test_pulse_ended_by_tick_loop(bank, relay):
    ms, period_us = 20, 250
    assert bank.eval("bank.autotick(1000)") is False  # no timer in a natmod
    pin = PINS[relay]
    start = bank.cycles
    out = bank.exec(
        "import time\n"
        "bank.tick()\n"
        f"r = bank.pulse({relay}, {ms})\n"
        "n = 0\n"
        f"while bank.get({relay}):\n"
        f"    time.sleep_us({period_us})\n"
        "    bank.tick()\n"
        "    n += 1\n"
        "print(r, n, bank.metrics()['pulses_expired'])\n",
        max_cycles=(ms + 20) * MS,
    )
    r, n, expired = map(int, out.split())
    assert (r, expired) == (0, 1)
    log = bank.log(pins=[pin], since=start)
    assert [e[3] for e in log] == [on_level(relay), 1 - on_level(relay)], log
    w = log[1][0] - log[0][0]
    assert ms * MS <= w <= ms * MS + 2 * period_us * US, w
    kind = "active-low" if relay >= 4 else "active-high"
    print(f"\n[hil] natmod ({firmware(bank)}) pulse({ms} ms) on relay {relay} ({kind}), "
          f"{n} tick() calls every ~{period_us} us: {w:,} cycles ({w / MS:.3f} ms)")


def test_debounced_input_from_emulator(nboard):
    button, debounce_ms, period_us = 10, 20, 500
    nboard.exec(
        "import time\n"
        f"bank = relaygpio_sio.Bank([{PINS[0]}])\n"
        f"j = bank.input({button}, debounce_ms={debounce_ms}, active_low=True, "
        "pull=relaygpio_sio.PULL_UP, toggles=0)\n"
    )
    assert nboard.pins()[button] == "pu"  # pad pull-up from hw_rp2_sio.c
    # the board ticks for 400 ms while the emulator moves the button
    nboard.call("read")
    nboard.call("write", data=(
        "t0 = time.ticks_ms()\n"
        "while time.ticks_diff(time.ticks_ms(), t0) < 400:\n"
        "    bank.tick()\n"
        f"    time.sleep_us({period_us})\n"
        "print('END', bank.edges(j), bank.input_value(j), bank.get(0))\n"
        "\x04"))
    start = nboard.cycles
    steps = [[1, 30 * MS]]  # released while the loop starts
    steps += [[k % 2, 3 * MS] for k in range(8)]  # 24 ms of chatter, under the debounce
    steps += [[1, 40 * MS], [0, 80 * MS], [1, 80 * MS]]  # a clean press and release
    at = nboard.call("drive_seq", pin=button, steps=steps)["at"]
    pressed = at[-2]
    text = nboard.call("wait_text", text="\x04>", max_cycles=400 * MS)["data"]
    assert "END 2 False True" in text, text
    log = nboard.log(pins=[PINS[0]], since=start)
    assert [e[3] for e in log] == [1], log  # one toggle, from the clean press only
    latency = log[0][0] - pressed
    assert debounce_ms * MS <= latency <= debounce_ms * MS + 3 * period_us * US, latency
    print(f"\n[hil] natmod ({firmware(nboard)}) input: chatter ignored, clean press to relay pin "
          f"{latency:,} cycles ({latency / MS:.3f} ms) with debounce {debounce_ms} ms, "
          f"tick() every ~{period_us} us")


def test_stalled_slot_resets_with_its_name(nboard):
    window_ms = 50
    nboard.exec(
        "import time\n"
        f"bank = relaygpio_sio.Bank([{PINS[0]}])\n"
        f"s = bank.slot('pump', {window_ms})\n"
        "bank.watchdog(1000)\n"
        "bank.tick()\n"
        "bank.checkin(s)\n"
        "bank.set(0, 1)\n"  # the pin marks the last check-in
    )
    last_checkin = nboard.log(pins=[PINS[0]])[-1][0]
    r = nboard.exec_raw(
        "while True:\n"
        "    time.sleep_us(500)\n"
        "    bank.tick()\n",
        max_cycles=4 * window_ms * MS)
    assert r.get("reset"), r
    reset = r["reset"]
    after = reset["cycle"] - last_checkin
    assert reset["reason"] == "force", reset  # the supervisor triggered it
    assert window_ms * MS <= after <= (window_ms + 5) * MS, after
    assert nboard.pins()[PINS[0]] not in (0, 1)  # released by the reset
    nboard.prompt()
    load_natmod(nboard)
    assert nboard.eval(f"relaygpio_sio.Bank([{PINS[0]}]).reset_cause()") == "pump"
    assert nboard.eval("__import__('machine').reset_cause() == __import__('machine').WDT_RESET")
    print(f"\n[hil] natmod ({firmware(nboard)}) slot 'pump' ({window_ms} ms window) stalled: "
          f"watchdog reset {after:,} cycles ({after / MS:.3f} ms) after its last check-in; "
          "reset_cause() after reboot: 'pump'")


def test_ticks_stop_then_hardware_watchdog(nboard):
    timeout_ms = 100
    r = nboard.exec_raw(
        f"bank = relaygpio_sio.Bank([{PINS[0]}])\n"
        "bank.slot('main', 1000)\n"
        f"bank.watchdog({timeout_ms})\n"
        "bank.tick()\n"
    )
    assert not r["err"], r["err"]
    fed = r["end"]
    reset = nboard.call("wait_reset", max_cycles=3 * timeout_ms * MS)["reset"]
    assert reset["reason"] == "timer", reset
    assert (timeout_ms - 5) * MS <= reset["cycle"] - fed <= timeout_ms * MS
    nboard.prompt()
    load_natmod(nboard)
    assert nboard.eval(f"relaygpio_sio.Bank([{PINS[0]}]).reset_cause()") == "watchdog"
    print(f"\n[hil] natmod ({firmware(nboard)}) ticks stopped: hardware watchdog ({timeout_ms} ms) "
          f"reset {(reset['cycle'] - fed) / MS:.3f} ms after the last feed's exec ended")
