# Every flash write of the application goes through here.
# write(): the new content goes to <path>.new (flushed, fsync'd where the port can), the current
# file becomes <path>.old, then <path>.new becomes <path>. Renames are atomic on littlefs and
# POSIX, so a crash at any point leaves the old or the new content readable: read() takes
# <path>, else <path>.old, skipping any copy the caller's check rejects.
# append_line(): logs are appended one whole line per write; a crash can cost the last line.
import os

try:
    import json
except ImportError:
    import ujson as json

NEW = ".new"
OLD = ".old"
writes = 0  # flash writes made (a wear counter for metrics)


def _sync(f):
    f.flush()
    fsync = getattr(os, "fsync", None)  # CPython; MicroPython's VFS commits on close
    if fsync is not None:
        try:
            fsync(f.fileno())
        except (AttributeError, OSError):
            pass


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _rename(src, dst):
    try:
        os.rename(src, dst)  # replaces dst on POSIX and littlefs
    except OSError:
        _remove(dst)  # FAT cannot rename over a file
        os.rename(src, dst)


def write(path, data):
    global writes
    if isinstance(data, str):
        data = data.encode()
    tmp = path + NEW
    with open(tmp, "wb") as f:
        n = f.write(data)
        _sync(f)
    if n is not None and n != len(data):
        _remove(tmp)
        raise OSError("short write to %s: %d of %d bytes" % (tmp, n, len(data)))
    if exists(path):
        _rename(path, path + OLD)
    _rename(tmp, path)
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
        _remove(p)


def append_line(path, line):
    global writes
    if isinstance(line, str):
        line = line.encode()
    with open(path, "ab") as f:
        f.write(line + b"\n")
    writes += 1


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
