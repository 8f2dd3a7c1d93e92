# iotlib.tls_listener on the unix build with real TLS sessions on 127.0.0.1: the listener
# wraps at most `sessions` connections at once, the others wait accepted, oldest first, and a
# full line, one address over its share or a wait past wait_ms closes the newcomer. The
# clients are MicroPython's own tls in the same event loop; the handler stands in for the REST
# app (the listener is what is under test). The server identity is a self-signed P-256 test
# certificate made for this file only.
import random
import socket
from binascii import a2b_base64

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import tls

from check import eq, true
from iotlib.tls_listener import TlsListener

CERT = a2b_base64("MIIBkDCCATWgAwIBAgIUXo8RlJHFDO3cN0tieUaaQOyVqigwCgYIKoZIzj0EAwIwHDEaMBgGA1UEAwwRdGxzLWxpc3RlbmVyLXRlc3QwIBcNMjYxMjA0MTMyNzM0WhgPMjEyNjExMTAxMzI3MzRaMBwxGjAYBgNVBAMMEXRscy1saXN0ZW5lci10ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExSRKgGMWk/0OzA4M6O+xRxQ7u3ZYrIZ2uWI6pY1PTWANrzxjoOfCrUn0/voDF8OaFElonueF6mALJpOl6bOpraNTMFEwHQYDVR0OBBYEFCTbijnk/EvakTq0gnLwUSl298VkMB8GA1UdIwQYMBaAFCTbijnk/EvakTq0gnLwUSl298VkMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAIFNQNceo52ttEYx0Dk6sK9C2HeU+9MALl0n5N2iTPtqAiEArEM2YM4ZSuhu4tE9hl9I/L/SeHfXSpc4ja+PZoy7uNQ=")
KEY = a2b_base64("MHcCAQEEIN6xddgeEnsc6qwSvpD30fsTSNOYQSYI5LgfQDDTY5hioAoGCCqGSM49AwEHoUQDQgAExSRKgGMWk/0OzA4M6O+xRxQ7u3ZYrIZ2uWI6pY1PTWANrzxjoOfCrUn0/voDF8OaFElonueF6mALJpOl6bOprQ==")

PORT0 = 20000 + random.getrandbits(14)   # a port per test from here: no two runs collide
_next = [PORT0]


def port():
    _next[0] += 1
    return _next[0]


def server_ctx():
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


def client_ctx():
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_NONE
    return ctx


class Holder:
    """The handler: answers each session with its arrival name once the test lets it go."""

    def __init__(self):
        self.served = []     # names in the order their sessions began
        self.active = 0
        self.most = 0        # most sessions in the handler at once
        self.gate = asyncio.Event()
        self.go = {}         # name -> its own gate, instead of the common one

    async def handle(self, reader, writer):
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            name = (await reader.readline()).strip()
            self.served.append(name)
            await self.go.get(name, self.gate).wait()
            await writer.awrite(b"ok " + name + b"\n")
            await writer.aclose()
        finally:
            self.active -= 1


def connect_from(src, port_):
    # a TLS stream to 127.0.0.1:port_ from the local address src (any 127.x.y.z on Linux)
    s = socket.socket()
    s.bind(socket.getaddrinfo(src, 0)[0][-1])
    s.connect(socket.getaddrinfo("127.0.0.1", port_)[0][-1])
    s.setblocking(False)
    ss = client_ctx().wrap_socket(s, do_handshake_on_connect=False)
    ss.setblocking(False)
    st = asyncio.StreamReader(ss)
    return st, st


async def client(port_, name, out, src=None):
    # -> out[name] = the answer line, or "closed" when the connection ended without one
    try:
        if src is None:
            r, w = await asyncio.open_connection("127.0.0.1", port_, ssl=client_ctx())
        else:
            r, w = connect_from(src, port_)
        await w.awrite(name + b"\n")
        line = await r.readline()
        out[name] = line.strip() if line else "closed"
        await w.aclose()
    except OSError:
        out[name] = "closed"


class Listening:
    """async with: a TlsListener on a fresh port with a Holder as its handler; arrive() starts
    clients one after the other (so the arrival order is known), their answers in .out."""

    def __init__(self, ctx=None, **limits):
        self.h = Holder()
        self.lst = TlsListener(ctx or server_ctx(), self.h.handle, **limits)
        self.port = port()
        self.out = {}

    async def __aenter__(self):
        self.task = asyncio.create_task(self.lst.serve("127.0.0.1", self.port))
        await asyncio.sleep_ms(20)
        return self

    async def __aexit__(self, *exc):
        self.lst.close()
        try:
            await asyncio.wait_for_ms(self.task, 1000)
        except (asyncio.CancelledError, asyncio.TimeoutError):
            pass

    async def arrive(self, *names, src=None, gap_ms=50):
        for n in names:
            asyncio.create_task(client(self.port, n, self.out, src))
            await asyncio.sleep_ms(gap_ms)


async def until(cond, ms=5000):
    for _ in range(ms // 10):
        if cond():
            return
        await asyncio.sleep_ms(10)
    raise AssertionError("timed out waiting")


def test_one_session_at_a_time_the_others_served_in_arrival_order():
    async def run():
        async with Listening(sessions=1) as t:
            h, lst = t.h, t.lst
            names = (b"a", b"b", b"c", b"d")
            await t.arrive(*names)
            await until(lambda: h.served == [b"a"] and len(lst._line) == 3)
            eq(lst.active, 1, "one slot taken while three wait")
            h.gate.set()
            await until(lambda: len(t.out) == 4)
            eq(t.out, {n: b"ok " + n for n in names}, "every client answered")
            eq(h.served, list(names), "oldest waiter first")
            eq(h.most, 1, "never two sessions at once")
            eq((lst.started, lst.waited, lst.turned_away, lst.timed_out, lst.failed),
               (4, 3, 0, 0, 0))
            eq(lst.active, 0, "the slot is free again")
    asyncio.run(run())


def test_a_freed_slot_goes_to_another_address_first():
    async def run():
        async with Listening(sessions=1) as t:
            h, lst = t.h, t.lst
            await t.arrive(b"a1", b"a2", b"a3", src="127.0.0.1")
            await t.arrive(b"b1", src="127.0.0.2")
            await until(lambda: h.served == [b"a1"] and len(lst._line) == 3)
            eq([e[1] for e in lst._line], ["127.0.0.1", "127.0.0.1", "127.0.0.2"])
            h.gate.set()
            await until(lambda: len(t.out) == 4)
            eq(h.served, [b"a1", b"b1", b"a2", b"a3"], "b1 before a1's own later connections")
            eq(sorted(t.out.values()), [b"ok a1", b"ok a2", b"ok a3", b"ok b1"])
            eq((lst.active, lst._holding, lst._ips), (0, {}, {}))
    asyncio.run(run())


def test_two_sessions_when_configured():
    async def run():
        async with Listening(sessions=2) as t:
            await t.arrive(b"a", b"b", b"c")
            await until(lambda: len(t.h.served) == 2 and len(t.lst._line) == 1)
            t.h.gate.set()
            await until(lambda: len(t.out) == 3)
            eq(t.h.most, 2)
            eq(sorted(t.out.values()), [b"ok a", b"ok b", b"ok c"])
    asyncio.run(run())


def test_a_full_line_closes_the_newcomer_unread():
    async def run():
        async with Listening(sessions=1, waiting=1) as t:
            await t.arrive(b"a", b"b", b"c")
            await until(lambda: b"c" in t.out)
            eq(t.out, {b"c": "closed"}, "the third: no wrap, no answer")
            eq(t.lst.turned_away, 1)
            t.h.gate.set()
            await until(lambda: len(t.out) == 3)
            eq((t.out[b"a"], t.out[b"b"]), (b"ok a", b"ok b"), "the waiter is still served")
            eq(t.lst.started, 2, "no session for the one turned away")
    asyncio.run(run())


def test_one_address_gets_its_share_only():
    async def run():
        async with Listening(sessions=1, waiting=8, per_address=2) as t:
            await t.arrive(b"a", b"b", b"c")
            await until(lambda: b"c" in t.out)
            eq(t.out[b"c"], "closed", "a third connection from 127.0.0.1")
            eq(t.lst._ips, {"127.0.0.1": 2})
            t.h.gate.set()
            await until(lambda: len(t.out) == 3)
            eq(t.lst._ips, {}, "nothing counted once they are gone")
    asyncio.run(run())


def test_a_wait_past_wait_ms_closes_the_waiter_and_keeps_the_slot_count():
    async def run():
        async with Listening(sessions=1, wait_ms=150) as t:
            lst = t.lst
            await t.arrive(b"a")
            await until(lambda: t.h.served == [b"a"])
            await t.arrive(b"b")
            await until(lambda: b"b" in t.out)
            eq(t.out[b"b"], "closed")
            eq((lst.timed_out, lst.active, lst._line), (1, 1, []))
            t.h.gate.set()
            await until(lambda: b"a" in t.out)
            eq(lst.active, 0)
            await t.arrive(b"c")  # and the next one is served at once
            await until(lambda: b"c" in t.out)
            eq((t.out[b"c"], lst.waited), (b"ok c", 1))
    asyncio.run(run())


class NoHeap:
    """A TLS context whose sessions find no heap (mbedtls's buffers not allocated)."""

    def wrap_socket(self, *a, **kw):
        raise OSError(12)


class HeapAfter:
    """A TLS context whose first `n` sessions find no heap, then the real one's."""

    def __init__(self, n):
        self.n = n
        self.real = server_ctx()

    def wrap_socket(self, *a, **kw):
        if self.n > 0:
            self.n -= 1
            raise MemoryError("memory allocation failed, allocating 16717 bytes")
        return self.real.wrap_socket(*a, **kw)


def test_a_session_short_of_heap_tries_again_and_is_served():
    async def run():
        async with Listening(HeapAfter(3), sessions=1, wait_ms=5000) as t:
            t.h.gate.set()
            await t.arrive(b"a")
            await until(lambda: b"a" in t.out)
            eq(t.out[b"a"], b"ok a")
            eq((t.lst.heap_waits, t.lst.failed, t.lst.started, t.lst.active), (3, 0, 1, 0))
    asyncio.run(run())


def test_a_session_that_cannot_start_frees_its_slot():
    async def run():
        async with Listening(NoHeap(), sessions=1, wait_ms=300) as t:
            lst = t.lst
            t.h.gate.set()
            await t.arrive(b"a", b"b", gap_ms=30)
            await until(lambda: len(t.out) == 2)
            eq(t.out, {b"a": "closed", b"b": "closed"})
            eq((lst.failed, lst.started, lst.active), (2, 0, 0))
            true(lst.heap_waits >= 2, "each tried again before giving up")
            lst.ctx = server_ctx()   # heap back: the next connection is served
            await t.arrive(b"c")
            await until(lambda: b"c" in t.out)
            eq((t.out[b"c"], lst.started), (b"ok c", 1))
    asyncio.run(run())


def test_waiters_cancelled_by_shutdown_leave_no_slot_taken():
    async def run():
        async with Listening(sessions=1) as t:
            lst = t.lst
            waiter = []
            orig = lst._wait_turn

            async def wait_turn(ip):
                waiter.append(asyncio.current_task())
                return await orig(ip)
            lst._wait_turn = wait_turn
            await t.arrive(b"a")
            await until(lambda: t.h.served == [b"a"])
            await t.arrive(b"b")
            await until(lambda: len(lst._line) == 1)
            waiter[0].cancel()
            await until(lambda: not lst._line)
            eq(lst.active, 1, "only a's slot")
            t.h.gate.set()
            await until(lambda: b"a" in t.out)
            eq(lst.active, 0)
    asyncio.run(run())


class Streamer(Holder):
    """A handler whose answers to names starting with "s" last, as the event stream's do:
    those sessions call yield_slot()."""

    def __init__(self):
        Holder.__init__(self)
        self.yielded = []   # (name, what yield_slot() said)

    async def handle(self, reader, writer):
        name = (await reader.readline()).strip()
        if name.startswith(b"s"):
            self.yielded.append((name, writer.yield_slot()))
        await Holder.handle(self, _Replay(name), writer)


class _Replay:
    # the line the Streamer already read, read again by Holder.handle
    def __init__(self, line):
        self.line = line

    async def readline(self):
        return self.line + b"\n"


def streaming(**limits):
    t = Listening(**limits)
    t.h = Streamer()
    t.lst.handler = t.h.handle
    return t


def test_a_stream_makes_way_for_a_waiting_client():
    async def run():
        async with streaming(sessions=1, streams=1) as t:
            lst = t.lst
            await t.arrive(b"s1")
            await until(lambda: t.h.served == [b"s1"])
            eq((lst.active, lst._streams[0].stream is not None), (1, True), "streams in its slot")
            await t.arrive(b"r")   # waits: the stream is closed to make way
            await until(lambda: b"s1" in t.out and t.h.served == [b"s1", b"r"])
            eq(t.out, {b"s1": "closed"}, "the stream ended, the request is being served")
            eq((lst.evicted, lst.active, lst._streams, lst.waited), (1, 1, [], 1))
            t.h.gate.set()
            await until(lambda: b"r" in t.out)
            eq((t.out[b"r"], lst.active), (b"ok r", 0))
    asyncio.run(run())


def test_a_stream_that_starts_while_others_wait_makes_way_at_once():
    async def run():
        async with streaming(sessions=1, streams=1) as t:
            t.h.go = {b"r1": asyncio.Event(), b"r2": asyncio.Event()}
            await t.arrive(b"r1")          # holds the slot until its gate opens
            await until(lambda: t.h.served == [b"r1"])
            await t.arrive(b"s1", b"r2")   # s1 gets the slot after r1, with r2 in line
            t.h.go[b"r1"].set()
            await until(lambda: b"s1" in t.out)
            t.h.go[b"r2"].set()
            await until(lambda: len(t.out) == 3)
            eq(t.out, {b"r1": b"ok r1", b"s1": "closed", b"r2": b"ok r2"})
            eq((t.h.yielded, t.lst.evicted), ([(b"s1", True)], 1))
    asyncio.run(run())


def test_streams_beyond_max_streams_are_refused():
    async def run():
        async with streaming(sessions=2, streams=1) as t:
            await t.arrive(b"s1", b"s2")
            await until(lambda: len(t.h.yielded) == 2)
            eq(t.h.yielded, [(b"s1", True), (b"s2", False)])
            t.h.gate.set()
            await until(lambda: len(t.out) == 2)
            eq((t.lst.active, t.lst._streams, t.lst.evicted), (0, [], 0))
    asyncio.run(run())
