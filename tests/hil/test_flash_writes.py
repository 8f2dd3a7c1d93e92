"""Flash program and erase on the emulated board (flash_writes.mjs): what MicroPython writes to
its littlefs filesystem lands in flash at the filesystem's offset, reads back after a remount,
a soft reset, a watchdog reset and a cold start, and mounts on the host with littlefs-python;
rp2.Flash's erase and program follow SPI NOR rules. With the emulation off the same write is
lost, as on upstream rp2040js."""

from littlefs import LittleFS, UserContext

import littlefs_image as L

FS = L.STORAGE_OFFSET  # the filesystem's offset in flash on RPI_PICO (0xa0000)
BLOCK = L.BLOCK_SIZE

# a file over two littlefs blocks, and a text file, written by the board
DATA = bytes((i * 7 + 3) & 0xFF for i in range(5000))
TEXT = "kept across mounts\n"
WRITE = (
    "data = bytes((i * 7 + 3) & 0xff for i in range(5000))\n"
    "with open('/data.bin', 'wb') as f:\n"
    "    f.write(data)\n"
    f"with open('/x', 'w') as f:\n"
    f"    f.write({TEXT!r})\n"
)
REMOUNT = (
    "import vfs, rp2\n"
    "vfs.umount('/')\n"
    "vfs.mount(vfs.VfsLfs2(rp2.Flash(), progsize=256), '/')\n"
)
CHECK = (
    "import os\n"
    "data = bytes((i * 7 + 3) & 0xff for i in range(5000))\n"
    "print(sorted(os.listdir('/')))\n"
    "print(open('/data.bin', 'rb').read() == data, repr(open('/x').read()))\n"
)
READ_BACK = f"['data.bin', 'x']\nTrue {TEXT!r}\n"


def host_mount(image):
    """The filesystem region read from the board, mounted by littlefs-python with the rp2
    geometry."""
    return LittleFS(context=UserContext(buffer=bytearray(image)), block_size=BLOCK,
                    block_count=L.STORAGE_BYTES // BLOCK, read_size=L.READ_SIZE,
                    prog_size=L.PROG_SIZE)


def test_the_filesystem_is_where_the_host_looks(board):
    geometry = "(__import__('rp2').Flash().ioctl(4, 0), __import__('rp2').Flash().ioctl(5, 0))"
    assert board.eval(geometry) == (L.STORAGE_BYTES // BLOCK, BLOCK)
    # the board formatted its empty filesystem at boot: the superblock is in flash
    head = board.flash_read(FS, 2 * BLOCK)
    assert head[8:16] == b"littlefs" or head[BLOCK + 8:BLOCK + 16] == b"littlefs"
    assert board.flash_writes()["programs"] > 0


def test_a_file_reads_back_after_remount_soft_reset_reset_and_power_on(board):
    before = board.flash_writes()
    board.exec(WRITE)
    after = board.flash_writes()
    assert after["on"] and after["programs"] > before["programs"], after
    assert board.exec(REMOUNT + CHECK) == READ_BACK

    board.call("write", data="\x02\x04")  # leave the raw REPL, soft reset
    board.call("wait_text", text="soft reboot")
    board.prompt()
    assert board.exec(CHECK) == READ_BACK

    r = board.exec_raw("import machine\nmachine.reset()\n")
    assert r.get("reset"), r  # a watchdog reset: a new chip, the same flash
    board.prompt()
    assert board.exec(CHECK) == READ_BACK

    board.call("power_on")
    board.prompt()
    assert board.exec(CHECK) == READ_BACK
    print(f"\n[hil] flash writes: {board.flash_writes()}")


def test_the_bytes_land_in_the_filesystem_region_and_mount_on_the_host(board):
    firmware = board.flash_read(0, FS)
    board.exec(WRITE)
    image = board.flash_read(FS, L.STORAGE_BYTES)
    fs = host_mount(image)
    assert sorted(fs.listdir("/")) == ["data.bin", "x"]
    with fs.open("data.bin", "rb") as f:
        assert f.read() == DATA
    with fs.open("x", "r") as f:
        assert f.read() == TEXT
    assert board.flash_read(0, FS) == firmware, "nothing written outside the filesystem"
    # what the board reads through XIP is what the host reads from flash
    hexblock = board.exec("import rp2, binascii\nb = bytearray(4096)\nrp2.Flash().readblocks(0, b)\n"
                          "print(binascii.hexlify(b).decode())")
    assert bytes.fromhex(hexblock.strip()) == image[:BLOCK]


ERASE_PROGRAM = """
import rp2, vfs, binascii
vfs.umount('/')
f = rp2.Flash()
blk = f.ioctl(4, 0) - 1
buf = bytearray(4096)
def show(label):
    f.readblocks(blk, buf)
    print(label, binascii.hexlify(buf).decode())
f.ioctl(6, blk)
show('erased')
a = bytes(0xf0 if i % 2 else 0x3c for i in range(4096))
f.writeblocks(blk, a, 0)
show('a')
f.writeblocks(blk, bytes(0x0f if i % 3 else 0xff for i in range(4096)), 0)
show('a&b')
f.ioctl(6, blk)
show('again')
"""


def test_rp2_flash_erase_gives_ff_and_program_only_clears_bits(board):
    out = dict(line.split() for line in board.exec(ERASE_PROGRAM).splitlines())
    blk = L.STORAGE_BYTES // BLOCK - 1
    a = bytes(0xF0 if i % 2 else 0x3C for i in range(BLOCK))
    b = bytes(0x0F if i % 3 else 0xFF for i in range(BLOCK))
    expect = {"erased": b"\xff" * BLOCK, "a": a, "a&b": bytes(x & y for x, y in zip(a, b)),
              "again": b"\xff" * BLOCK}
    for label, want in expect.items():
        assert bytes.fromhex(out[label]) == want, label
    assert board.flash_read(FS + blk * BLOCK, BLOCK) == b"\xff" * BLOCK


def test_a_64k_erase_and_a_page_program_that_wraps(board):
    # rp2.Flash.writeblocks(block, buf) erases first: 64 KB aligned and long is one D8h erase
    blk = L.STORAGE_BYTES // BLOCK - 16
    assert (FS + blk * BLOCK) % 0x10000 == 0
    n0 = board.flash_writes()
    board.exec(f"import rp2, vfs\nvfs.umount('/')\nrp2.Flash().writeblocks({blk}, bytes(65536))\n")
    n1 = board.flash_writes()
    assert (n1["erases"] - n0["erases"], n1["erased"] - n0["erased"]) == (1, 65536)
    assert board.flash_read(FS + blk * BLOCK, 65536) == bytes(65536)
    # a page program from the middle of a page wraps to its start, as the chip does
    board.exec(f"rp2.Flash().ioctl(6, {blk})\n"
               f"rp2.Flash().writeblocks({blk}, bytes(range(256)), 0x80)\n")
    page = board.flash_read(FS + blk * BLOCK, 512)
    assert page[:256] == bytes(range(128, 256)) + bytes(range(128)), page[:256].hex()
    assert page[256:] == b"\xff" * 256


def test_the_unique_id_comes_from_the_flash_chip(board):
    # pico-sdk reads it at boot with command 4Bh (4 dummy bytes, then 8 id bytes)
    assert board.eval("__import__('machine').unique_id()") == bytes.fromhex("e6605838832c312a")


def test_with_the_emulation_off_the_write_is_lost(board):
    region = board.flash_read(FS, L.STORAGE_BYTES)
    off = board.flash_writes(on=False)
    assert not off["on"]
    board.exec_raw(WRITE)  # littlefs may notice (an OSError) or not: either way nothing is kept
    assert board.flash_writes()["programs"] == off["programs"]
    assert board.flash_read(FS, L.STORAGE_BYTES) == region
    assert board.exec(REMOUNT + "import os\nprint(os.listdir('/'))") == "[]\n"
    # on again: the same write is kept
    assert board.flash_writes(on=True)["on"]
    board.exec(WRITE)
    assert board.exec(REMOUNT + CHECK) == READ_BACK
