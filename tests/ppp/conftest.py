"""Fixtures for the on-chip network tests: the RELAYS_PICO_PPP UF2 in the emulated RP2040, its
UART0 joined to a PPP peer and libslirp (link.py). PPP_UF2 picks the UF2."""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "hil"))

from harness import ROOT  # noqa: E402
from link import OPEN_PPP, WAIT_UP, BoardCode, PPPBoard  # noqa: E402, F401

UF2 = Path(os.environ.get("PPP_UF2", ROOT / ".cache" / "build" / "rp2-RELAYS_PICO_PPP" / "firmware.uf2"))
@pytest.fixture(scope="session")
def ppp_uf2():
    if not UF2.exists():
        pytest.fail(f"no firmware at {UF2}: build it with `make firmware BOARD=RELAYS_PICO_PPP`")
    return UF2


@pytest.fixture
def ppp_board(ppp_uf2, tmp_path):
    """A booted board at its prompt with the link's host end ready (PPP not yet started)."""
    b = PPPBoard(ppp_uf2, log=tmp_path / "emulator.log")
    b.emu.prompt()
    yield b
    b.close()


@pytest.fixture
def online(ppp_board):
    """A board whose PPP link is up (IPCP done), with the pump running."""
    assert ppp_board.emu.exec(OPEN_PPP).strip() == "connecting"
    ppp_board.start()
    ppp_board.wait_for(lambda: ppp_board.peer.ip_up, 60, "PPP up on the host's end")
    # the device's end is up once lwIP has taken the last IPCP Ack (bounded wait on the chip)
    out, err = BoardCode(ppp_board, WAIT_UP).result(60)
    assert (out.strip(), err) == ("True", "")
    return ppp_board
