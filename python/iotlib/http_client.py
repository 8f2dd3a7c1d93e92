# A small HTTP/1.1 client on asyncio streams: one connection per request
# (Connection: close), Content-Length, chunked and read-to-close bodies, every size bounded.
#   resp = await request("GET", url, headers={...}, timeout_ms=5000)
#   resp.status, resp.headers (lower-case names), resp.body (bytes), resp.json()
# Transport, timeout and parse failures raise HTTPError (an OSError); an HTTP error status is
# a normal response for the caller to judge.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
try:
    import json
except ImportError:
    import ujson as json
import gc
try:
    from errno import errorcode
except ImportError:
    errorcode = {}
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

MAX_LINE = const(2048)      # status and header lines
MAX_HEADERS = const(40)     # per response head, and per chunked trailer
MAX_HEAD = const(8192)      # all header lines of one response head together
MAX_INTERIM = const(4)      # 1xx answers skipped before the final one
MAX_BODY = 16384            # default body limit; request(..., max_body=n) to change
_CHUNK = const(1024)
_MAX_HEX_DIGITS = const(8)  # a chunk size: 8 hex digits is 4 GB, far above any body limit
_MAX_DEC_DIGITS = const(10)

received = 0                # bytes read from the network by this client, all requests

_link_check = None          # callable -> False while the network is known to be down
_tls_context = None         # tls.SSLContext for https, set by the application

# mbedtls takes a ~16.7 KB input and a ~4.4 KB output buffer per session, each in one piece of
# the GC heap. On a board a long-running heap keeps enough free bytes but no piece that big
# (seen on the RP2040: 82 KB free, largest piece 13.5 KB, every handshake ENOMEM). So https
# sessions run one at a time, and reserve_tls_heap() holds a block for them between sessions.
TLS_RESERVE = 24 * 1024
# the input buffer in GC blocks: MBEDTLS_SSL_IN_BUFFER_LEN 16,717 B (MicroPython 1.25's
# mbedtls config) + 8 B of m_tracked_calloc's list node, in 16 B blocks
TLS_RESERVE_MIN = const(16736)
_reserve_size = 0
_reserve = None
_tls_lock = asyncio.Lock()
tls_sessions = 0            # https exchanges begun (for the counters)
tls_waits = 0               # ... that waited for another one to end first


class HTTPError(OSError):
    pass


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, TypeError):
            raise HTTPError("response %d body is not JSON (%d bytes)" % (self.status, len(self.body)))

    def __repr__(self):
        return "<Response %d, %d bytes>" % (self.status, len(self.body))


def set_link_check(fn):
    # NetworkManager installs its link state here so requests fail fast with no WiFi.
    global _link_check
    _link_check = fn


def set_tls_context(ctx):
    # e.g. ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT); ctx.verify_mode = tls.CERT_REQUIRED;
    # ctx.load_verify_locations(ca_der_bytes)
    global _tls_context
    _tls_context = ctx


def reserve_tls_heap(size=TLS_RESERVE):
    # at start-up on a board, before the heap fragments; size 0 gives the block back for good
    global _reserve, _reserve_size
    _reserve = None
    _reserve_size = size
    _retake()


def _retake():
    # the largest block up to the reserve's size: where the last session's input buffer was
    # there is always room for the next one, even when small objects took the rest
    global _reserve
    if not _reserve_size or _reserve is not None:
        return
    size = _reserve_size
    while True:
        try:
            _reserve = bytearray(size)
            return
        except MemoryError:
            if size == TLS_RESERVE_MIN:
                return  # taken again when a later session ends
            size = max(size - 1024, TLS_RESERVE_MIN)


def _default_tls():
    import tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED  # no silent downgrade: load a CA or set a context
    return ctx


def split_url(url):
    # -> (scheme, host, port, path); http and https only
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise HTTPError("unsupported URL %r (http:// or https:// only)" % url)
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    port = 443 if scheme == "https" else 80
    if hostport.startswith("["):  # IPv6 literal
        j = hostport.find("]")
        host, tail = hostport[1:j], hostport[j + 1:]
        if tail.startswith(":"):
            port = int(tail[1:])
    elif ":" in hostport:
        host, _, p = hostport.rpartition(":")
        try:
            port = int(p)
        except ValueError:
            raise HTTPError("bad port in URL %r" % url)
    else:
        host = hostport
    if not host:
        raise HTTPError("no host in URL %r" % url)
    return scheme, host, port, path


class _Reader:
    # Buffered reads over a stream with hard limits (stream.readline() has none).
    def __init__(self, s):
        self.s = s
        self.buf = b""

    async def _fill(self):
        d = await self._read(_CHUNK)
        self.buf += d

    async def _read(self, n):
        global received
        d = await self.s.read(n)
        if not d:
            raise EOFError
        received += len(d)
        return d

    async def line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = self.buf[:i + 1]
                self.buf = self.buf[i + 1:]
                return line
            if len(self.buf) > MAX_LINE:
                raise HTTPError("response line longer than %d bytes" % MAX_LINE)
            await self._fill()

    async def exact(self, n):
        parts = []
        have = len(self.buf)
        if have >= n:
            out = self.buf[:n]
            self.buf = self.buf[n:]
            return out
        parts.append(self.buf)
        self.buf = b""
        while have < n:
            d = await self._read(min(_CHUNK * 4, n - have))
            parts.append(d)
            have += len(d)
        return b"".join(parts)

    async def rest(self, limit):
        parts = [self.buf]
        have = len(self.buf)
        self.buf = b""
        while True:
            try:
                d = await self._read(_CHUNK)
            except EOFError:
                return b"".join(parts)
            have += len(d)
            if have > limit:
                raise HTTPError("response body exceeds %d bytes" % limit)
            parts.append(d)


def _errname(e):
    if len(e.args) > 1 and isinstance(e.args[1], str):
        return e.args[1]  # mbedtls: (-30336, 'MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED')
    n = e.errno if hasattr(e, "errno") else (e.args[0] if e.args else None)
    if isinstance(n, int):
        return errorcode.get(n, "errno %d" % n)
    return str(e) or type(e).__name__


async def _exchange(method, scheme, host, port, path, body, headers, max_body, what):
    ssl = None
    if scheme == "https":
        ssl = _tls_context or _default_tls()
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl) if ssl else \
            await asyncio.open_connection(host, port)
    except OSError as e:
        raise HTTPError("%s: cannot connect to %s:%d: %s" % (what, host, port, _errname(e)))
    try:
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (
            method, path, host if port in (80, 443) else "%s:%d" % (host, port))
        for k in headers:
            head += "%s: %s\r\n" % (k, headers[k])
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head += "Content-Length: %d\r\n" % (len(body) if body else 0)
        try:
            writer.write(head.encode() + b"\r\n")
            if body:
                writer.write(body)
            await writer.drain()
            r = _Reader(reader)
            for _ in range(MAX_INTERIM + 1):
                status, reason = _status(await r.line(), what)
                hdrs = await _headers(r, what)
                if status >= 200:
                    break  # skip 1xx interim answers
            else:
                raise HTTPError("%s: more than %d interim (1xx) answers" % (what, MAX_INTERIM))
            te = hdrs.get("transfer-encoding")
            if te is not None and te.lower() != "chunked":
                raise HTTPError("%s: unsupported Transfer-Encoding %r" % (what, te[:40]))
            if te is not None and "content-length" in hdrs:
                # two framings for one body: which one a proxy used is unknowable (smuggling)
                raise HTTPError("%s: both Transfer-Encoding and Content-Length" % what)
            if method == "HEAD" or status in (204, 304):
                data = b""
            elif te is not None:
                data = await _chunked(r, max_body)
            elif "content-length" in hdrs:
                n = _digits(hdrs["content-length"], 10, _MAX_DEC_DIGITS, "Content-Length")
                if n > max_body:
                    raise HTTPError("%s: response body of %d bytes exceeds %d" % (what, n, max_body))
                data = await r.exact(n)
                if r.buf:
                    raise HTTPError("%s: response body longer than its Content-Length %d"
                                    % (what, n))
            else:
                data = await r.rest(max_body)
        except EOFError:
            raise HTTPError("%s: connection closed before the response was complete" % what)
        except HTTPError as e:
            msg = e.args[0] if e.args else ""
            raise HTTPError(msg if msg.startswith(what) else "%s: %s" % (what, msg))
        except OSError as e:
            raise HTTPError("%s: %s" % (what, _errname(e)))
        except ValueError as e:  # mbedtls reports a refused certificate this way; also bad UTF-8
            text = " ".join(str(e).split())
            raise HTTPError("%s: %s%s" % (what, "TLS: " if ssl else "malformed response: ", text))
        return Response(status, reason, hdrs, data)
    finally:
        try:
            writer.close()
            if ssl:
                _retake()  # close() freed the session's buffers: take the block before others run
            await writer.wait_closed()
        except Exception:
            pass


def _status(line, what):
    parts = line.decode().strip().split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HTTPError("%s: malformed status line %r" % (what, line[:60]))
    try:
        status = int(parts[1])
    except ValueError:
        raise HTTPError("%s: malformed status %r" % (what, parts[1][:10]))
    return status, parts[2] if len(parts) > 2 else ""


def _digits(text, base, max_digits, what):
    # int() takes signs, blanks, underscores and 0x prefixes: a size is bare digits only
    text = text.strip() if isinstance(text, str) else text.strip().decode()
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if not 0 < len(text) <= max_digits:
        raise HTTPError("bad %s %r (1 to %d digits)" % (what, text[:20], max_digits))
    for c in text:
        if c not in allowed:
            raise HTTPError("bad %s %r (digits only)" % (what, text[:20]))
    return int(text, base)


async def _headers(r, what):
    hdrs = {}
    count = size = 0
    while True:
        line = await r.line()
        if line in (b"\r\n", b"\n"):
            return hdrs
        count += 1
        size += len(line)
        if count > MAX_HEADERS:
            raise HTTPError("%s: more than %d response headers" % (what, MAX_HEADERS))
        if size > MAX_HEAD:
            raise HTTPError("%s: response head longer than %d bytes" % (what, MAX_HEAD))
        k, sep, v = line.decode().partition(":")
        if not sep:
            raise HTTPError("%s: malformed header line %r" % (what, line[:60]))
        k = k.strip().lower()
        v = v.strip()
        if k == "content-length" and k in hdrs and hdrs[k] != v:
            raise HTTPError("%s: conflicting Content-Length headers" % what)
        hdrs[k] = v


async def _chunked(r, max_body):
    parts = []
    total = 0
    while True:
        n = _digits((await r.line()).split(b";")[0], 16, _MAX_HEX_DIGITS, "chunk size")
        if n == 0:
            for _ in range(MAX_HEADERS):
                if (await r.line()) in (b"\r\n", b"\n"):
                    return b"".join(parts)  # trailers are ignored
            raise HTTPError("more than %d trailer lines" % MAX_HEADERS)
        if n > max_body - total:
            raise HTTPError("response body exceeds %d bytes" % max_body)
        total += n
        parts.append(await r.exact(n))
        if await r.exact(2) != b"\r\n":
            raise HTTPError("chunk of %d bytes not followed by CRLF" % n)


async def request(method, url, body=None, headers=None, timeout_ms=5000, max_body=None):
    # body: bytes, str, or a dict/list sent as JSON (Content-Type set when not given).
    what = "%s %s" % (method, url)
    scheme, host, port, path = split_url(url)
    hdrs = {}
    if headers:
        for k in headers:
            hdrs[k] = headers[k]
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        if not _has(hdrs, "content-type"):
            hdrs["Content-Type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    if _link_check is not None and not _link_check():
        raise HTTPError("%s: no network link" % what)
    run = _tls_exchange if scheme == "https" else _exchange
    try:
        return await asyncio.wait_for_ms(
            run(method, scheme, host, port, path, body, hdrs,
                MAX_BODY if max_body is None else max_body, what), timeout_ms)
    except asyncio.TimeoutError:
        raise HTTPError("%s: no complete response within %d ms" % (what, timeout_ms))


async def _tls_exchange(*args):
    global _reserve, tls_sessions, tls_waits
    tls_sessions += 1
    if _tls_lock.locked():
        tls_waits += 1
    async with _tls_lock:
        if _reserve is not None:
            _reserve = None
            gc.collect()  # the block is free only once collected
        try:
            return await _exchange(*args)
        finally:
            _retake()  # the session's buffers are freed when its socket closes


def _has(hdrs, name):
    for k in hdrs:
        if k.lower() == name:
            return True
    return False
