"""machine.UART(0) on the emulated RP2040 with the harness's UART fixes (uart_fixes.mjs): bytes
both ways, the IRQ_RXIDLE handler, and what upstream rp2040js 1.4.1 does without the fixes."""

import pytest

from harness import MS, HarnessError

OPEN = (
    "import machine\n"
    "u = machine.UART(0, 921600, rxbuf=1024)\n"
    "idle = [0]\n"
    "def on_idle(x):\n"
    "    idle[0] += 1\n"
    "u.irq(on_idle, u.IRQ_RXIDLE)\n"
    "print('open')\n"
)
# every byte value, so nothing is lost to a text or line discipline
PATTERN = bytes(range(256))


def host_sends(board, data, cycles):
    return board.call("uart", hex=data.hex(), cycles=int(cycles))


def board_sent(board, cycles=MS):
    return bytes.fromhex(board.call("uart", cycles=int(cycles))["hex"])


def test_board_to_host_every_byte_value(board):
    assert board.exec(OPEN, max_cycles=50 * MS).strip() == "open"
    board.exec("u.write(bytes(range(256)))\nu.flush()", max_cycles=50 * MS)
    got = board_sent(board)
    assert got == PATTERN


def test_host_to_board_with_rxidle(board):
    board.exec(OPEN, max_cycles=50 * MS)
    # 3 x 256 bytes: more than the 32-byte RX FIFO holds, so the feeder must wait on it
    host_sends(board, PATTERN * 3, 0)
    # 768 bytes at 921600 baud take ~8.3 ms; run until all are in and the line went idle
    for _ in range(40):
        r = board.call("uart", cycles=MS)
        if r["pending"] == 0:
            break
    assert r["pending"] == 0
    board.run(MS)
    got = board.eval("(u.read(), idle[0])", max_cycles=50 * MS)
    assert got[0] == PATTERN * 3
    # the receive timeout fired at least once, after the line went quiet
    assert got[1] >= 1


def test_echo_both_ways(board):
    board.exec(OPEN, max_cycles=50 * MS)
    board.exec(
        "def echo(x):\n"
        "    d = u.read()\n"
        "    if d:\n"
        "        u.write(d.upper())\n"
        "u.irq(echo, u.IRQ_RXIDLE)\n",
        max_cycles=50 * MS,
    )
    host_sends(board, b"ping over uart0", 0)
    got = b""
    for _ in range(40):
        got += board_sent(board)
        if len(got) >= 15:
            break
    assert got == b"PING OVER UART0"


def test_upstream_uart_livelocks(board):
    # upstream rp2040js re-raises the TX interrupt as soon as it is cleared: UART(0) never opens
    board.call("uart_fixes", on=False)
    with pytest.raises(HarnessError, match="did not finish"):
        board.exec("import machine\nu = machine.UART(0, 921600)\nprint('open')", max_cycles=20 * MS)


def test_without_receive_timeout_rxidle_never_fires(board):
    # only the TX fix: data arrives, but IRQ_RXIDLE (network.PPP's reader) is never called
    board.call("uart_fixes", on=True, rx=False)
    board.exec(OPEN, max_cycles=50 * MS)
    host_sends(board, b"twelve bytes", 5 * MS)
    got = board.eval("(u.read(), idle[0])", max_cycles=50 * MS)
    assert got == (b"twelve bytes", 0)
