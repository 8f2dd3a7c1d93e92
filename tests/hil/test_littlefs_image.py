"""tools/littlefs_image.py on the host: the UF2 it writes holds a littlefs2 filesystem that
reads back with the rp2 geometry, only inside the filesystem's flash range, and bad input is
refused with a message naming the problem. (The board mounting it: test_stock_firmware.py.)"""

import struct

import pytest
from littlefs import LittleFS, UserContext

import littlefs_image as L

FS_START = L.FLASH_BASE + L.STORAGE_OFFSET
FS_END = L.FLASH_BASE + L.FLASH_BYTES


def read_back(blocks):
    image = bytearray(b"\xff" * L.STORAGE_BYTES)
    for addr, payload in blocks:
        assert FS_START <= addr and addr + len(payload) <= FS_END, hex(addr)
        image[addr - FS_START:addr - FS_START + len(payload)] = payload
    return LittleFS(context=UserContext(buffer=image), block_size=L.BLOCK_SIZE,
                    block_count=L.STORAGE_BYTES // L.BLOCK_SIZE, read_size=L.READ_SIZE,
                    prog_size=L.PROG_SIZE)


def test_files_read_back_with_the_rp2_geometry(tmp_path):
    files = {"relaygpio.mpy": bytes(range(256)) * 50, "a.txt": b"x"}
    out = tmp_path / "fs.uf2"
    sizes = L.build(out, files)
    data = out.read_bytes()
    assert sizes["uf2"] == len(data) and len(data) % 512 == 0
    n = len(data) // 512
    for i in range(n):
        flags, _, size, no, total, family = struct.unpack_from("<6I", data, 512 * i + 8)
        assert (flags, size, no, total, family) == (0x2000, 256, i, n, 0xE48BFF56)
    fs = read_back(L.uf2_blocks(out))
    assert sorted(fs.listdir("/")) == sorted(files)
    for name, content in files.items():
        with fs.open(name, "rb") as f:
            assert f.read() == content


def test_firmware_blocks_come_first_and_unchanged(tmp_path):
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(L.uf2_bytes([(L.FLASH_BASE, b"\x01" * 256), (L.FLASH_BASE + 256, b"\x02" * 256)]))
    out = tmp_path / "both.uf2"
    L.build(out, {"m.mpy": b"M"}, firmware=fw)
    blocks = L.uf2_blocks(out)
    assert blocks[:2] == L.uf2_blocks(fw)
    assert read_back(blocks[2:]).listdir("/") == ["m.mpy"]


def test_firmware_reaching_the_filesystem_is_refused(tmp_path):
    fw = tmp_path / "big.uf2"
    fw.write_bytes(L.uf2_bytes([(FS_START, b"\0" * 256)]))
    with pytest.raises(ValueError, match="past the filesystem at 0xa0000"):
        L.build(tmp_path / "out.uf2", {}, firmware=fw)
    assert not (tmp_path / "out.uf2").exists()


def test_not_a_uf2_is_refused(tmp_path):
    bad = tmp_path / "bad.uf2"
    bad.write_bytes(b"\0" * 512)
    with pytest.raises(ValueError, match="bad UF2 magic in block 0"):
        L.build(tmp_path / "out.uf2", {}, firmware=bad)
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not a UF2 file"):
        L.uf2_blocks(bad)


def test_file_names_must_be_plain(tmp_path, capsys):
    with pytest.raises(SystemExit):
        L.main(["--out", str(tmp_path / "o.uf2"), f"{__file__}=lib/x.mpy"])
    assert "NAME must be a plain file name" in capsys.readouterr().err
