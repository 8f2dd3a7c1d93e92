# TimeSyncManager: SNTP packets, reply checks, offset maths, and real exchanges over
# UDP on 127.0.0.1 with a responder running in the same event loop.
import os
import socket
import struct
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import time_sync_manager as tsm
from iotlib.alarm_manager import AlarmManager
from iotlib.jwt_validator import JWTValidator, TokenError
from standins import ListLog, rm_tree, run, scratch_dir

NTP_1970 = 2208988800


def _stamp(ms):
    sec, rem = divmod(ms, 1000)
    return struct.pack("!II", sec + NTP_1970, (rem << 32) // 1000)


def _host_ms():
    return time.time_ns() // 1000000


def _reply(req, offset_ms, mode=4, stratum=2, li=0, origin=None, transmit=None, hold_ms=0):
    now = _host_ms() + offset_ms
    head = struct.pack("!BBbb", (li << 6) | (4 << 3) | mode, stratum, 6, -20)
    return (head + bytes(8) + b"LOCL" + _stamp(now - 1000) + (origin or req[40:48]) + _stamp(now)
            + (transmit if transmit is not None else _stamp(now + hold_ms)))


class Responder:
    """A UDP NTP server on 127.0.0.1, polled from a task: answers with offset_ms."""

    def __init__(self, offset_ms=0, mode="ok", hold_ms=0):
        self.offset_ms = offset_ms
        self.mode = mode  # ok | silent | stray_first | kod | guess_origin
        self.hold_ms = hold_ms  # what the server claims it spent between receive and transmit
        self.requests = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            self.port = 20000 + int.from_bytes(os.urandom(2), "big") % 40000
            try:
                self.sock.bind(socket.getaddrinfo("127.0.0.1", self.port)[0][-1])
                break
            except OSError:
                continue
        self.sock.setblocking(False)
        self.task = asyncio.create_task(self._serve())

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    async def _serve(self):
        while True:
            try:
                req, addr = self.sock.recvfrom(128)
            except OSError:
                await asyncio.sleep_ms(2)
                continue
            self.requests += 1
            if self.mode == "silent":
                continue
            if self.mode == "stray_first":
                self.sock.sendto(_reply(req, self.offset_ms, origin=b"\x01" * 8), addr)
                await asyncio.sleep_ms(5)
            if self.mode == "kod":
                self.sock.sendto(_reply(req, 0, stratum=0, li=3), addr)
                continue
            if self.mode == "guess_origin":
                # an off-path forger that guesses the origin from the clock, as the old client sent it
                self.sock.sendto(_reply(req, self.offset_ms, origin=_stamp(_host_ms())), addr)
                continue
            self.sock.sendto(_reply(req, self.offset_ms, hold_ms=self.hold_ms), addr)

    def close(self):
        self.task.cancel()
        self.sock.close()


def _free_port():
    # a port nobody listens on: connected UDP then gets ECONNREFUSED at once
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = 20000 + int.from_bytes(os.urandom(2), "big") % 40000
    s.close()
    return port


# ---- packets and maths ----

def test_timestamp_round_trip():
    for ms in (0, 1700000000123, 2085978496000 + 999, 2200000000500):
        assert tsm.ntp_to_ms(tsm.ms_to_ntp(ms)) in (ms, ms - 1), ms


def test_timestamps_after_2036_use_era_1():
    # 2040-01-01: NTP seconds wrapped past 2^32, MSB clear
    ms = 2208988800000
    raw = tsm.ms_to_ntp(ms)
    assert struct.unpack("!I", raw[:4])[0] < 0x80000000
    assert tsm.ntp_to_ms(raw) == ms


def test_request_is_sntp_v4_client():
    req = tsm.make_request()
    assert len(req) == 48
    assert req[0] == 0x23  # LI 0, VN 4, mode 3
    assert req[1:40] == bytes(39)


def test_request_origin_is_random_not_the_clock():
    seen = set(bytes(tsm.make_request()[40:48]) for _ in range(50))
    assert len(seen) == 50
    # a forger who knows our clock cannot predict it: almost none lie near the current time
    now = _host_ms()
    near = [o for o in seen if abs(tsm.ntp_to_ms(o) - now) < 60000]
    assert len(near) <= 1, len(near)


def test_offset_and_delay():
    # server 10 s ahead, 100 ms each way, 20 ms in the server
    t1 = 1000000
    t2 = t1 + 10000 + 100
    t3 = t2 + 20
    t4 = t1 + 220
    assert tsm.offset_delay(t1, t2, t3, t4) == (10000, 200)


def test_parse_reply_checks():
    req = tsm.make_request()
    t2, t3 = tsm.parse_reply(_reply(req, 5000), req)
    assert abs(t2 - (_host_ms() + 5000)) < 1000
    cases = [
        (_reply(req, 0)[:40], "short"),
        (_reply(req, 0, mode=3), "mode"),
        (_reply(req, 0, stratum=0), "kiss"),
        (_reply(req, 0, li=3), "not synchronised"),
        (_reply(req, 0, stratum=16), "not synchronised"),
        (_reply(req, 0, transmit=bytes(8)), "zero transmit"),
    ]
    for pkt, words in cases:
        try:
            tsm.parse_reply(pkt, req)
        except tsm.NTPError as e:
            assert words in str(e), (words, str(e))
        else:
            raise AssertionError("accepted: " + words)
    try:
        tsm.parse_reply(_reply(req, 0, origin=b"\x02" * 8), req)
        raise AssertionError("accepted a reply to another request")
    except tsm.StrayReply:
        pass


def test_parse_server():
    assert tsm.parse_server("pool.ntp.org") == ("pool.ntp.org", 123)
    assert tsm.parse_server("127.0.0.1:12300") == ("127.0.0.1", 12300)
    for bad in ("host:x", ":123", "host:0", "host:70000"):
        try:
            tsm.parse_server(bad)
            raise AssertionError("accepted " + bad)
        except ValueError:
            pass


# ---- real exchanges on 127.0.0.1 ----

def test_sync_applies_offset():
    async def main():
        r = Responder(offset_ms=3600500)
        t = tsm.TimeSyncManager([r.server], logger=ListLog(), set_rtc=False)
        assert not t.synced
        try:
            assert await t.sync()
        finally:
            r.close()
        assert t.synced and t.syncs == 1 and t.last_server == r.server
        assert abs(t.last_offset_ms - 3600500) < 50, t.last_offset_ms
        assert 0 <= t.last_delay_ms < 50
        assert abs(t.now_ms() - (_host_ms() + 3600500)) < 50
        assert abs(t.now() - (_host_ms() + 3600500) // 1000) <= 1
    run(main())


def test_first_sync_calls_back_once():
    # the controller retries its registration then: a certificate "not yet valid" under the
    # 2021 RTC of a fresh board may pass with the true time
    async def main():
        r = Responder(offset_ms=1000)
        t = tsm.TimeSyncManager([r.server], set_rtc=False)
        calls = []
        t.on_first_sync = lambda: calls.append(t.synced)
        try:
            assert await t.sync()
            assert await t.sync()
        finally:
            r.close()
        assert calls == [True], calls
    run(main())


def test_negative_offset():
    async def main():
        r = Responder(offset_ms=-86400000)
        t = tsm.TimeSyncManager([r.server], set_rtc=False)
        try:
            assert await t.sync()
        finally:
            r.close()
        assert abs(t.offset_ms + 86400000) < 50
    run(main())


def test_stray_datagram_is_skipped():
    async def main():
        r = Responder(offset_ms=1000, mode="stray_first")
        t = tsm.TimeSyncManager([r.server], set_rtc=False)
        try:
            assert await t.sync()
        finally:
            r.close()
        assert abs(t.last_offset_ms - 1000) < 50
    run(main())


def test_silent_server_times_out_and_alarms():
    async def main():
        r = Responder(mode="silent")
        alarms = AlarmManager(url=None)
        log = ListLog()
        t = tsm.TimeSyncManager([r.server], logger=log, alarms=alarms, timeout_ms=150,
                                set_rtc=False, alarm_after=2)
        try:
            t0 = time.ticks_ms()
            assert not await t.sync()
            took = time.ticks_diff(time.ticks_ms(), t0)
            assert 140 <= took < 1000, took
            assert alarms.pending() == []
            assert not await t.sync()
        finally:
            r.close()
        assert not t.synced and t.failures == 2
        assert alarms.pending() == [("ntp.unreachable", 1)], alarms.pending()
        assert any("no reply within 150 ms" in str(f) for _, _, f in log.lines)
    run(main())


def test_delay_rounding_below_zero_is_accepted():
    async def main():
        # the server's 2 ms between receive and transmit exceed a 0-1 ms loopback round trip
        r = Responder(offset_ms=500, hold_ms=2)
        t = tsm.TimeSyncManager([r.server], set_rtc=False)
        try:
            assert await t.sync()
        finally:
            r.close()
        assert t.last_delay_ms == 0 and abs(t.last_offset_ms - 501) < 50
    run(main())


def test_impossible_delay_is_refused():
    async def main():
        r = Responder(offset_ms=500, hold_ms=5000)  # claims 5 s of work in a 1 ms round trip
        log = ListLog()
        t = tsm.TimeSyncManager([r.server], logger=log, set_rtc=False)
        try:
            assert not await t.sync()
        finally:
            r.close()
        assert not t.synced
        assert any("implausible round-trip delay" in str(f) for _, _, f in log.lines)
    run(main())


def test_kiss_of_death_is_refused():
    async def main():
        r = Responder(mode="kod")
        t = tsm.TimeSyncManager([r.server], set_rtc=False)
        try:
            assert not await t.sync()
        finally:
            r.close()
        assert not t.synced and t.offset_ms == 0
    run(main())


def test_kiss_of_death_silences_that_server():
    async def main():
        kod = Responder(mode="kod")
        good = Responder(offset_ms=700)
        log = ListLog()
        t = tsm.TimeSyncManager([kod.server, good.server], logger=log, set_rtc=False)
        try:
            assert await t.sync()
            assert await t.sync()
            assert kod.requests == 1 and good.requests == 2, (kod.requests, good.requests)
            t.kod_hold_ms = 0  # the hold is over: asked again
            t._kod_until[tsm.parse_server(kod.server)] = time.ticks_ms()
            assert await t.sync()
            assert kod.requests == 2
        finally:
            kod.close()
            good.close()
        assert abs(t.offset_ms - 700) < 50
        assert [f["code"] for _, m, f in log.lines if "kiss-o'-death" in m] == ["b'LOCL'"] * 2
    run(main())


def test_forged_reply_with_a_guessed_origin_is_not_applied():
    async def main():
        r = Responder(offset_ms=-30 * 86400 * 1000, mode="guess_origin")
        t = tsm.TimeSyncManager([r.server], set_rtc=False, timeout_ms=300)
        try:
            assert not await t.sync()
        finally:
            r.close()
        assert not t.synced and t.offset_ms == 0
    run(main())


DAY_MS = 86400 * 1000


def test_step_back_after_first_sync_is_refused_and_alarmed():
    async def main():
        r = Responder(offset_ms=0)
        alarms = AlarmManager(url=None)
        t = tsm.TimeSyncManager([r.server], set_rtc=False, alarms=alarms, max_step_s=600)
        try:
            assert await t.sync()
            r.offset_ms = -30 * DAY_MS
            assert not await t.sync()
            r.offset_ms = 5 * 60 * 1000  # within the bound: applied
            assert await t.sync()
        finally:
            r.close()
        assert abs(t.offset_ms - 300000) < 50 and t.steps_refused == 1
        assert alarms.pending() == [("ntp.step_refused", 1)], alarms.pending()
    run(main())


def test_step_applied_when_a_second_source_agrees():
    async def main():
        a = Responder(offset_ms=0)
        b = Responder(offset_ms=3 * DAY_MS)
        c = Responder(offset_ms=3 * DAY_MS + 500)
        t = tsm.TimeSyncManager([a.server], set_rtc=False, max_step_s=600)
        try:
            assert await t.sync()
            t.set_servers([b.server, c.server])  # two NTP servers agree
            assert await t.sync()
            assert abs(t.offset_ms - 3 * DAY_MS) < 1000
            platform = []
            t.second_source = lambda: platform[0] if platform else None
            t.set_servers([a.server])  # back by 3 days: only the platform can vouch for it
            assert not await t.sync()
            platform.append(_host_ms() // 1000 + 3 * DAY_MS // 1000)  # it disagrees
            assert not await t.sync()
            platform[0] = _host_ms() // 1000  # it agrees
            assert await t.sync()
        finally:
            for r in (a, b, c):
                r.close()
        assert abs(t.offset_ms) < 50 and t.steps_refused == 2
    run(main())


def test_floor_kept_across_reboots():
    d = scratch_dir("floor")

    async def main():
        r = Responder(offset_ms=0)
        try:
            t = tsm.TimeSyncManager([r.server], set_rtc=False, floor_path=d + "/floor")
            assert await t.sync()
            floor = t.floor_s
            assert abs(floor - _host_ms() // 1000) <= 1
            r.offset_ms = -30 * DAY_MS
            # reboot: the first answer is 30 days behind the saved floor, nobody agrees
            t2 = tsm.TimeSyncManager([r.server], set_rtc=False, floor_path=d + "/floor")
            assert t2.floor_s == floor and not t2.synced
            assert not await t2.sync()
            assert t2.steps_refused == 1
            # a first answer ahead of the floor is normal after a long power-off
            r.offset_ms = 2 * DAY_MS
            assert await t2.sync()
        finally:
            r.close()
    try:
        run(main())
    finally:
        rm_tree(d)


def test_30_days_back_does_not_revive_an_expired_token():
    # The attack: a token expired an hour ago; a forged NTP server (here two that agree, so
    # the step check lets it through) moves the clock back 30 days. The floor still says now.
    d = scratch_dir("attack")
    key = b"k" * 32

    def token(exp):
        import binascii
        import hashlib
        import json

        def b64(b):
            return binascii.b2a_base64(b).decode().strip().replace("+", "-").replace(
                "/", "_").rstrip("=")

        def hmac(k, m):
            k = k + bytes(64 - len(k))
            i = hashlib.sha256(bytes(x ^ 0x36 for x in k))
            i.update(m)
            o = hashlib.sha256(bytes(x ^ 0x5C for x in k))
            o.update(i.digest())
            return o.digest()
        si = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(
            {"iss": "i", "aud": "a", "sub": "s", "exp": exp}).encode())
        return si + "." + b64(hmac(key, si.encode()))

    async def main():
        honest = Responder(offset_ms=0)
        evil1 = Responder(offset_ms=-30 * DAY_MS)
        evil2 = Responder(offset_ms=-30 * DAY_MS + 200)
        try:
            t = tsm.TimeSyncManager([honest.server], set_rtc=False, floor_path=d + "/floor")
            assert await t.sync()
            v = JWTValidator(key, "i", "a", t.now, leeway_s=30)
            expired = token(t.now() - 3600)
            for attempt in range(2):
                try:
                    v.validate(expired)
                    raise AssertionError("an expired token was accepted")
                except TokenError as e:
                    assert e.reason == "expired", e.reason
                if attempt == 0:
                    # a single forged server: the step is refused outright
                    t.set_servers([evil1.server])
                    assert not await t.sync()
                    # two forged servers agree: the step applies, the floor holds
                    t.set_servers([evil1.server, evil2.server])
                    assert await t.sync()
                    assert t.offset_ms < -29 * DAY_MS
            # after a reboot too, with the saved floor
            t2 = tsm.TimeSyncManager([evil1.server, evil2.server], set_rtc=False,
                                     floor_path=d + "/floor")
            assert await t2.sync()
            v2 = JWTValidator(key, "i", "a", t2.now, leeway_s=30)
            try:
                v2.validate(expired)
                raise AssertionError("an expired token was accepted after a reboot")
            except TokenError as e:
                assert e.reason == "expired", e.reason
        finally:
            for r in (honest, evil1, evil2):
                r.close()
    try:
        run(main())
    finally:
        rm_tree(d)


def test_best_of_several_servers():
    async def main():
        dead = "127.0.0.1:%d" % _free_port()
        quiet = Responder(mode="silent")
        r = Responder(offset_ms=-2500)
        t = tsm.TimeSyncManager([dead, r.server, quiet.server], set_rtc=False, timeout_ms=300)
        try:
            assert await t.sync()
        finally:
            r.close()
            quiet.close()
        assert t.last_server == r.server and t.failures == 2
        assert abs(t.last_offset_ms + 2500) < 50
    run(main())


def test_run_resyncs_on_request_and_config():
    async def main():
        a = Responder(offset_ms=1000)
        b = Responder(offset_ms=7000)
        t = tsm.TimeSyncManager([a.server], period_s=3600, set_rtc=False)
        task = asyncio.create_task(t.run())
        try:
            for _ in range(100):
                if t.synced:
                    break
                await asyncio.sleep_ms(10)
            assert t.synced and abs(t.offset_ms - 1000) < 50
            t.resync()
            for _ in range(100):
                if t.syncs == 2:
                    break
                await asyncio.sleep_ms(10)
            assert t.syncs == 2 and a.requests == 2
            # a config naming other servers takes effect at once
            t.configure({"ntp_servers": [b.server], "ntp_period_s": 60})
            for _ in range(100):
                if t.syncs == 3:
                    break
                await asyncio.sleep_ms(10)
            assert t.syncs == 3 and t.period_s == 60 and abs(t.offset_ms - 7000) < 50
            # the same servers again: no extra sync
            t.configure({"ntp_servers": [b.server]})
            await asyncio.sleep_ms(50)
            assert t.syncs == 3
        finally:
            task.cancel()
            a.close()
            b.close()
            await asyncio.sleep_ms(0)
    run(main())


def test_counters():
    t = tsm.TimeSyncManager(["127.0.0.1:1"], set_rtc=False)
    c = t.counters()
    assert c["ntp_synced"] == 0 and c["ntp_syncs"] == 0
