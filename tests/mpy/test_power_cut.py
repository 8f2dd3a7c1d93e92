# iotlib.atomic_file's power-cut injection leaves what a real cut leaves: a torn write keeps
# none of its data, a torn flush half of it, a torn rename or remove is not done, and nothing
# after the cut reaches the files. Then a reader finds the old or the new version, and a log
# loses only its torn last line. (tests/e2e/test_power_cut.py cuts every write of the device.)
from check import eq, true
from iotlib import atomic_file as af
from standins import rm_tree, scratch_dir


def _cut(k, fn):
    # run fn with the power cut at its k-th mutating operation -> the trace of operations
    af.ops = 0
    af.cut_at = k
    af.trace = []
    try:
        try:
            fn()
        except af.PowerCut:
            return af.trace
        raise AssertionError("no cut at operation %d" % k)
    finally:
        af.cut_at = 0
        af.trace = None


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def test_every_cut_of_a_replace_leaves_old_or_new():
    d = scratch_dir("cut")
    p = d + "/s.json"
    af.write_json(p, {"v": 1})
    af.ops = 0
    af.trace = []
    af.write_json(p, {"v": 2})
    kinds = [t.split()[0] for t in af.trace]
    af.trace = None
    eq(kinds, ["write", "flush", "rename", "rename"], "the operations of a replace")
    for k in range(1, len(kinds) + 1):
        af.write_json(p, {"v": 1})
        af.delete(p + af.OLD)
        _cut(k, lambda: af.write_json(p, {"v": 2}))
        true(af.read_json(p) in ({"v": 1}, {"v": 2}), "cut %d: %r" % (k, af.read_json(p)))
        if k == 1:
            eq(_read(p + af.NEW), b"", "a torn write: held data never reached the file")
        if k == 2:
            eq(_read(p + af.NEW), b'{"v"', "a torn flush: half of the data landed")
        if k == 3:
            true(af.exists(p) and not af.exists(p + af.OLD), "a torn rename is not done")
        if k == 4:
            true(not af.exists(p) and af.exists(p + af.NEW), "between the renames")
            eq(af.read_json(p), {"v": 1}, "the previous copy is read")
    rm_tree(d)


def test_nothing_is_written_after_the_cut():
    d = scratch_dir("cut")
    p = d + "/s.json"
    af.write_json(p, {"v": 1})

    def two_writes():
        try:
            af.write_json(p, {"v": 2})
        except BaseException:
            pass  # an application handler swallowing the cut must not write on
        af.write_json(d + "/other.json", {"v": 3})
    _cut(3, two_writes)
    true(not af.exists(d + "/other.json"), "a write after the cut reached the file")
    eq(af.read_json(p), {"v": 1}, "the cut rename left the old copy")
    rm_tree(d)


def test_torn_log_line_dropped_before_the_next_append():
    d = scratch_dir("cut")
    p = d + "/log"
    af.append_line(p, '{"n": 1}')
    _cut(2, lambda: af.append_line(p, '{"n": 2, "long": "' + "x" * 40 + '"}'))
    true(not _read(p).endswith(b"\n"), "the flush was torn mid-line")
    eq(af.trim_torn_tail(p), 9, "size without the torn line")
    af.append_line(p, '{"n": 3}')
    eq(_read(p), b'{"n": 1}\n{"n": 3}\n', "whole lines only, none glued to a torn one")
    true(not af.exists(p + af.OLD), "no copy left beside the log")
    eq(af.trim_torn_tail(d + "/none"), 0, "no file")
    rm_tree(d)


def test_stream_goes_to_flash_in_bounded_pieces():
    d = scratch_dir("cut")
    p = d + "/img"
    af.ops = 0
    af.trace = []
    with af.create(p) as f:
        for i in range(5):
            f.write(bytes([i]) * 1500)
    flushes = [t for t in af.trace if t.startswith("flush")]
    af.trace = None
    eq(len(flushes), 2, "held at most FLUSH_BYTES before each flush (and the rest on close)")
    eq(_read(p), b"".join(bytes([i]) * 1500 for i in range(5)), "the whole stream")
    rm_tree(d)


def test_update_cut_during_install_is_fetched_again_not_marked_bad():
    from test_ota import Device, Platform, _with_folder
    from standins import run

    def body(d):
        p = Platform()
        dev = Device(d, p)

        def cut_after_image_moved(path, meta):
            af.rename(path, dev.app.path + ".img")
            raise af.PowerCut("cut before the version record")
        dev.ota.apply_hook = cut_after_image_moved
        try:
            run(dev.ota.check())
            raise AssertionError("the cut did not stop the install")
        except af.PowerCut:
            pass
        dev = Device(d, p)
        eq(dev.ota.version, "1.0.0", "the old version still runs")
        eq(dev.ota.boot(), "interrupted", "boot after the cut")
        eq(dev.state().get("bad"), None, "the image is not marked bad")
        eq(dev.alarm_keys(), ["ota.interrupted"], "the operator is told")
        eq(run(dev.ota.check()), "applied", "fetched and installed again")
        eq(dev.app.read(), "1.1.0", "installed")
    _with_folder(body)
