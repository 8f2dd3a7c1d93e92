# Every flash write of the application goes through here: whole-file replaces, log appends,
# streamed downloads, renames and removes. Nothing else in python/ calls open() for writing,
# os.rename or os.remove.
# write(): the new content goes to <path>.new (flushed, fsync'd where the port can), the current
# file becomes <path>.old, then <path>.new becomes <path>. Renames are atomic on littlefs and
# POSIX, so a crash at any point leaves the old or the new content readable: read() takes
# <path>, else <path>.old, skipping any copy the caller's check rejects.
# append_line(): logs are appended whole lines per write; a cut can leave a torn last line,
# which trim_torn_tail() drops at the next boot's first append, so no line is ever glued to it.
# Power-cut injection (tests only): with cut_at = k the k-th mutating operation (write, flush,
# rename, remove) is torn as a real cut tears it (a write's data never reaches flash, a flush
# lands half of it, a rename or remove is not done) and raises PowerCut; every later operation
# raises PowerCut too, so nothing more reaches the files.
import os

try:
    import json
except ImportError:
    import ujson as json

NEW = ".new"
OLD = ".old"
FLUSH_BYTES = 4096  # a stream holds at most this much before it goes to flash
writes = 0  # flash writes made (a wear counter for metrics)
ops = 0     # mutating operations made (write, flush, rename, remove)
cut_at = 0  # > 0: the power goes during this operation (tests)
trace = None  # a list: each mutating operation's "kind path" is appended (tests)


class PowerCut(BaseException):
    # not an Exception: no handler in the application may catch it and carry on writing
    pass


def _torn(kind, path):
    # counts one mutating operation -> True when the power goes during it
    global ops
    if cut_at and ops >= cut_at:
        raise PowerCut("power is off")
    ops += 1
    if trace is not None:
        trace.append(kind + " " + path)
    return ops == cut_at


def _sync(f):
    f.flush()
    fsync = getattr(os, "fsync", None)  # CPython; MicroPython's VFS commits on close
    if fsync is not None:
        try:
            fsync(f.fileno())
        except (AttributeError, OSError):
            pass


class Stream:
    # a file being written: data is held until flush(), as a page cache holds it
    def __init__(self, path, mode="wb"):
        self.path = path
        self._f = open(path, mode)
        self._held = []
        self._held_len = 0
        self.size = 0

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        if _torn("write", self.path):
            self._f.close()
            raise PowerCut("cut while writing %s" % self.path)  # held data is lost
        self._held.append(data)
        self._held_len += len(data)
        if self._held_len >= FLUSH_BYTES:
            self.flush()
        return len(data)

    def flush(self):
        if not self._held:
            return
        held, self._held, n = self._held, [], self._held_len
        self._held_len = 0
        if _torn("flush", self.path):
            data = b"".join(held)
            self._f.write(data[:len(data) // 2])
            self._f.close()
            raise PowerCut("cut while flushing %s" % self.path)
        for d in held:
            w = self._f.write(d)
            if w is not None and w != len(d):
                raise OSError("short write to %s: %d of %d bytes" % (self.path, w, len(d)))
        _sync(self._f)
        self.size += n

    def close(self):
        try:
            self.flush()
        finally:
            self._f.close()

    def discard(self):
        # close without writing what is held (the caller gives the file up)
        self._held = []
        self._held_len = 0
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.discard()


def create(path):
    # a stream that replaces path; for a download, not for a file that must stay whole
    return Stream(path, "wb")


def delete(path):
    # remove one file; a missing file is not an error -> True when it was removed
    if not exists(path):
        return False
    if _torn("remove", path):
        raise PowerCut("cut while removing %s" % path)
    try:
        os.remove(path)
        return True
    except OSError:
        return False



def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def rename(src, dst):
    if _torn("rename", src):
        raise PowerCut("cut while renaming %s to %s" % (src, dst))
    try:
        os.rename(src, dst)  # replaces dst on POSIX and littlefs
    except OSError:
        if not exists(src):
            raise
        delete(dst)  # FAT cannot rename over a file
        os.rename(src, dst)



def write(path, data):
    global writes
    if isinstance(data, str):
        data = data.encode()
    tmp = path + NEW
    with Stream(tmp) as f:
        f.write(data)
    if exists(path):
        rename(path, path + OLD)
    rename(tmp, path)
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()
    writes += 1


def read(path, check=None):
    # -> bytes of the newest readable copy that passes check(bytes) (which may raise), or None
    for p in (path, path + OLD):
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if check is None:
            return data
        try:
            if check(data) is not False:
                return data
        except Exception:
            pass
    return None


def write_json(path, obj):
    write(path, json.dumps(obj))


def complete(data):
    # MicroPython's json.loads accepts a truncated document ('{"a": 1' -> {'a': 1}), so a
    # torn copy must be caught here: an object or array text is whole only when its first
    # bracket closes exactly at its end.
    data = data.strip()
    if not data or data[0] not in b"{[":
        return False
    depth = 0
    in_str = esc = False
    last = len(data) - 1
    for i, c in enumerate(data):
        if in_str:
            if esc:
                esc = False
            elif c == 92:  # backslash
                esc = True
            elif c == 34:  # quote
                in_str = False
        elif c == 34:
            in_str = True
        elif c in (123, 91):
            depth += 1
        elif c in (125, 93):
            depth -= 1
            if depth == 0:
                return i == last
    return False


def read_json(path, check=None):
    # -> the newest whole copy that parses as JSON (and passes check(obj)), or None
    found = []

    def ok(data):
        if not complete(data):
            return False
        obj = json.loads(data)
        if check is not None and check(obj) is False:
            return False
        found.append(obj)
        return True

    return found[-1] if read(path, ok) is not None else None


def remove(path):
    for p in (path, path + NEW, path + OLD):
        delete(p)


def append_line(path, line):
    # one or more whole lines (joined by the caller), written with one flush
    global writes
    if isinstance(line, str):
        line = line.encode()
    with Stream(path, "ab") as f:
        f.write(line + b"\n")
    writes += 1


def trim_torn_tail(path):
    # -> the size of path once a line torn by a cut is dropped from its end (0: no file)
    try:
        size = os.stat(path)[6]
    except OSError:
        return 0
    if not size:
        return 0
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return size
        f.seek(0)
        data = f.read()
    keep = data[:data.rfind(b"\n") + 1]
    write(path, keep)
    delete(path + OLD)
    return len(keep)


def makedirs(path):
    # mkdir -p for MicroPython's os
    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/" if not cur else cur
            continue
        cur = cur + part if cur.endswith("/") or not cur else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass
