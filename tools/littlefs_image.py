"""A littlefs2 image of an RP2040 board's filesystem, built on the host, as a UF2.

    python tools/littlefs_image.py --out fs.uf2 [--firmware firmware.uf2] [FILE[=NAME] ...]

Puts each FILE at /NAME (default: its base name) in a littlefs2 filesystem with the geometry
the rp2 port of MicroPython 1.25 gives RPI_PICO, and writes the filesystem's programmed pages as
UF2 blocks at its place in flash. With --firmware the firmware's blocks come first and the
output is one UF2 holding both: what a board holds after a stock UF2 was flashed and the files
were copied to it (e.g. with mpremote cp). Needs littlefs-python (tools/requirements.txt).

The geometry, and where it comes from in ports/rp2:
  flash size 2 MB            PICO_FLASH_SIZE_BYTES of the pico board (pico-sdk boards/pico.h)
  filesystem 1408 KB at the end of flash: offset 0xa0000
                             MICROPY_HW_FLASH_STORAGE_BYTES (boards/RPI_PICO), ..._BASE
                             = flash size - storage bytes (rp2_flash.c), no ROMFS in 1.25;
                             --storage-kb for other boards (RELAYS_PICO_PPP: 848, at 0x12c000)
  block 4096 B, 352 blocks   rp2.Flash block size FLASH_SECTOR_SIZE (rp2_flash.c)
  read 32, prog 256, lookahead 32
                             modules/_boot.py: vfs.VfsLfs2(bdev, progsize=256), readsize and
                             lookahead at their defaults (extmod/vfs_lfs.c)
  on-disk version 2.1        littlefs 2.8 in lib/littlefs (LFS2_DISK_VERSION)
"""

import argparse
import struct
import sys
from pathlib import Path

FLASH_BASE = 0x10000000  # XIP address of flash offset 0
FLASH_BYTES = 2 * 1024 * 1024
STORAGE_BYTES = 1408 * 1024
STORAGE_OFFSET = FLASH_BYTES - STORAGE_BYTES
BLOCK_SIZE = 4096
READ_SIZE, PROG_SIZE, LOOKAHEAD = 32, 256, 32
DISK_VERSION = 0x00020001

UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
UF2_FAMILY_PRESENT = 0x2000
RP2040_FAMILY = 0xE48BFF56
UF2_PAYLOAD = 256  # bytes of flash per UF2 block, as picotool writes them


def littlefs_image(files, storage_bytes=STORAGE_BYTES):
    """The whole filesystem region (storage_bytes) holding files: {name: bytes}."""
    from littlefs import LittleFS

    fs = LittleFS(block_size=BLOCK_SIZE, block_count=storage_bytes // BLOCK_SIZE,
                  read_size=READ_SIZE, prog_size=PROG_SIZE, lookahead_size=LOOKAHEAD,
                  disk_version=DISK_VERSION)
    for name, data in files.items():
        with fs.open(name, "wb") as f:
            f.write(data)
    fs.unmount()
    image = bytes(fs.context.buffer)
    assert len(image) == storage_bytes, len(image)
    return image


def uf2_blocks(path):
    """(address, payload) of every main-flash block of a UF2 file."""
    data = Path(path).read_bytes()
    if not data or len(data) % 512:
        raise ValueError(f"{path}: not a UF2 file (size {len(data)})")
    out = []
    for off in range(0, len(data), 512):
        m0, m1, flags, addr, size = struct.unpack_from("<5I", data, off)
        end = struct.unpack_from("<I", data, off + 508)[0]
        if (m0, m1, end) != UF2_MAGIC:
            raise ValueError(f"{path}: bad UF2 magic in block {off // 512}")
        if not flags & 1:  # "not main flash" blocks are skipped, as a bootloader does
            out.append((addr, data[off + 32:off + 32 + size]))
    return out


def image_blocks(image, offset=STORAGE_OFFSET):
    """UF2 (address, payload) pairs for the programmed pages of a filesystem image; pages
    still erased (all 0xff) are left out, as flash reads them as 0xff anyway."""
    blank = b"\xff" * UF2_PAYLOAD
    return [(FLASH_BASE + offset + i, image[i:i + UF2_PAYLOAD])
            for i in range(0, len(image), UF2_PAYLOAD) if image[i:i + UF2_PAYLOAD] != blank]


def uf2_bytes(blocks):
    out = bytearray()
    for n, (addr, payload) in enumerate(blocks):
        head = struct.pack("<8I", UF2_MAGIC[0], UF2_MAGIC[1], UF2_FAMILY_PRESENT, addr,
                           len(payload), n, len(blocks), RP2040_FAMILY)
        out += head + payload + b"\0" * (476 - len(payload)) + struct.pack("<I", UF2_MAGIC[2])
    return bytes(out)


def build(out, files, firmware=None, storage_bytes=STORAGE_BYTES):
    """Writes the UF2 (firmware blocks first if given); returns the image's byte counts.
    storage_bytes: the board's MICROPY_HW_FLASH_STORAGE_BYTES (the filesystem ends at the
    end of flash)."""
    offset = FLASH_BYTES - storage_bytes
    image = littlefs_image(files, storage_bytes)
    fs = image_blocks(image, offset)
    fw = uf2_blocks(firmware) if firmware else []
    if fw:
        top = max(a + len(p) for a, p in fw) - FLASH_BASE
        if top > offset:
            raise ValueError(f"{firmware}: the firmware reaches 0x{top:x}, past the "
                             f"filesystem at 0x{offset:x}")
    data = uf2_bytes(fw + fs)
    Path(out).write_bytes(data)
    return {"uf2": len(data), "filesystem": len(image), "programmed": len(fs) * UF2_PAYLOAD}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the UF2 to write")
    ap.add_argument("--firmware", help="a firmware UF2 to put first in the output")
    ap.add_argument("--storage-kb", type=int, default=STORAGE_BYTES // 1024,
                    help="the board's filesystem size in KB (default: RPI_PICO's 1408)")
    ap.add_argument("files", nargs="*", help="FILE or FILE=NAME, stored as /NAME")
    args = ap.parse_args(argv)
    files = {}
    for spec in args.files:
        src, _, name = spec.partition("=")
        name = name or Path(src).name
        if not name or "/" in name.strip("/"):
            ap.error(f"{spec}: NAME must be a plain file name")
        files[name.strip("/")] = Path(src).read_bytes()
    storage = args.storage_kb * 1024
    if storage % BLOCK_SIZE or not 0 < storage < FLASH_BYTES:
        ap.error(f"--storage-kb {args.storage_kb}: not a whole number of 4 KB blocks inside flash")
    sizes = build(args.out, files, args.firmware, storage)
    print(f"{args.out}: {sizes['uf2']} bytes; littlefs2 {sizes['filesystem']} bytes at flash "
          f"0x{FLASH_BYTES - storage:x} ({sizes['programmed']} bytes programmed) with "
          f"{', '.join('/' + n for n in files) or 'no files'}")


if __name__ == "__main__":
    sys.exit(main())
