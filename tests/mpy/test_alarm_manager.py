# AlarmManager: dedup window, bounded buffer, batching, frozen retries, rejection,
# timestamps raised before the clock was set, the run loop and task exceptions.
import json
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib.alarm_manager import AlarmManager, describe_exception
from standins import FixedAuth, ListLog, Resp, ScriptedHTTP, run
from virtual_time import VirtualTime

URL = "http://127.0.0.1:9/v1/alarms"


class Platform:
    """Answers POST /v1/alarms like the reference platform: merge, and ack a seen batch id."""

    def __init__(self):
        self.alarms = {}
        self.batches = set()
        self.fail = []  # per request: None, an exception to raise, or a status

    def __call__(self, method, url, body, headers):
        assert method == "POST" and url == URL
        assert headers["Authorization"] == "Bearer tok"
        assert headers["Content-Type"] == "application/json"
        doc = json.loads(body)
        step = self.fail.pop(0) if self.fail else None
        if isinstance(step, Exception):
            raise step
        if step == "lost":  # the platform stored it, the answer never arrived
            self._merge(doc)
            raise OSError("connection reset")
        if step is not None:
            return Resp(step, {"error": "x", "message": "scripted"})
        return Resp(200, self._merge(doc))

    def _merge(self, doc):
        if doc["batch_id"] in self.batches:
            return {"accepted": len(doc["alarms"]), "created": 0, "merged": 0,
                    "duplicate_batch": True}
        self.batches.add(doc["batch_id"])
        for a in doc["alarms"]:
            assert a["first_seen"] <= a["last_seen"]
            assert a["severity"] in ("info", "warning", "error", "critical")
            cur = self.alarms.get(a["dedup_key"])
            if cur is None:
                self.alarms[a["dedup_key"]] = dict(a)
            else:
                cur["count"] += a["count"]
        return {"accepted": len(doc["alarms"]), "created": 0, "merged": 0,
                "duplicate_batch": False}

    def count(self, key):
        a = self.alarms.get(key)
        return a["count"] if a else 0


def _manager(platform, **kw):
    http = ScriptedHTTP(platform)
    kw.setdefault("logger", ListLog())
    m = AlarmManager(auth=FixedAuth(), url=URL, http=http, **kw)
    return m, http


def test_dedup_by_key_within_window():
    m, _ = _manager(Platform())
    for i in range(5):
        m.raise_alarm_nowait("wifi.lost", "lost %d" % i, "warning")
    m.raise_alarm_nowait("ntp.fail", "no reply")
    assert m.pending() == [("wifi.lost", 5), ("ntp.fail", 1)]
    assert m.counters()["alarms_raised"] == 6 and m.counters()["alarms_buffered"] == 2


def test_window_over_starts_a_new_entry():
    m, _ = _manager(Platform(), window_s=0)
    m.raise_alarm_nowait("k", "a")
    m.raise_alarm_nowait("k", "b")
    assert m.pending() == [("k", 1), ("k", 1)]


def test_severity_escalates_and_inputs_are_cleaned():
    m, _ = _manager(Platform())
    m.raise_alarm_nowait("k", "m", "warning")
    m.raise_alarm_nowait("k", "m", "critical")
    m.raise_alarm_nowait("k", "m", "info")
    assert m._buf[0][1] == "critical"
    m.raise_alarm_nowait("bad\nkey\x00" + "x" * 300, "y" * 5000, "bogus")
    e = m._buf[1]
    assert e[0] == "bad?key?" + "x" * 120 and len(e[0]) == 128
    assert len(e[2]) == 1024 and e[1] == "error"


def test_alarm_texts_are_masked_like_log_lines():
    from iotlib import logger
    secret = "hunter2-wifi-password"
    logger.add_secret(secret)
    p = Platform()
    m, http = _manager(p)
    m.raise_alarm_nowait("wifi.join", "join failed with password " + secret + " on ssid x")
    m.raise_alarm_nowait("ota.url", "cut at the end: " + secret[:10])
    assert run(m.flush())
    body = http.calls[0][2]
    text = body.decode() if isinstance(body, bytes) else body
    assert secret not in text and secret[:10] not in text, text
    assert [a["message"] for a in json.loads(text)["alarms"]] == [
        "join failed with password *** on ssid x", "cut at the end: ***"]


def test_flush_delivers_one_batch():
    p = Platform()
    m, http = _manager(p)
    m.raise_alarm_nowait("a", "one", "info")
    m.raise_alarm_nowait("a", "two", "info")
    m.raise_alarm_nowait("b", "three")
    assert run(m.flush())
    assert len(http.calls) == 1
    doc = json.loads(http.calls[0][2])
    assert doc["batch_id"].startswith(m.boot_id + "-")
    assert [(a["dedup_key"], a["count"], a["message"]) for a in doc["alarms"]] == \
        [("a", 2, "two"), ("b", 1, "three")]
    assert m.pending() == []
    c = m.counters()
    assert (c["alarms_sent"], c["alarm_batches_sent"], c["alarms_buffered"]) == (2, 1, 0)


def test_batches_are_bounded():
    p = Platform()
    m, http = _manager(p, batch_size=3, max_buffer=10)
    for i in range(7):
        m.raise_alarm_nowait("k%d" % i, "m")
    assert run(m.flush())
    assert [len(json.loads(c[2])["alarms"]) for c in http.calls] == [3, 3, 1]
    assert len(set(json.loads(c[2])["batch_id"] for c in http.calls)) == 3
    assert m.sent == 7


def test_offline_buffer_drops_oldest_and_reports_it():
    p = Platform()
    m, http = _manager(p, max_buffer=4)
    for i in range(7):
        m.raise_alarm_nowait("k%d" % i, "m")
    assert m.pending() == [("k3", 1), ("k4", 1), ("k5", 1), ("k6", 1)]
    assert m.counters()["alarms_dropped"] == 3
    assert run(m.flush())
    sent = json.loads(http.calls[0][2])["alarms"]
    assert [a["dedup_key"] for a in sent] == ["k3", "k4", "k5", "k6", "alarms.dropped"]
    assert sent[-1]["count"] == 3 and "3 alarm(s) dropped" in sent[-1]["message"]
    assert m.pending() == []


def test_failed_batch_is_frozen_and_resent_identically():
    p = Platform()
    p.fail = [OSError("ECONNREFUSED"), 503]
    m, http = _manager(p)
    m.raise_alarm_nowait("pump.stuck", "first")
    assert not run(m.flush())
    # a later occurrence must not change the batch already sent once
    m.raise_alarm_nowait("pump.stuck", "second")
    assert m.pending() == [("pump.stuck", 1), ("pump.stuck", 1)]
    assert not run(m.flush())
    assert run(m.flush())
    bodies = [c[2] for c in http.calls]
    assert bodies[0] == bodies[1] == bodies[2]
    assert len(http.calls) == 4 and json.loads(bodies[3])["alarms"][0]["message"] == "second"
    assert p.count("pump.stuck") == 2
    assert m.counters()["alarm_send_failures"] == 2 and m.sent == 2


def test_lost_answer_is_not_counted_twice():
    p = Platform()
    p.fail = ["lost"]
    m, http = _manager(p)
    m.raise_alarm_nowait("relay.fault", "x")
    m.raise_alarm_nowait("relay.fault", "x")
    assert not run(m.flush())
    assert m.pending() == [("relay.fault", 2)]
    assert run(m.flush())
    assert p.count("relay.fault") == 2 and len(p.batches) == 1
    assert http.calls[0][2] == http.calls[1][2]


def test_overflow_spares_the_batch_on_the_wire():
    p = Platform()
    m, http = _manager(p, max_buffer=3)
    m.raise_alarm_nowait("a", "m")
    m.raise_alarm_nowait("b", "m")

    def answer(method, url, body, headers):
        # while the first request is out, the buffer overflows
        if len(http.calls) == 1:
            for k in ("c", "d", "e"):
                m.raise_alarm_nowait(k, "m")
            assert m.pending() == [("a", 1), ("b", 1), ("e", 1)]
        return Resp(200, p._merge(json.loads(body)))
    http.handler = answer
    assert run(m.flush())
    assert [a["dedup_key"] for a in json.loads(http.calls[0][2])["alarms"]] == ["a", "b"]
    assert [a["dedup_key"] for a in json.loads(http.calls[1][2])["alarms"]] == \
        ["e", "alarms.dropped"]
    assert m.dropped == 2 and p.count("alarms.dropped") == 2
    assert p.count("a") == p.count("b") == p.count("e") == 1 and p.count("c") == 0


def test_rejected_batch_is_dropped_not_retried():
    p = Platform()
    p.fail = [400]
    m, http = _manager(p)
    m.raise_alarm_nowait("k", "m")
    assert run(m.flush())
    assert m.pending() == [] and m.counters()["alarms_rejected"] == 1 and m.sent == 0


def test_unauthorized_is_kept():
    p = Platform()
    p.fail = [401]
    m, _ = _manager(p)
    m.raise_alarm_nowait("k", "m")
    assert not run(m.flush())
    assert m.pending() == [("k", 1)]


def test_no_url_yet_keeps_alarms():
    target = [None]
    p = Platform()
    m = AlarmManager(auth=FixedAuth(), url=lambda: target[0], http=ScriptedHTTP(p))
    m.raise_alarm_nowait("boot", "early")
    assert not run(m.flush())
    target[0] = URL
    assert run(m.flush()) and p.count("boot") == 1


def test_timestamps_before_clock_sync_are_placed_by_age():
    clock = [1000]
    synced = [False]
    ticks = [5000]
    p = Platform()
    m, http = _manager(p, clock=lambda: clock[0], synced=lambda: synced[0],
                       ticks_ms=lambda: ticks[0])
    m.raise_alarm_nowait("early", "before sync")
    ticks[0] += 1100
    m.raise_alarm_nowait("early", "before sync")
    ticks[0] += 300
    clock[0] = 1700000000
    synced[0] = True
    m.raise_alarm_nowait("late", "after sync")
    assert run(m.flush())
    got = {a["dedup_key"]: a for a in json.loads(http.calls[0][2])["alarms"]}
    e = got["early"]
    assert e["first_seen"] == 1700000000 - 1400 // 1000, e
    assert e["last_seen"] == 1700000000 - 300 // 1000, e
    assert got["late"]["first_seen"] == 1700000000


def test_batch_ids_differ_across_boots():
    a = AlarmManager()
    b = AlarmManager()
    assert a.boot_id != b.boot_id and len(a.boot_id) == 16


def test_run_waits_for_network_then_flushes_on_reconnect():
    with VirtualTime() as vt:
        async def main():
            p = Platform()
            up = [False]
            m, http = _manager(p, online=lambda: up[0], coalesce_ms=10, flush_period_s=3600,
                               ticks_ms=vt.ticks_ms)
            task = asyncio.create_task(m.run())
            try:
                m.raise_alarm_nowait("k", "m")
                await asyncio.sleep_ms(60)
                assert http.calls == []
                up[0] = True
                m.notify_online()
                t0 = vt.ticks_ms()
                idle0 = vt.skipped_ms
                while not p.count("k") and time.ticks_diff(vt.ticks_ms(), t0) < 1000:
                    await asyncio.sleep_ms(1)
                assert p.count("k") == 1
                idle = vt.skipped_ms - idle0  # time waited on timers, host delays left out
                assert idle < 10, "a reconnect sends at once, not after %d ms" % idle
            finally:
                task.cancel()
                await asyncio.sleep_ms(0)
        run(main())


def test_run_backs_off_after_failure():
    with VirtualTime() as vt:
        async def calls_after(http, ms):
            await asyncio.sleep_ms(ms)
            return len(http.calls)

        async def main():
            p = Platform()
            p.fail = [OSError("down"), OSError("down"), OSError("down")]
            m, http = _manager(p, coalesce_ms=0, retry_s=1, flush_period_s=3600,
                               ticks_ms=vt.ticks_ms)
            task = asyncio.create_task(m.run())
            try:
                m.raise_alarm_nowait("k", "m")
                # checked half a backoff step away from each due time: host delays (a loaded
                # machine) add to the virtual time and must not move a result
                assert await calls_after(http, 100) == 1
                m.raise_alarm_nowait("k2", "m")  # new alarms do not cut the backoff short
                n = await calls_after(http, 400)
                assert n == 1, ("500 ms after the failure", n)
                n = await calls_after(http, 1000)
                assert n == 2, ("retried at 1 s", n)
                n = await calls_after(http, 1000)
                assert n == 2, ("second failure: now 2 s", n)
                n = await calls_after(http, 1000)
                assert n == 3, ("retried 2 s after the second failure", n)
                n = await calls_after(http, 3000)
                assert n == 3, ("third failure: now 4 s", n)
                m.notify_online()  # but a reconnect retries at once
                t0 = vt.ticks_ms()
                idle0 = vt.skipped_ms
                while not p.count("k2") and time.ticks_diff(vt.ticks_ms(), t0) < 1000:
                    await asyncio.sleep_ms(1)
                idle = vt.skipped_ms - idle0  # time waited on timers, host delays left out
                assert idle < 10, "a reconnect retries at once, not after %d ms" % idle
                # the frozen batch (k) again, then a new one with k2
                n = (p.count("k"), p.count("k2"), len(http.calls))
                assert n == (1, 1, 5), n
            finally:
                task.cancel()
                await asyncio.sleep_ms(0)
        run(main())


async def _boom():
    await asyncio.sleep_ms(0)
    raise ValueError("relay table corrupt")


def test_task_exceptions_become_alarms():
    async def main():
        m, _ = _manager(Platform())
        m.install_exception_handler(asyncio.get_event_loop())
        try:
            asyncio.create_task(_boom())
            for _ in range(20):  # a few scheduler rounds: _boom raises in its second
                if m._buf:
                    break
                await asyncio.sleep_ms(0)
        finally:
            asyncio.get_event_loop().set_exception_handler(None)
        assert len(m._buf) == 1, m.pending()
        key, sev, msg = m._buf[0][0], m._buf[0][1], m._buf[0][2]
        assert key.startswith("exc.ValueError@test_alarm_manager.py:"), key
        assert sev == "critical"
        assert msg.startswith("ValueError: relay table corrupt (in _boom)"), msg
    run(main())


def test_describe_exception_without_traceback():
    key, msg = describe_exception(KeyError("x"))
    assert key == "exc.KeyError" and msg.startswith("KeyError: ")
