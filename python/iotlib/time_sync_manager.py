# TimeSyncManager: SNTP v4 client (RFC 4330) over UDP, driven by asyncio.
#
# The wall clock the application uses is now() = local clock + offset. On the
# board machine.RTC is set as well, so time.time() is right too; on the unix port
# the host clock is never touched and only the offset is kept.
#
# Tokens are judged against this clock, so a forged answer must not move it back:
# - each request carries a random 64-bit origin that the answer must echo (RFC 5905);
# - mode 4, stratum 1..15 and LI != 3 only; a kiss-o'-death silences that server a while;
# - after the first sync (or below a persisted floor) a step larger than max_step_s is
#   refused unless a second source agrees: another NTP server or the platform's time;
# - now() never goes below the highest trusted time seen, kept across reboots (floor file).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import os
import socket
import struct
import time

from iotlib import atomic_file

try:
    from machine import RTC
except ImportError:
    RTC = None

NTP_PORT = 123
# NTP counts from 1900; the port's epoch is 1970 (unix, rp2) or 2000 (older ports).
_EPOCH_DELTA_S = 2208988800 if time.gmtime(0)[0] == 1970 else 3155673600
_MAX_DELAY_MS = 4000  # a reply that took longer than this says little about the offset
AGREE_MS = 10000      # two sources agree when within this (the platform's time is whole seconds)
FLOOR_WRITE_S = 3600  # the floor file is coarse: one flash write per hour of clock at most


class NTPError(Exception):
    pass


class StrayReply(NTPError):
    """A datagram that does not answer our request (late reply to an earlier one)."""


class KissOfDeath(NTPError):
    """Stratum 0: the server tells us to stop asking (code: RATE, DENY, RSTR...)."""

    def __init__(self, code):
        super().__init__("kiss-o'-death %r" % code)
        self.code = code


def _local_ms():
    try:
        return time.time_ns() // 1000000
    except AttributeError:
        return int(time.time() * 1000)


def parse_server(text):
    """'host' or 'host:port' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, NTP_PORT
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("bad NTP server %r (host or host:port)" % text)
    return host, int(port)


def ms_to_ntp(ms):
    """Epoch milliseconds -> 8-byte NTP timestamp."""
    sec, rem = divmod(ms, 1000)
    return struct.pack("!II", (sec + _EPOCH_DELTA_S) & 0xFFFFFFFF, (rem << 32) // 1000)


def ntp_to_ms(raw):
    sec, frac = struct.unpack("!II", raw)
    if sec < 0x80000000:
        sec += 0x100000000  # era 1 (from 2036), per RFC 4330 section 3
    return (sec - _EPOCH_DELTA_S) * 1000 + ((frac * 1000) >> 32)


def make_request():
    # LI 0, version 4, mode 3 (client). The transmit timestamp is 64 random bits, not our
    # clock: the server echoes it as origin, and an off-path forger must guess it.
    return b"\x23" + bytes(39) + os.urandom(8)


def parse_reply(pkt, request):
    """(t2_ms, t3_ms) from a server reply to request, or NTPError saying why not."""
    if len(pkt) < 48:
        raise NTPError("short reply (%d bytes)" % len(pkt))
    li_vn_mode, stratum = pkt[0], pkt[1]
    if li_vn_mode & 7 != 4:
        raise NTPError("reply mode %d, not 4 (server)" % (li_vn_mode & 7))
    if not 1 <= (li_vn_mode >> 3) & 7 <= 4:
        raise NTPError("reply version %d" % ((li_vn_mode >> 3) & 7))
    if bytes(pkt[24:32]) != bytes(request[40:48]):
        # checked first: a kiss-o'-death that does not answer our request is forged
        raise StrayReply("origin timestamp does not match our request")
    if stratum == 0:
        raise KissOfDeath(bytes(pkt[12:16]))
    if li_vn_mode >> 6 == 3 or stratum > 15:
        raise NTPError("server is not synchronised (LI %d, stratum %d)"
                       % (li_vn_mode >> 6, stratum))
    if bytes(pkt[40:48]) == bytes(8):
        raise NTPError("zero transmit timestamp")
    return ntp_to_ms(bytes(pkt[32:40])), ntp_to_ms(bytes(pkt[40:48]))


def offset_delay(t1, t2, t3, t4):
    """Clock offset and round-trip delay (ms) from the four NTP timestamps."""
    return ((t2 - t1) + (t3 - t4)) // 2, (t4 - t1) - (t3 - t2)


class _NullLog:
    def debug(self, msg, **kw):
        pass

    info = warning = error = debug


class TimeSyncManager:
    def __init__(self, servers=(), period_s=3600, logger=None, alarms=None, timeout_ms=1500,
                 retry_s=5, set_rtc=True, alarm_after=3, max_step_s=600, second_source=None,
                 floor_path=None, kod_hold_s=3600):
        # second_source() -> epoch seconds from an authenticated channel, or None
        self.log = logger or _NullLog()
        self.max_step_ms = max_step_s * 1000
        self.second_source = second_source
        self.floor_path = floor_path
        self.kod_hold_ms = kod_hold_s * 1000
        self._kod_until = {}  # (host, port) -> ticks_ms until which it is not asked
        self.floor_s = self._read_floor()  # the highest trusted time seen, epoch seconds
        self._floor_saved = self.floor_s
        self.steps_refused = 0
        self.alarms = alarms
        self.timeout_ms = timeout_ms
        self.retry_s = retry_s
        self.alarm_after = alarm_after
        self._rtc = RTC() if (set_rtc and RTC is not None) else None
        self._servers = []
        self.period_s = period_s
        self.set_servers(servers)
        self._wake = asyncio.Event()
        self.synced = False
        self.on_first_sync = None  # fn(): e.g. retry what needed a true clock (TLS checks)
        self.offset_ms = 0       # wall clock minus local clock, applied by now()
        self.last_offset_ms = 0  # what the last sync measured (before any RTC set)
        self.last_delay_ms = 0
        self.last_server = None
        self.last_sync_ticks = None
        self.syncs = 0
        self.failures = 0
        self._failed_rounds = 0

    # ---- the application's clock ----

    def now_ms(self):
        return max(_local_ms() + self.offset_ms, self.floor_s * 1000)

    def now(self):
        """Wall clock in epoch seconds (correct once synced is True), never below the floor."""
        return self.now_ms() // 1000

    # ---- the trusted floor ----

    def _read_floor(self):
        if not self.floor_path:
            return 0
        try:
            v = int(atomic_file.read(self.floor_path).decode())
            return v if v > 0 else 0
        except (OSError, ValueError, AttributeError):
            return 0

    def _raise_floor(self, wall_ms):
        s = wall_ms // 1000
        if s <= self.floor_s:
            return
        self.floor_s = s
        if self.floor_path and s >= self._floor_saved + FLOOR_WRITE_S:
            try:
                atomic_file.write(self.floor_path, str(s).encode())
                self._floor_saved = s
            except OSError as e:
                self.log.warning("time floor not saved", error=str(e))

    # ---- configuration ----

    def set_servers(self, servers):
        parsed = [parse_server(s) for s in servers][:4]
        changed = parsed != self._servers
        self._servers = parsed
        return changed

    def configure(self, config):
        """Apply a device config (ntp_servers, ntp_period_s, ntp_max_step_s); resync when
        servers change."""
        self.period_s = config.get("ntp_period_s", self.period_s)
        self.max_step_ms = config.get("ntp_max_step_s", self.max_step_ms // 1000) * 1000
        if self.set_servers(config.get("ntp_servers", ["pool.ntp.org"])):
            self.resync()

    def resync(self):
        self._wake.set()

    def counters(self):
        return {"ntp_syncs": self.syncs, "ntp_failures": self.failures,
                "ntp_offset_ms": self.last_offset_ms, "ntp_delay_ms": self.last_delay_ms,
                "ntp_synced": 1 if self.synced else 0, "ntp_steps_refused": self.steps_refused}

    # ---- one exchange ----

    async def query(self, host, port):
        """One SNTP exchange: (offset_ms, delay_ms) or NTPError / OSError."""
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.connect(addr)
            t1 = _local_ms()
            t1_ticks = time.ticks_ms()
            req = make_request()
            s.send(req)
            reader = asyncio.StreamReader(s)
            rtt = 0
            while True:
                try:
                    pkt = await asyncio.wait_for_ms(reader.read(68), self.timeout_ms - rtt)
                except asyncio.TimeoutError:
                    raise NTPError("no reply within %d ms" % self.timeout_ms)
                rtt = time.ticks_diff(time.ticks_ms(), t1_ticks)
                try:
                    t2, t3 = parse_reply(pkt, req)
                    break
                except StrayReply:
                    # keep waiting for the answer to this request, within the timeout
                    if rtt >= self.timeout_ms:
                        raise
        finally:
            s.close()
        # t4 from the monotonic clock, so a host clock step mid-exchange cannot skew it
        offset, delay = offset_delay(t1, t2, t3, t1 + rtt)
        # millisecond rounding on both sides can make a loopback delay -1 or -2
        if delay < -2 or delay > _MAX_DELAY_MS:
            raise NTPError("implausible round-trip delay %d ms" % delay)
        return offset, max(0, delay)

    async def sync(self):
        """Ask each configured server once; apply the reply with the lowest delay."""
        samples = []
        errors = []
        for host, port in self._servers:
            name = "%s:%d" % (host, port)
            until = self._kod_until.get((host, port))
            if until is not None:
                if time.ticks_diff(until, time.ticks_ms()) > 0:
                    errors.append("%s: silenced by a kiss-o'-death" % name)
                    continue
                del self._kod_until[(host, port)]
            try:
                offset, delay = await self.query(host, port)
            except KissOfDeath as e:
                # RFC 5905 7.4: stop asking it; another server may still answer
                self._kod_until[(host, port)] = time.ticks_add(time.ticks_ms(), self.kod_hold_ms)
                self.failures += 1
                errors.append("%s: %s" % (name, e))
                self.log.warning("ntp server sent a kiss-o'-death; not asking it for a while",
                                 server=name, code=str(e.code), hold_s=self.kod_hold_ms // 1000)
                continue
            except (NTPError, OSError, IndexError) as e:
                self.failures += 1
                errors.append("%s: %s" % (name, e))
                self.log.debug("ntp query failed", server=name, error=str(e))
                continue
            samples.append((offset, delay, name))
        if not samples:
            self._failed_rounds += 1
            reason = "; ".join(errors) or "no NTP servers configured"
            self.log.warning("time sync failed", error=reason)
            if self.alarms is not None and self._failed_rounds == self.alarm_after:
                self.alarms.raise_alarm_nowait(
                    "ntp.unreachable",
                    "no NTP reply in %d rounds: %s" % (self._failed_rounds, reason), "warning")
            return False
        self._failed_rounds = 0
        best = samples[0]
        for smp in samples:
            if smp[1] < best[1]:
                best = smp
        refused = self._step_refused(best, samples)
        if refused:
            self.steps_refused += 1
            self.failures += 1
            self.log.warning("time step refused", reason=refused)
            if self.alarms is not None:
                self.alarms.raise_alarm_nowait("ntp.step_refused", refused, "warning")
            return False
        self._apply(*best)
        return True

    def _step_refused(self, best, samples):
        # None when best may be applied, else the reason it may not
        wall = _local_ms() + best[0]
        if self.synced:
            ref, what = _local_ms() + self.offset_ms, "the synchronised clock"
        elif self.floor_s:
            # before the first sync only a step back below the floor is suspect
            ref, what = max(wall, self.floor_s * 1000), "the last trusted time"
        else:
            return None
        step = wall - ref
        if -self.max_step_ms <= step <= self.max_step_ms:
            return None
        for offset, _, name in samples:
            if name != best[2] and abs(offset - best[0]) <= AGREE_MS:
                return None  # a second NTP server agrees
        if self.second_source is not None:
            try:
                other = self.second_source()
            except Exception:
                other = None
            if other is not None and abs(other * 1000 - wall) <= AGREE_MS:
                return None  # the platform's time agrees
        return ("%s would step the clock by %d s from %s (bound %d s) and no second source"
                " agrees; not applied" % (best[2], step // 1000, what, self.max_step_ms // 1000))

    def _apply(self, offset, delay, server):
        self.last_offset_ms = offset
        self.last_delay_ms = delay
        self.last_server = server
        self.last_sync_ticks = time.ticks_ms()
        self.syncs += 1
        wall = _local_ms() + offset
        if self._rtc is not None:
            # RTC takes whole seconds; the sub-second rest stays in offset_ms
            tm = time.gmtime(wall // 1000)
            self._rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
            self.offset_ms = wall - _local_ms()
        else:
            self.offset_ms = offset
        first = not self.synced
        self.synced = True
        self._raise_floor(_local_ms() + self.offset_ms)
        self.log.info("time synchronised", server=server, offset_ms=offset, delay_ms=delay,
                      first=first)
        if first and self.on_first_sync is not None:
            self.on_first_sync()

    async def run(self):
        """Sync now, then every period_s (retrying sooner after a failure)."""
        backoff = self.retry_s
        while True:
            ok = await self.sync()
            if ok:
                wait_s = self.period_s
                backoff = self.retry_s
            else:
                wait_s = min(backoff, self.period_s)
                backoff = min(backoff * 2, self.period_s)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
