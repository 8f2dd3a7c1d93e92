"""Fixtures for the hardware-in-loop tests: an emulated RP2040 booted from a UF2.

HIL_UF2 picks the UF2 (default: the one `make firmware` builds). Every test gets a freshly
powered-on board, so cycle counts are from that board's reset."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, BoardError, Emulator  # noqa: E402

DEFAULT_UF2 = ROOT / ".cache" / "build" / "rp2-RPI_PICO" / "firmware.uf2"
UF2 = Path(os.environ.get("HIL_UF2", DEFAULT_UF2))

_relaygpio_missing = {}


@pytest.fixture(scope="session")
def uf2():
    if not UF2.exists():
        pytest.skip(f"no firmware at {UF2}: build it with `make firmware` (or set HIL_UF2)")
    return UF2


@pytest.fixture
def emulator(uf2):
    """A powered-on board, not yet at its prompt (for tests that watch the boot)."""
    emu = Emulator(uf2)
    yield emu
    emu.close()


@pytest.fixture
def board(emulator):
    """A board at its REPL prompt."""
    emulator.prompt()
    return emulator


def _relaygpio_reason(emu):
    key = str(emu.uf2)
    if key not in _relaygpio_missing:
        try:
            impl = emu.eval("__import__('relaygpio').IMPL")
            _relaygpio_missing[key] = None if impl == "c" else f"relaygpio.IMPL is {impl!r}, not the C module"
        except BoardError as e:
            _relaygpio_missing[key] = f"this firmware has no relaygpio module ({e.args[0].splitlines()[-1]})"
    return _relaygpio_missing[key]


def require_relaygpio(emu):
    reason = _relaygpio_reason(emu)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def rboard(board):
    """A board at its prompt whose firmware has the relaygpio C module (else: skip)."""
    require_relaygpio(board)
    return board
