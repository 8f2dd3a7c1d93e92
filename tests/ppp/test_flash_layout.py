"""The PPP board's code stays below its filesystem. lwIP, PPP and mbedtls take the firmware past
the 640 KB that RPI_PICO leaves for code; with RPI_PICO's 1408 KB filesystem the board's first
boot would find no valid filesystem over its own code and format it (the build now refuses
such a UF2: tools/check_flash_layout.sh). Checked here against what the running firmware
reports for its filesystem, and the UF2's highest programmed byte."""

import sys

from harness import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import littlefs_image  # noqa: E402


def test_firmware_ends_below_the_filesystem_it_reports(ppp_board, ppp_uf2):
    emu = ppp_board.emu
    blocks, size = emu.eval("(lambda f: (f.ioctl(4, 0), f.ioctl(5, 0)))(__import__('rp2').Flash())")
    storage = blocks * size
    assert storage == 848 * 1024  # as on RPI_PICO_W
    fs_start = littlefs_image.FLASH_BYTES - storage
    top = max(a + len(p) for a, p in littlefs_image.uf2_blocks(ppp_uf2)) - littlefs_image.FLASH_BASE
    assert top <= fs_start, f"firmware reaches 0x{top:x}, filesystem starts at 0x{fs_start:x}"
    # and the filesystem the board formatted and mounted at its first boot is that region
    st = emu.eval("__import__('os').statvfs('/')")
    assert st[0] * st[2] == storage
