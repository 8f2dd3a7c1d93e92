"""Fixtures for the hardware-in-loop tests: an emulated RP2040 booted from a UF2.

HIL_UF2 picks the UF2 (default: the one `make firmware` builds). Every test gets a freshly
powered-on board, so cycle counts are from that board's reset.

HIL_STOCK_UF2 picks the stock firmware (default: the one `make firmware-stock` builds) that the
natmod tests boot with a littlefs image built on the host (tools/littlefs_image.py)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "tools"))

import littlefs_image  # noqa: E402
from harness import ROOT, BoardError, Emulator  # noqa: E402

DEFAULT_UF2 = ROOT / ".cache" / "build" / "rp2-RPI_PICO" / "firmware.uf2"
UF2 = Path(os.environ.get("HIL_UF2", DEFAULT_UF2))
DEFAULT_STOCK_UF2 = ROOT / ".cache" / "build" / "rp2-RPI_PICO-stock" / "firmware.uf2"
STOCK_UF2 = Path(os.environ.get("HIL_STOCK_UF2", DEFAULT_STOCK_UF2))

_relaygpio_missing = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "network: needs a network link to the board (left out "
                            "where the board has none, e.g. the Pico W on the emulator)")


@pytest.fixture(scope="session")
def uf2():
    if not UF2.exists():
        pytest.fail(f"no firmware at {UF2}: build it with `make firmware` (or set HIL_UF2)")
    return UF2


@pytest.fixture(scope="session")
def stock_uf2():
    if not STOCK_UF2.exists():
        pytest.fail(f"no stock firmware at {STOCK_UF2}: build it with `make firmware-stock` "
                    "(or set HIL_STOCK_UF2)")
    return STOCK_UF2


@pytest.fixture(scope="session")
def stock_with_files(stock_uf2, tmp_path_factory):
    """stock_with_files({name: bytes}) -> a UF2 of the stock firmware plus a littlefs image
    holding those files, as a user's board holds them after copying them over."""
    made = {}

    def make(files):
        key = tuple(sorted((n, hash(d)) for n, d in files.items()))
        if key not in made:
            out = tmp_path_factory.mktemp("stock-fs") / "firmware-with-fs.uf2"
            made[key] = (out, littlefs_image.build(out, files, firmware=stock_uf2))
        return made[key]

    return make


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
        pytest.fail(reason)


@pytest.fixture
def rboard(board):
    """A board at its prompt whose firmware has the relaygpio C module (else: skip)."""
    require_relaygpio(board)
    return board
