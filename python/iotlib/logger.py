# Structured JSON-lines logger: levels, size-based rotation with a kept count, secret masking
# and an audit trail of relay changes (audit lines are never filtered by level).
#
#   from iotlib import logger
#   logger.info("registered", tenant=t)          # module-level, for every manager
#   log = logger.get("auth"); log.warning("...")  # the same, with "mod": "auth" on each line
#   logger.add_secret(jwt)                       # never written anywhere from now on
#   logger.audit("relay", relay="pump", old=False, new=True, subject="op", source="api")
#
# A line: {"ts": unix s, "up": ms since boot, "lvl": "info", "msg": "...", ...fields}.
import time

try:
    import asyncio
except ImportError:
    asyncio = None

try:
    import json
except ImportError:
    import ujson as json

from iotlib import atomic_file

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
MASK = "***"
MAX_FIELD = 400  # longer strings are cut (after masking, so a cut never exposes a secret)
# field names whose values are secret whatever they hold
SECRET_NAMES = ("password", "passwd", "secret", "token", "authorization", "device_key",
                "api_key", "proof", "jwt")
MIN_SECRET = 6   # shorter strings would mask ordinary words
MAX_TEMP = 8     # forms of rotating secrets kept (a JWT gives two)
AUDIT_MAX_LINES = 16    # audit lines written in one append at most...
AUDIT_MAX_AGE_MS = 500  # ...and none waits longer than this (docs/device_app.md: crash window)
_T0 = time.ticks_ms()


_SECRET_NAME = {}   # field name -> _is_secret_name(name): the same few names on every line
_SECRET_NAME_MAX = 64


def _is_secret_name(name):
    hit = _SECRET_NAME.get(name)
    if hit is not None:
        return hit
    low = name.lower()
    hit = False
    for s in SECRET_NAMES:
        if s in low:
            hit = True
            break
    if len(_SECRET_NAME) < _SECRET_NAME_MAX:  # bounded: nested dicts bring names from data
        _SECRET_NAME[name] = hit
    return hit


class Logger:
    def __init__(self, path=None, level="info", max_bytes=16384, keep=3, echo=True,
                 buffer_bytes=0, audit_path=None, ticks_ms=None):
        self.path = path
        self.audit_path = audit_path
        self._ticks_ms = ticks_ms or time.ticks_ms  # tests pass the loop's virtual clock
        self.level = LEVELS.get(level, 20)
        self.max_bytes = max_bytes
        self.keep = keep
        self.echo = echo
        self.buffer_bytes = buffer_bytes  # > 0 batches flash writes (wear); warnings flush at once
        self._secrets = []
        self._temp = []
        self._buf = []
        self._buf_len = 0
        self._sizes = {}
        self._abuf = []     # audit lines waiting (only inside a running event loop)
        self._abuf_t0 = 0
        self._aflusher = None  # the flusher's event, once its task runs
        self.audit_appends = 0  # appends of audit lines to the file (one per batch)
        self.lines = 0
        self.dropped = 0  # lines that could not be written
        for p in (path, audit_path):
            if p:  # at boot: a line torn by a power cut goes before anything is appended
                try:
                    self._sizes[p] = atomic_file.trim_torn_tail(p)
                except OSError:
                    pass

    # ---- configuration ----

    def set_level(self, level):
        if level in LEVELS:
            self.level = LEVELS[level]

    def set_rotation(self, max_bytes=None, keep=None):
        if max_bytes:
            self.max_bytes = max_bytes
        if keep:
            self.keep = keep

    def add_secret(self, s, temporary=False):
        # temporary: a rotating value (a JWT); only the newest MAX_TEMP of those stay listed
        if s is None:
            return
        if isinstance(s, (bytes, bytearray)):
            s = bytes(s).decode()
        s = str(s)
        if len(s) < MIN_SECRET:
            return
        forms = [s]
        esc = json.dumps(s)[1:-1]  # as it appears inside a JSON string
        if esc != s:
            forms.append(esc)
        if s.count(".") == 2:  # a JWT: its signature alone is enough to mask
            sig = s[s.rfind(".") + 1:]
            if len(sig) >= MIN_SECRET:
                forms.append(sig)
        for f in forms:
            if f not in self._secrets:
                self._secrets.append(f)
                if temporary:
                    self._temp.append(f)
        while len(self._temp) > MAX_TEMP:
            old = self._temp.pop(0)
            if old in self._secrets:
                self._secrets.remove(old)
        # longest first, so a secret containing another is masked whole
        self._secrets.sort(key=len, reverse=True)

    def mask(self, text):
        if len(text) < MIN_SECRET:
            return text  # no secret (nor its cut beginning) fits in it
        for s in self._secrets:
            if s in text:
                text = text.replace(s, MASK)
        # a secret's beginning at the very end: a value cut short (by us or by a peer)
        tail = text[-MIN_SECRET:]
        for s in self._secrets:
            if len(text) >= MIN_SECRET and tail in s:
                for k in range(min(len(s) - 1, len(text)), MIN_SECRET - 1, -1):
                    if text.endswith(s[:k]):
                        return text[:-k] + MASK
        return text

    # ---- lines ----

    def _value(self, name, v):
        t = type(v)
        if v is None or t is bool or t is int or t is float:
            return v
        if t is str:  # most fields: no walk through the isinstance chain below
            if name and _is_secret_name(name):
                return MASK
            v = self.mask(v)
            if len(v) > MAX_FIELD:
                v = self.mask(v[:MAX_FIELD]) + "..."
            return v
        if isinstance(v, (bool, int, float)):
            return v
        if name and _is_secret_name(name):
            return MASK
        if isinstance(v, (list, tuple)):
            return [self._value(None, x) for x in v]
        if isinstance(v, dict):
            return {str(k): self._value(str(k), v[k]) for k in v}
        if isinstance(v, (bytes, bytearray)):
            try:
                v = bytes(v).decode()
            except UnicodeError:
                v = repr(bytes(v))
        elif isinstance(v, BaseException):
            v = "%s: %s" % (type(v).__name__, v)
        elif not isinstance(v, str):
            v = str(v)
        v = self.mask(v)
        if len(v) > MAX_FIELD:
            v = self.mask(v[:MAX_FIELD]) + "..."
        return v

    def format(self, lvl, msg, fields):
        body = {}
        for k in fields:
            body[k] = self._value(k, fields[k])
        head = '{"ts":%d,"up":%d,"lvl":"%s","msg":%s' % (
            time.time(), time.ticks_diff(time.ticks_ms(), _T0), lvl,
            json.dumps(self._value(None, msg)))
        rest = json.dumps(body)
        line = head + ("," + rest[1:] if len(rest) > 2 else "}")
        return self.mask(line)  # last pass: secrets inside keys or nested text

    def log(self, lvl, msg, fields):
        n = LEVELS.get(lvl, 20)
        if n < self.level:
            return
        try:
            line = self.format(lvl, msg, fields)
        except Exception as e:  # a log call must never take the caller down
            line = '{"lvl":"error","msg":"unloggable record: %s"}' % type(e).__name__
        self._emit(line, self.path, n >= 30)

    def _emit(self, line, path, urgent):
        self.lines += 1
        if urgent and self._abuf:
            self.flush_audit()  # a warning or an error (reset requested...) keeps the order
        if self.echo:
            print(line)
        if path is None:
            return
        if self.buffer_bytes and path is self.path and not urgent:
            self._buf.append(line)
            self._buf_len += len(line) + 1
            if self._buf_len < self.buffer_bytes:
                return
        self._write(path, line)

    def _write(self, path, line):
        if path is self.path and self._buf:
            self._buf.append(line)
            line = "\n".join(self._buf)
            self._buf = []
            self._buf_len = 0
        try:
            size = self._sizes.get(path)
            if size is None:  # first append since boot: drop a line a power cut tore
                size = atomic_file.trim_torn_tail(path)
            if size and size + len(line) + 1 > self.max_bytes:
                self._rotate(path)
                size = 0
            atomic_file.append_line(path, line)
            self._sizes[path] = size + len(line) + 1
        except OSError:
            self.dropped += 1

    def _rotate(self, path):
        atomic_file.delete("%s.%d" % (path, self.keep))
        for i in range(self.keep - 1, 0, -1):
            try:
                atomic_file.rename("%s.%d" % (path, i), "%s.%d" % (path, i + 1))
            except OSError:
                pass
        atomic_file.rename(path, path + ".1")

    def flush(self):
        self.flush_audit()
        if self._buf and self.path:
            line = self._buf.pop()
            self._write(self.path, line)

    def flush_audit(self):
        if self._abuf:
            lines = "\n".join(self._abuf)
            self._abuf = []
            self.audit_appends += 1
            self._write(self.audit_path or self.path, lines)

    def audit(self, kind, **fields):
        fields["audit"] = kind
        line = self.format("info", kind, fields)
        path = self.audit_path or self.path
        if path is None or not _in_task():
            if path is not None:
                self.audit_appends += 1
            self._emit(line, path, True)  # outside the event loop: written at once
            return
        # batched: one append for up to AUDIT_MAX_LINES lines, none waiting longer than
        # AUDIT_MAX_AGE_MS; flush() (stop, controlled reset) and any warning/error line
        # write them at once
        self.lines += 1
        if self.echo:
            print(line)
        if self._abuf and time.ticks_diff(self._ticks_ms(), self._abuf_t0) >= AUDIT_MAX_AGE_MS:
            self.flush_audit()  # the flusher is late (a busy loop): keep the bound anyway
        buf = self._abuf
        buf.append(line)
        if len(buf) >= AUDIT_MAX_LINES:
            self.flush_audit()
        elif len(buf) == 1:
            self._abuf_t0 = self._ticks_ms()
            if self._aflusher is None:
                self._aflusher = asyncio.Event()
                asyncio.create_task(self._audit_flusher(self._aflusher))
            else:
                self._aflusher.set()

    async def _audit_flusher(self, ev):
        # one task per logger (none created per batch): waits for a batch, then sleeps until
        # its oldest line is due
        while True:
            wait = AUDIT_MAX_AGE_MS - time.ticks_diff(self._ticks_ms(), self._abuf_t0)
            if not self._abuf:
                ev.clear()
                await ev.wait()
            elif wait > 0:
                await asyncio.sleep_ms(wait)
            else:
                self.flush_audit()

    def debug(self, msg, **fields):
        self.log("debug", msg, fields)

    def info(self, msg, **fields):
        self.log("info", msg, fields)

    def warning(self, msg, **fields):
        self.log("warning", msg, fields)

    def error(self, msg, **fields):
        self.log("error", msg, fields)


def _in_task():
    # True inside a running asyncio task, where a flusher task can run later
    if asyncio is None:
        return False
    try:
        return asyncio.current_task() is not None
    except (RuntimeError, AttributeError):
        return False


class _Named:
    # the module logger with "mod": name on every line
    def __init__(self, name):
        self.name = name

    def debug(self, msg, **f):
        f["mod"] = self.name
        _root.log("debug", msg, f)

    def info(self, msg, **f):
        f["mod"] = self.name
        _root.log("info", msg, f)

    def warning(self, msg, **f):
        f["mod"] = self.name
        _root.log("warning", msg, f)

    def error(self, msg, **f):
        f["mod"] = self.name
        _root.log("error", msg, f)


_root = Logger()  # stdout only until setup()


def setup(**kw):
    # replaces the module logger, keeping the secrets already registered
    global _root
    old = _root
    old.flush()
    _root = Logger(**kw)
    _root._secrets = old._secrets
    _root._temp = old._temp
    return _root


def root():
    return _root


def get(name):
    return _Named(name)


def debug(msg, **f):
    _root.log("debug", msg, f)


def info(msg, **f):
    _root.log("info", msg, f)


def warning(msg, **f):
    _root.log("warning", msg, f)


def error(msg, **f):
    _root.log("error", msg, f)


def audit(kind, **f):
    _root.audit(kind, **f)


def add_secret(s, temporary=False):
    _root.add_secret(s, temporary)


def mask(text):
    # text that leaves the device another way (alarms, error answers): the log's masking
    return _root.mask(text)
