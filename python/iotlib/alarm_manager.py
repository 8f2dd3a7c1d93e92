# AlarmManager: dedup, bounded offline buffer, batched delivery to POST /v1/alarms.
#
# Delivery is at-most-once per occurrence: a batch gets an id unique across boots
# and is frozen (no more merging into it) until a 2xx; a retry resends the same id
# and content, and the platform acknowledges a batch id it has seen without merging
# it again. Entries leave the buffer only after a 2xx (or a 4xx that says the
# batch can never be accepted, counted as rejected).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
try:
    import json
except ImportError:
    import ujson as json
import os
import sys
import time

from iotlib import logger

SEVERITIES = ("info", "warning", "error", "critical")
MAX_KEY = 128
MAX_MESSAGE = 1024
MAX_BATCH = 100  # the contract's limit per request

# entry fields (a list per alarm keeps RAM low)
_KEY, _SEV, _MSG, _COUNT, _FIRST, _LAST, _T0, _T1, _EXACT, _BATCH = range(10)


class _NullLog:
    def debug(self, msg, **kw):
        pass

    info = warning = error = debug


def _clean_key(key):
    key = str(key)
    out = "".join(c if " " <= c <= "~" else "?" for c in key)[:MAX_KEY]
    return out or "unnamed"


def describe_exception(exc, where=None):
    """(dedup_key, message) for an exception: the key names its type and innermost frame."""
    try:
        import io
        buf = io.StringIO()
        if hasattr(sys, "print_exception"):
            sys.print_exception(exc, buf)
        else:
            import traceback
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
        trace = buf.getvalue()
    except Exception:
        trace = ""
    frame = ""
    for line in trace.split("\n"):
        line = line.strip()
        if line.startswith('File "'):
            path, _, rest = line[6:].partition('"')
            lineno = rest.split("line ")[-1].split(",")[0].strip()
            frame = "%s:%s" % (path[path.rfind("/") + 1:], lineno)
    name = type(exc).__name__
    key = "exc.%s@%s" % (name, frame) if frame else "exc." + name
    msg = "%s: %s" % (name, exc)
    if where:
        msg += " (in %s)" % where
    if trace:
        msg += "\n" + trace
    return _clean_key(key), msg[:MAX_MESSAGE]


class AlarmManager:
    def __init__(self, auth=None, url=None, http=None, logger=None, clock=None, synced=None,
                 online=None, max_buffer=32, batch_size=20, window_s=300, flush_period_s=30,
                 coalesce_ms=500, retry_s=2, max_retry_s=120, timeout_ms=5000, boot_id=None,
                 ticks_ms=None):
        if not 1 <= batch_size < MAX_BATCH:
            raise ValueError("batch_size must be 1..%d" % (MAX_BATCH - 1))
        if max_buffer < 2:
            raise ValueError("max_buffer must be at least 2")
        self.auth = auth
        self._url = url
        self._http = http
        self.log = logger or _NullLog()
        self._clock = clock or time.time
        self._ticks_ms = ticks_ms or time.ticks_ms  # tests pass the loop's virtual clock
        self._synced = synced
        self._online = online
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.window_ms = window_s * 1000
        self.flush_period_ms = flush_period_s * 1000
        self.coalesce_ms = coalesce_ms
        self.retry_ms = retry_s * 1000
        self.max_retry_ms = max_retry_s * 1000
        self.timeout_ms = timeout_ms
        # 64 random bits: a batch id reused by a later boot would be acknowledged unmerged
        self.boot_id = boot_id or "".join("%02x" % b for b in os.urandom(8))
        self._seq = 0
        self._buf = []
        self._wire = None          # batch id of the request in progress
        self._backoff_ms = self.retry_ms
        self._retry_at = None      # ticks before which no retry is attempted
        self._urgent = False
        self._dropped_since = None  # [count, first_s, last_s] not yet reported
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.raised = 0
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.batches_sent = 0
        self.send_failures = 0

    # ---- raising ----

    def raise_alarm_nowait(self, key, message, severity="error"):
        """Record one occurrence; safe from any task or callback (never awaits, never raises)."""
        try:
            self._record(key, message, severity)
        except Exception as e:  # an alarm path that fails must not take its caller down
            self.log.error("alarm not recorded", key=str(key), error=repr(e))

    async def raise_alarm(self, key, message, severity="error"):
        self._record(key, message, severity)
        await asyncio.sleep_ms(0)

    def _now(self):
        return int(self._clock())

    def _clock_ok(self):
        return self._synced is None or bool(self._synced())

    def _record(self, key, message, severity):
        if severity not in SEVERITIES:
            severity = "error"
        key = _clean_key(key)
        # alarm texts leave the device: the secrets the log masks are masked here too
        message = logger.mask(str(message))[:MAX_MESSAGE]
        now_s = self._now()
        ticks = self._ticks_ms()
        self.raised += 1
        if severity == "critical":
            self._urgent = True
        for e in reversed(self._buf):
            if e[_KEY] == key and e[_BATCH] is None and \
                    time.ticks_diff(ticks, e[_T0]) < self.window_ms:
                e[_COUNT] += 1
                e[_LAST] = now_s
                e[_T1] = ticks
                e[_MSG] = message
                if SEVERITIES.index(severity) > SEVERITIES.index(e[_SEV]):
                    e[_SEV] = severity
                self._wake.set()
                return
        if len(self._buf) >= self.max_buffer:
            self._drop_oldest(now_s)
        self._buf.append([key, severity, message, 1, now_s, now_s, ticks, ticks,
                          self._clock_ok(), None])
        self.log.debug("alarm", key=key, severity=severity)
        self._wake.set()

    def _drop_oldest(self, now_s):
        # never touch the batch on the wire: its fate is decided by the answer
        for i, e in enumerate(self._buf):
            if e[_BATCH] is None or e[_BATCH] != self._wire:
                del self._buf[i]
                break
        else:
            return
        self.dropped += 1
        d = self._dropped_since
        if d is None:
            self._dropped_since = [1, now_s, now_s]
        else:
            d[0] += 1
            d[2] = now_s

    # ---- state for /metrics and tests ----

    def counters(self):
        return {"alarms_buffered": len(self._buf), "alarms_raised": self.raised,
                "alarms_sent": self.sent, "alarms_dropped": self.dropped,
                "alarms_rejected": self.rejected, "alarm_batches_sent": self.batches_sent,
                "alarm_send_failures": self.send_failures}

    def pending(self):
        """(key, count) of what is still buffered, oldest first."""
        return [(e[_KEY], e[_COUNT]) for e in self._buf]

    # ---- delivery ----

    def notify_online(self):
        """The network (or the platform) is back: retry at once, whatever the backoff."""
        self._retry_at = None
        self._backoff_ms = self.retry_ms
        self._urgent = True
        self._wake.set()

    def _new_batch(self):
        frozen = [e for e in self._buf if e[_BATCH] is not None]
        if frozen:
            bid = frozen[0][_BATCH]
            return bid, [e for e in frozen if e[_BATCH] == bid]
        fresh = [e for e in self._buf if e[_BATCH] is None][:self.batch_size]
        if not fresh and self._dropped_since is None:
            return None, None
        self._seq += 1
        bid = "%s-%d" % (self.boot_id, self._seq)
        now_s = self._now()
        ticks = self._ticks_ms()
        exact = self._clock_ok()
        for e in fresh:
            e[_BATCH] = bid
            if not e[_EXACT] and exact:
                # raised before the clock was set: place it by its age instead
                e[_FIRST] = now_s - time.ticks_diff(ticks, e[_T0]) // 1000
                e[_LAST] = now_s - time.ticks_diff(ticks, e[_T1]) // 1000
            if e[_LAST] < e[_FIRST]:
                e[_LAST] = e[_FIRST]
        d = self._dropped_since
        if d is not None:
            self._dropped_since = None
            e = ["alarms.dropped", "warning",
                 "%d alarm(s) dropped: buffer of %d full while undelivered"
                 % (d[0], self.max_buffer),
                 d[0], d[1], max(d[1], d[2]), ticks, ticks, True, bid]
            self._buf.append(e)
            fresh.append(e)
        return bid, fresh

    async def flush(self):
        """Send what is buffered, batch by batch; True when the buffer was emptied."""
        async with self._lock:
            for _ in range(self.max_buffer + 2):
                bid, entries = self._new_batch()
                if bid is None:
                    return True
                if not await self._send(bid, entries):
                    return False
            return not self._buf

    def _target(self):
        u = self._url
        return u() if callable(u) else u

    def _client(self):
        if self._http is None:
            from iotlib import http_client
            self._http = http_client
        return self._http

    async def _send(self, bid, entries):
        url = self._target()
        if not url:
            return self._failed("no alarms URL yet (not registered)")
        body = json.dumps({"batch_id": bid, "alarms": [
            {"dedup_key": e[_KEY], "severity": e[_SEV], "message": e[_MSG], "count": e[_COUNT],
             "first_seen": e[_FIRST], "last_seen": e[_LAST]} for e in entries]})
        self._wire = bid
        try:
            headers = {"Content-Type": "application/json"}
            if self.auth is not None:
                headers.update(await self.auth.headers())
            resp = await self._client().request("POST", url, body=body.encode(), headers=headers,
                                                timeout_ms=self.timeout_ms)
        except Exception as e:  # network down, auth cannot register...: keep and retry
            return self._failed("%s: %s" % (type(e).__name__, e))
        finally:
            self._wire = None
        status = resp.status
        if 200 <= status < 300:
            n = self._remove(bid)
            self.sent += n
            self.batches_sent += 1
            self._backoff_ms = self.retry_ms
            self._retry_at = None
            self.log.debug("alarms delivered", batch=bid, alarms=n)
            return True
        if status in (400, 413, 415, 422):
            # the platform will never take this batch: resending it would block the queue
            n = self._remove(bid)
            self.rejected += n
            self.log.error("alarm batch rejected", batch=bid, status=status,
                           body=bytes(resp.body[:200]))
            return True
        if status == 401 and hasattr(self.auth, "invalidate"):
            self.auth.invalidate("alarms: 401")  # register again before the retry
        return self._failed("HTTP %d" % status)

    def _remove(self, bid):
        before = len(self._buf)
        self._buf = [e for e in self._buf if e[_BATCH] != bid]
        return before - len(self._buf)

    def _failed(self, why):
        self.send_failures += 1
        self._retry_at = time.ticks_add(self._ticks_ms(), self._backoff_ms)
        self.log.warning("alarms not delivered", error=why, retry_ms=self._backoff_ms,
                         buffered=len(self._buf))
        self._backoff_ms = min(self._backoff_ms * 2, self.max_retry_ms)
        return False

    async def run(self):
        while True:
            wait_ms = self.flush_period_ms
            if self._retry_at is not None:
                wait_ms = max(0, min(wait_ms, time.ticks_diff(self._retry_at, self._ticks_ms())))
            if not self._wake.is_set():
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), wait_ms)
                except asyncio.TimeoutError:
                    pass
            self._wake.clear()
            if not self._buf and self._dropped_since is None:
                continue
            if self._retry_at is not None and time.ticks_diff(self._retry_at, self._ticks_ms()) > 0:
                continue
            if self._online is not None and not self._online():
                continue
            if not self._urgent:
                await asyncio.sleep_ms(self.coalesce_ms)  # let a burst land in one batch
            self._urgent = False
            await self.flush()

    # ---- task exceptions ----

    def install_exception_handler(self, loop=None):
        """Make any exception that ends an asyncio task an alarm (and a log line)."""
        loop = loop or asyncio.get_event_loop()
        loop.set_exception_handler(self._task_exception)

    def _task_exception(self, loop, context):
        exc = context.get("exception")
        if exc is None:
            self.raise_alarm_nowait("exc.loop", context.get("message", "asyncio error"))
            return
        fut = context.get("future")
        coro = getattr(fut, "coro", None)
        where = None
        if coro is not None:
            where = getattr(coro, "__name__", None)
            if where is None:  # MicroPython: <generator object 'name' at 0x...>
                text = str(coro)
                where = text.split("'")[1] if text.count("'") >= 2 else text
        key, msg = describe_exception(exc, where)
        self.log.error("task failed", error=msg.split("\n")[0])
        self.raise_alarm_nowait(key, msg, "critical")
