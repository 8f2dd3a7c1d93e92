# A TLS listener that holds at most `sessions` TLS sessions at once.
#
# asyncio's start_server(ssl=...) wraps every accepted socket at once: each wrap takes mbedtls's
# ~16.7 KB input buffer in one piece of the heap, so four clients at once on an RP2040 run out
# of memory and are closed by the accept loop with a traceback. Here the TCP connection is
# accepted plain (a few hundred bytes in lwIP) and waits in line for a session slot; only then
# is it wrapped and handed to `handler(reader, writer)` as asyncio would. A freed slot goes to
# the oldest waiter from another address than the one that freed it and holding no slot (else
# to the oldest), so one address that keeps the line full of stalled connections delays a
# client from elsewhere by one session, not by all of its own.
#
#   lst = TlsListener(ctx, handler, sessions=1, waiting=8, per_address=4, wait_ms=10000,
#                     streams=1)
#   await lst.serve("0.0.0.0", 443)
#
# A handler whose answer lasts (an event stream) calls writer.yield_slot(): its session then
# keeps its slot only until a connection waits for one, and is closed to make way (at most
# `streams` such sessions; False beyond). So the heap never holds more than `sessions` TLS
# sessions, and an open web page does not hold off the other clients.
#
# A connection is closed unread when `waiting` connections already wait, when its address
# already has `per_address` connections waiting or in a session, or when no slot came within
# wait_ms. The handler's own deadlines bound how long a session holds its slot.
import gc
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import logger
from iotlib.rest_api import client_ip

_log = logger.get("tls")
# at most one "TLS session failed to start" line per this many ms (a flood must not flood the log)
FAIL_LOG_MS = 10000
# a session whose buffers found no heap tries again after this long (until wait_ms)
HEAP_RETRY_MS = 100


class TlsListener:
    def __init__(self, ctx, handler, sessions=1, waiting=8, per_address=4, wait_ms=10000,
                 streams=1):
        self.ctx = ctx
        self.handler = handler
        self.set_limits(sessions, waiting, per_address, wait_ms, streams)
        self._streams = []    # sessions streaming (stream.yield_slot()), oldest first
        self.active = 0       # slots taken (sessions, and waiters a slot was just handed to)
        self._line = []       # [event, ip] of the connections waiting, oldest first
        self._ips = {}        # ip -> connections waiting or in a session
        self._holding = {}    # ip -> slots it holds
        self.server = None
        # counters: sessions started, those that waited first, closed unread (line full, one
        # address over its share, no slot in time), wraps retried for heap, and sessions that
        # failed to start (no heap within wait_ms)
        self.started = self.waited = self.turned_away = self.timed_out = self.failed = 0
        self.heap_waits = self.evicted = 0
        self._fail_next = 0

    def set_limits(self, sessions, waiting, per_address, wait_ms, streams=1):
        self.sessions = sessions
        self.max_streams = streams
        self.waiting = waiting
        self.per_address = per_address
        self.wait_ms = wait_ms

    async def serve(self, host, port):
        self.server = await asyncio.start_server(self._accepted, host, port)
        try:
            await self.server.wait_closed()
        finally:
            self.server.close()
            self.server = None

    async def _accepted(self, reader, writer):
        ip = client_ip(reader.get_extra_info("peername"))
        n = self._ips.get(ip, 0)
        if n >= self.per_address or (self.active >= self.sessions
                                     and len(self._line) >= self.waiting):
            self.turned_away += 1
            await _close(reader)
            return
        self._ips[ip] = n + 1
        try:
            if self.active < self.sessions:
                self.active += 1
                self._hold(ip, 1)
            elif not await self._wait_turn(ip):
                self.timed_out += 1
                await _close(reader)
                return
            sess = _Session()
            try:
                await self._session(reader, ip, sess)
            except asyncio.CancelledError:
                if not sess.evicted:
                    raise  # the server is stopping
            finally:
                if sess in self._streams:
                    self._streams.remove(sess)
                if sess.evicted:  # its handler was cancelled before it closed the stream
                    await _close(sess.stream)
                self._release(ip)
        finally:
            n = self._ips[ip] - 1
            if n:
                self._ips[ip] = n
            else:
                del self._ips[ip]

    async def _wait_turn(self, ip):
        # -> True once a slot was handed over (self.active already counts it)
        self.waited += 1
        entry = [asyncio.Event(), ip]
        self._line.append(entry)
        if self._streams:  # a stream holds a slot: it makes way
            self._evict()
        try:
            await asyncio.wait_for_ms(entry[0].wait(), self.wait_ms)
        except asyncio.TimeoutError:
            pass
        except BaseException:  # cancelled (server shutdown): a slot handed over goes back
            if entry in self._line:
                self._line.remove(entry)
            elif entry[0].is_set():
                self._release(ip)
            raise
        if entry in self._line:
            self._line.remove(entry)
        return entry[0].is_set()  # set just as the wait timed out: the slot is ours all the same

    def _hold(self, ip, n):
        n += self._holding.get(ip, 0)
        if n:
            self._holding[ip] = n
        else:
            del self._holding[ip]

    def _release(self, ip):
        # ip's slot passes to the oldest waiter from another address holding none, else to
        # the oldest waiter, or is freed
        self._hold(ip, -1)
        line = self._line
        if not line or self.active > self.sessions:  # (fewer sessions since a new config)
            self.active -= 1
            return
        i = 0
        for k in range(len(line)):
            other = line[k][1]
            if other != ip and other not in self._holding:
                i = k
                break
        entry = line.pop(i)
        self._hold(entry[1], 1)
        entry[0].set()

    async def _session(self, reader, ip, sess):
        # the session's buffers may not fit while another TLS session (the platform client's)
        # holds its own: collect, and try again until wait_ms has passed
        give_up = time.ticks_add(time.ticks_ms(), self.wait_ms)
        while True:
            try:
                s = self.ctx.wrap_socket(reader.s, server_side=True,
                                         do_handshake_on_connect=False)
                break
            except (OSError, MemoryError) as e:  # out of heap for the session's buffers
                gc.collect()
                if time.ticks_diff(give_up, time.ticks_ms()) <= 0:
                    self.failed += 1
                    self._log_failure(e)
                    await _close(reader)
                    return
                self.heap_waits += 1
                await asyncio.sleep_ms(HEAP_RETRY_MS)
        self.started += 1
        s.setblocking(False)
        stream = sess.stream = asyncio.StreamReader(s, reader.e)
        sess.task = asyncio.current_task()

        def yield_slot():
            # a long-lived answer (the web page's event stream) keeps its slot only while no
            # one waits: it is closed for the next waiter (the page connects again). False
            # when max_streams sessions already stream.
            if sess in self._streams:
                return True
            if len(self._streams) >= self.max_streams:
                return False
            self._streams.append(sess)
            if self._line:  # someone already waits: make way once this task is not running
                asyncio.create_task(self._evict_later())
            return True
        stream.yield_slot = yield_slot
        await self.handler(stream, stream)

    async def _evict_later(self):
        if self._streams and self._line:
            self._evict()

    def _evict(self):
        # the oldest stream gives its slot to the line
        sess = self._streams.pop(0)
        sess.evicted = True
        self.evicted += 1
        sess.task.cancel()

    def _log_failure(self, e):
        now = time.ticks_ms()
        if time.ticks_diff(now, self._fail_next) >= 0:
            self._fail_next = time.ticks_add(now, FAIL_LOG_MS)
            _log.warning("TLS session failed to start", error=e, failed=self.failed,
                         sessions=self.sessions)

    def close(self):
        if self.server is not None:
            self.server.close()


class _Session:
    # one TLS session: its stream, its task, and whether it was closed to make way
    def __init__(self):
        self.stream = self.task = None
        self.evicted = False


async def _close(stream):
    try:
        await stream.aclose()
    except OSError:
        pass
