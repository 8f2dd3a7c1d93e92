"""The stock RPI_PICO firmware (`make firmware-stock`) with a littlefs image built on the host
(tools/littlefs_image.py): the board mounts the image as its own filesystem, the natmod is
imported from it byte for byte, and without the .mpy in the image there is no relaygpio at all,
so test_natmod_armv6m.py's stock-uf2 tests cannot pass on anything but the file they put there."""

import hashlib

import pytest

import littlefs_image
from harness import BoardError, Emulator
from test_natmod_armv6m import NATMOD, load_natmod

# what our own firmware freezes or builds in (python/manifest.py, cmodules/): none on stock
OURS = ["relaygpio", "pyrelaygpio", "iotlib", "relays_controller", "microdot", "main"]


@pytest.fixture
def stock_board(request, stock_with_files):
    """stock_board({name: bytes}) -> the stock firmware at its prompt, those files in flash."""
    boards = []

    def boot(files):
        uf2, sizes = stock_with_files(files)
        board = Emulator(uf2)
        boards.append(board)
        board.prompt()
        board.natmod_in_flash = True
        board.sizes = sizes
        return board

    yield boot
    for b in boards:
        b.close()


@pytest.fixture
def natmod_bytes():
    if not NATMOD.exists():
        pytest.fail(f"no armv6m natmod at {NATMOD}: build it with `make natmod`")
    return NATMOD.read_bytes()


def test_natmod_in_flash_is_the_built_file(stock_board, stock_uf2, natmod_bytes):
    board = stock_board({"relaygpio.mpy": natmod_bytes})
    assert board.eval("__import__('os').listdir('/')") == ["relaygpio.mpy"]
    # the filesystem the board mounted has the rp2 port's geometry: 352 blocks of 4096 bytes
    bsize, _, blocks = board.eval("__import__('os').statvfs('/')[:3]")
    assert (bsize, blocks) == (littlefs_image.BLOCK_SIZE,
                               littlefs_image.STORAGE_BYTES // littlefs_image.BLOCK_SIZE)
    digest = board.eval(
        "__import__('binascii').hexlify(__import__('hashlib').sha256("
        "open('/relaygpio.mpy', 'rb').read()).digest()).decode()")
    assert digest == hashlib.sha256(natmod_bytes).hexdigest()
    load_natmod(board)
    assert board.eval("relaygpio_sio.Bank([2]).get(0)") is False
    print(f"\n[hil] stock RPI_PICO UF2 {stock_uf2.stat().st_size:,} bytes; with a littlefs2 image "
          f"holding the {len(natmod_bytes):,}-byte natmod: {board.sizes['uf2']:,} bytes "
          f"({board.sizes['programmed']:,} bytes of the {board.sizes['filesystem']:,}-byte "
          f"filesystem programmed at flash 0x{littlefs_image.STORAGE_OFFSET:x})")


def test_without_the_mpy_there_is_no_relaygpio(stock_board):
    board = stock_board({"notes.txt": b"no natmod here\n"})
    assert board.eval("__import__('os').listdir('/')") == ["notes.txt"]  # the image is mounted
    for name in OURS:
        err = board.exec_raw(f"import {name}\n")["err"]
        assert f"ImportError: no module named '{name}'" in err, (name, err)
    with pytest.raises(BoardError, match="no module named 'relaygpio'"):
        load_natmod(board)
