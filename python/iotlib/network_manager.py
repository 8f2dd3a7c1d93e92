# NetworkManager: joins WiFi, watches the link, rejoins with exponential backoff and jitter.
# Its link backend is anything with the network.WLAN calls it makes: network.WLAN(STA_IF) (cyw43,
# Pico W), PPPLink (network.PPP over a UART, the RELAYS_PICO_PPP board), SimWLAN (unix port);
# board_link() picks one from the device options. On the unix port SimWLAN stands in: its
# access point is "up" unless its control file says "down", so a test can drop and restore
# WiFi by writing that file ("stuck": the link stays up but the stack opens no socket).
# While the link is down, iotlib.http_client fails fast.
# probe(host, port) tells a stuck local stack from a distant outage (docs/device_app.md).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import random
import time

try:
    import errno
except ImportError:
    errno = None

from iotlib import http_client, logger

_log = logger.get("net")
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_WRONG_PASSWORD = -3
STAT_NO_AP_FOUND = -2
STAT_CONNECT_FAIL = -1
STAT_GOT_IP = 3
# probe() results: the socket opened and the connect left ("ok"; the far end may still refuse
# or never answer), or the device's own stack refused at once ("local": evidence it is stuck)
PROBE_OK = "ok"
PROBE_LOCAL = "local"
# immediate connect() errors that only the local stack produces: lwIP hands ICMP errors to no
# TCP socket, and a non-blocking connect reports nothing from the far end synchronously
# (MicroPython's numbers are Linux's; ENETUNREACH is not in its errno module)
ENOMEM = getattr(errno, "ENOMEM", 12)
LOCAL_ERRNOS = (ENOMEM, getattr(errno, "ENOBUFS", 105), getattr(errno, "EHOSTUNREACH", 113),
                getattr(errno, "ENETUNREACH", 101))


class SimWLAN:
    # The network.WLAN calls NetworkManager uses, against a simulated access point on
    # 127.0.0.1. Control file content: "up" (or no file), "down" (AP gone), "badauth",
    # "stuck" (associated, but every new socket fails with ENOMEM, as an exhausted lwIP).
    join_ms = 150  # association takes a little time, as on a real chip

    def __init__(self, control_path, ticks_ms=None):
        self.control = control_path
        self._ticks_ms = ticks_ms or time.ticks_ms  # tests pass the loop's virtual clock
        self._active = False
        self._joined = False
        self._ssid = None
        self._since = None
        self._failed = 0
        self.joins = 0

    def _ap(self):
        try:
            with open(self.control) as f:
                return f.read().strip() or "up"
        except OSError:
            return "up"

    def active(self, on=None):
        if on is not None:
            self._active = bool(on)
            if not on:
                self._joined = False
        return self._active

    def connect(self, ssid, key=None):
        if not self._active:
            raise OSError("WLAN not active")
        self._ssid = ssid
        self._joined = False
        self._failed = 0
        self._since = self._ticks_ms()

    def disconnect(self):
        self._joined = False
        self._since = None
        self._failed = 0

    def status(self, param=None):
        if param == "rssi":
            return -50 if self.isconnected() else -100
        if self._since is None:
            return self._failed or STAT_IDLE
        ap = self._ap()
        if ap == "down":
            if self._joined:  # association lost: only a new connect() starts another
                self._joined = False
                self._since = None
                return STAT_IDLE
            self._since = None  # the attempt failed; only a new connect() tries again
            self._failed = STAT_NO_AP_FOUND
            return STAT_NO_AP_FOUND
        if ap == "badauth":
            self._since = None
            self._failed = STAT_WRONG_PASSWORD
            return STAT_WRONG_PASSWORD
        if not self._joined and time.ticks_diff(self._ticks_ms(), self._since) >= self.join_ms:
            self._joined = True
            self.joins += 1
        return STAT_GOT_IP if self._joined else STAT_CONNECTING

    def isconnected(self):
        # the association is lost with the AP and comes back only through connect()
        return self.status() == STAT_GOT_IP

    def socket(self):
        # a new TCP socket from the simulated stack
        if self._ap() == "stuck":
            raise OSError(ENOMEM)
        import socket
        return socket.socket()

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, *args, **kw):
        if args and args[0] == "ssid":
            return self._ssid
        return None


def _new_socket(wlan):
    # the WLAN's own socket maker when it has one (SimWLAN), else the board's lwIP
    make = getattr(wlan, "socket", None)
    if make is not None:
        return make()
    import socket  # only a firmware with a network stack has it
    return socket.socket()


def _errno(e):
    return e.errno if hasattr(e, "errno") else (e.args[0] if e.args else None)


def board_wlan():
    import network
    return network.WLAN(network.STA_IF)


# network.PPP.status() in MicroPython 1.25 (a negative value is -lwIP's PPP error code)
PPP_INACTIVE = 0
PPP_ACTIVE = 1
PPP_CONNECTING = 3
PPP_CONNECTED = 4


class PPPLink:
    # network.PPP with the calls NetworkManager makes of a WLAN. connect() starts LCP and IPCP
    # (no authentication: ssid and key are not used); the link is up once IPCP has given the
    # device its address. A peer that hangs up or dies leaves the PPP object in an error
    # state, which reads as a failed join, so the manager backs off and connects again.
    KIND = "PPP"  # names the link in the manager's log lines

    def __init__(self, ppp):
        self.ppp = ppp
        self._active = False

    def active(self, on=None):
        if on is not None:
            self._active = bool(on)
            if not on:
                self.ppp.disconnect()
        return self._active

    def connect(self, ssid=None, key=None):
        if not self._active:
            raise OSError("PPP not active")
        self.ppp.connect()

    def disconnect(self):
        self.ppp.disconnect()

    def status(self, param=None):
        if param == "rssi":
            return 0  # a wire has no signal strength
        st = self.ppp.status()
        if st == PPP_CONNECTED:
            return STAT_GOT_IP
        if st == PPP_CONNECTING:
            return STAT_CONNECTING
        if st < 0:
            return STAT_CONNECT_FAIL
        return STAT_IDLE

    def isconnected(self):
        return self.ppp.isconnected()

    def ifconfig(self):
        return self.ppp.ifconfig()

    def config(self, *args, **kw):
        if args and args[0] == "ssid":
            return "ppp"
        return None


def board_link(opts):
    # The device options' "link": "wlan" (default, cyw43) or "ppp" (network.PPP on UART
    # "ppp_uart", default 0, at "ppp_baud", default 921600).
    kind = opts.get("link", "wlan")
    if kind == "wlan":
        return board_wlan()
    if kind != "ppp":
        raise ValueError("link must be 'wlan' or 'ppp', not %r" % (kind,))
    import machine
    import network
    uart = machine.UART(int(opts.get("ppp_uart", 0)), int(opts.get("ppp_baud", 921600)),
                        rxbuf=2048, txbuf=2048)
    return PPPLink(network.PPP(uart))


class NetworkManager:
    def __init__(self, ssid, password, wlan, connect_timeout_ms=15000, backoff_min_ms=500,
                 backoff_max_ms=60000, check_ms=1000, ticks_ms=None):
        self.ssid = ssid
        self._ticks_ms = ticks_ms or time.ticks_ms  # tests pass the loop's virtual clock
        self.password = password
        self.wlan = wlan
        self._kind = getattr(wlan, "KIND", "WiFi")  # "PPP" for a PPPLink
        self.connect_timeout_ms = connect_timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.check_ms = check_ms
        self.up = False
        self.attempts = 0       # join attempts
        self.connects = 0       # successful joins
        self.reconnects = 0     # joins after the first
        self.drops = 0
        self.last_error = None
        self.up_since = None
        self._event = asyncio.Event()
        self._listeners = []
        self.probes = 0
        self.probe_failures = 0  # probes the local stack refused
        logger.add_secret(password)
        http_client.set_link_check(self._link_usable)

    def _link_usable(self):
        # http_client asks before each request: False fails it fast ("no network link"); a
        # simulated stuck stack fails it the way the board's lwIP would, at socket creation
        if not self.wlan.isconnected():
            return False
        if getattr(self.wlan, "socket", None) is not None:
            try:
                _new_socket(self.wlan).close()
            except OSError as e:
                raise http_client.HTTPError("no socket: %s" % http_client._errname(e))
        return True

    def probe(self, host, port):
        # Can the local stack open a TCP socket to host:port at all? Never blocks: the connect
        # is non-blocking and only its immediate result counts. -> (PROBE_OK | PROBE_LOCAL, why)
        import socket
        self.probes += 1
        try:
            addr = socket.getaddrinfo(host, port)[0][-1]
        except OSError as e:  # name resolution needs a distant DNS server: not local evidence
            return PROBE_OK, "getaddrinfo: %s" % http_client._errname(e)
        try:
            s = _new_socket(self.wlan)
        except OSError as e:
            self.probe_failures += 1
            return PROBE_LOCAL, "socket(): %s" % http_client._errname(e)
        try:
            s.setblocking(False)
            s.connect(addr)
        except OSError as e:
            if _errno(e) in LOCAL_ERRNOS:
                self.probe_failures += 1
                return PROBE_LOCAL, "connect(): %s" % http_client._errname(e)
            return PROBE_OK, "connect(): %s" % http_client._errname(e)  # in progress, refused..
        finally:
            s.close()
        return PROBE_OK, "connected"

    def on_change(self, fn):
        # fn(up) after every link change; an AlarmManager flushes its buffer on True
        self._listeners.append(fn)

    async def wait_up(self):
        while not self.up:
            self._event.clear()
            await self._event.wait()

    def health(self):
        ip = None
        if self.up:
            try:
                ip = self.wlan.ifconfig()[0]
            except Exception:
                pass
        return {"connected": self.up, "ip": ip, "attempts": self.attempts,
                "connects": self.connects, "reconnects": self.reconnects, "drops": self.drops,
                "last_error": self.last_error}

    def _set(self, up):
        if up == self.up:
            return
        self.up = up
        if up:
            self.up_since = self._ticks_ms()
            self._event.set()
        for fn in self._listeners:
            try:
                fn(up)
            except Exception as e:
                _log.error("link listener failed", error=e)

    def _backoff(self, n):
        # exponential, capped, with jitter in [delay/2, delay] so a fleet does not rejoin in step
        d = self.backoff_min_ms << min(n, 16)
        if d > self.backoff_max_ms:
            d = self.backoff_max_ms
        return d // 2 + random.getrandbits(20) % (d // 2 + 1)

    async def _join(self):
        self.attempts += 1
        w = self.wlan
        w.active(True)
        try:
            w.disconnect()
        except Exception:
            pass
        try:
            w.connect(self.ssid, self.password)
        except OSError as e:
            self.last_error = str(e)
            return False
        t0 = self._ticks_ms()
        while time.ticks_diff(self._ticks_ms(), t0) < self.connect_timeout_ms:
            st = w.status()
            if w.isconnected():
                return True
            if st in (STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_CONNECT_FAIL):
                self.last_error = {STAT_WRONG_PASSWORD: "wrong password",
                                   STAT_NO_AP_FOUND: "no access point",
                                   STAT_CONNECT_FAIL: "connect failed"}[st]
                return False
            await asyncio.sleep_ms(100)
        self.last_error = "join timed out"
        return False

    def _connected(self):
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self.last_error = None
        _log.info(self._kind + " connected", ssid=self.ssid, ip=self.wlan.ifconfig()[0],
                  attempts=self.attempts, reconnects=self.reconnects)
        self._set(True)

    async def run(self):
        failures = 0
        while True:
            if self.wlan.isconnected():
                if not self.up:  # joined by the driver itself
                    self._connected()
                await asyncio.sleep_ms(self.check_ms)
                continue
            if self.up:
                self.drops += 1
                _log.warning(self._kind + " link lost", ssid=self.ssid)
                self._set(False)
            if await self._join():
                failures = 0
                self._connected()
            else:
                delay = self._backoff(failures)
                failures += 1
                _log.warning(self._kind + " join failed", ssid=self.ssid, error=self.last_error,
                             retry_ms=delay)
                await asyncio.sleep_ms(delay)
