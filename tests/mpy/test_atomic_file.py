# iotlib.atomic_file: every crash point of a write leaves the old or the new content.
import os

from check import eq, true
from iotlib import atomic_file as af
from standins import rm_tree, scratch_dir


def _dir():
    return scratch_dir("af")


def test_write_then_read_newest():
    d = _dir()
    p = d + "/s.json"
    eq(af.read_json(p), None, "nothing yet")
    af.write_json(p, {"v": 1})
    af.write_json(p, {"v": 2})
    eq(af.read_json(p), {"v": 2}, "newest")
    true(af.exists(p + af.OLD), "previous copy kept")
    true(not af.exists(p + af.NEW), "no temporary left")
    rm_tree(d)


def test_crash_points_leave_old_or_new():
    d = _dir()
    p = d + "/s.json"
    af.write_json(p, {"v": 1})
    # crash after the new copy is written, before any rename
    with open(p + af.NEW, "w") as f:
        f.write('{"v": 2}')
    eq(af.read_json(p), {"v": 1}, "before renames")
    # crash between the two renames: no file at the path
    os.rename(p, p + af.OLD)
    eq(af.read_json(p), {"v": 1}, "between renames")
    os.rename(p + af.NEW, p)
    eq(af.read_json(p), {"v": 2}, "after")
    rm_tree(d)


def test_torn_copy_is_skipped():
    d = _dir()
    p = d + "/s.json"
    af.write_json(p, {"v": 1, "n": {"a": 1}})
    af.write_json(p, {"v": 2, "n": {"a": 2}})
    with open(p, "w") as f:
        f.write('{"v": 3, "n": {"a": 3}')  # json.loads on MicroPython would accept this
    eq(af.read_json(p), {"v": 1, "n": {"a": 1}}, "falls back to the old copy")
    eq(af.read_json(p, lambda o: o["v"] == 9), None, "check rejects both")
    rm_tree(d)


def test_complete():
    for text, whole in ((b'{"a": "}"}', True), (b'{"a": "\\\\"}', True), (b'{"a": "\\"}"', False),
                        (b'[1, [2]]\n', True), (b'[1, [2]', False), (b'{} {}', False), (b'', False)):
        eq(af.complete(text), whole, repr(text))


def test_append_line_counts_writes():
    d = _dir()
    p = d + "/log"
    n = af.writes
    af.append_line(p, "a")
    af.append_line(p, b"b")
    eq(open(p).read(), "a\nb\n", "lines")
    eq(af.writes - n, 2, "writes counted")
    rm_tree(d)
