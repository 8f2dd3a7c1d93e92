# AuthManager: proves the device key to ServiceDiscovery and keeps the JWT it returns fresh.
# proof = hex HMAC-SHA256(device key, "<device_id>|<timestamp>|<nonce>") (openapi.yaml,
# registerDevice). The token is renewed at 80% of its lifetime and on any 401; a key written to
# key_file replaces the running key without a reboot.
#   headers = await auth.headers()                 # {"Authorization": "Bearer ..."}
#   resp = await auth.request("GET", "config")     # a service name or a URL; 401 -> re-register
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import os
import time

from binascii import hexlify

from iotlib import http_client, logger, platform_url
from iotlib.hmac_sha256 import hmac_sha256

_log = logger.get("auth")
REGISTER_PATH = "/v1/devices/register"


class AuthError(OSError):
    pass


def _check_services(services):
    # {name: URL} from the registration answer; each URL as strict as the platform URL
    if not isinstance(services, dict):
        raise ValueError("registration answer: services is not an object")
    for name in services:
        platform_url.check(services[name], "service %r URL" % name)


REGISTER_BACKOFF_MS = 1000       # after a failed registration, doubling to
REGISTER_BACKOFF_MAX_MS = 60000
# a board's first registration waits this long at most for the first time sync: with the RTC
# still in 2021 the platform's certificate is "not yet valid" and the proof's timestamp stale
CLOCK_WAIT_MS = 5000


def proof(key, device_id, timestamp, nonce):
    msg = ("%s|%d|%s" % (device_id, timestamp, nonce)).encode()
    return hexlify(hmac_sha256(key.encode(), msg)).decode()


def register_url(url):
    # the original spec shows a ServiceDiscovery URL: take it as the register endpoint, or as
    # its base
    url = url.rstrip("/")
    if url.endswith("/register"):
        return url
    path = url.partition("://")[2].partition("/")[2]
    return url + (REGISTER_PATH if not path else "/register")


class AuthManager:
    def __init__(self, device_id, device_key, service_discovery_url, key_file=None,
                 tenant=None, namespace=None, alarm=None, timeout_ms=5000):
        self.device_id = device_id
        self.key = device_key
        self.url = register_url(service_discovery_url)
        self.key_file = key_file
        self.want_tenant = tenant
        self.want_namespace = namespace
        self.alarm = alarm
        self.timeout_ms = timeout_ms
        self.tenant = tenant
        self.namespace = namespace
        self.services = {}
        self.token = None
        self.expires_at = 0       # server clock
        self.clock_offset = 0     # server time - local time, learned from the platform
        self.registrations = 0
        self.failures = 0
        self.net = None           # NetworkManager, to wait for the link
        self.clock_set = None     # asyncio.Event set at the first time sync (boards)
        self._refresh_at = None   # ticks_ms
        self._lock = asyncio.Lock()
        self._key_stat = None
        self._retry_at = None     # ticks_ms before which no registration is tried
        self._backoff = REGISTER_BACKOFF_MS
        logger.add_secret(device_key)
        self._check_key_file()

    # ---- key ----

    def _check_key_file(self):
        if not self.key_file:
            return False
        try:
            st = os.stat(self.key_file)
        except OSError:
            return False
        sig = (st[6], st[8])
        if sig == self._key_stat:
            return False
        self._key_stat = sig
        try:
            with open(self.key_file) as f:
                key = f.read().strip()
        except OSError:
            return False
        if not key or key == self.key:
            return False
        logger.add_secret(key)
        self.key = key
        _log.info("device key reloaded from file", file=self.key_file)
        self.invalidate("key changed")
        return True

    # ---- token ----

    @property
    def registered(self):
        return self.token is not None

    def invalidate(self, why):
        if self.token is not None:
            _log.info("token dropped", reason=why)
        self.token = None
        self._refresh_at = None
        self._retry_at = None

    def retry_now(self):
        # the clock was just set: a certificate refused as "not yet valid" may pass now
        self._retry_at = None
        self._backoff = REGISTER_BACKOFF_MS

    def _due(self):
        return self.token is None or (
            self._refresh_at is not None and time.ticks_diff(time.ticks_ms(), self._refresh_at) >= 0)

    def now(self):
        # best known platform time, for clocks not yet synchronised
        return int(time.time()) + self.clock_offset

    async def register(self):
        # every caller (config, state, heartbeat, alarms) comes through here when a token is
        # due: after a failure they all wait out the same backoff instead of each trying
        async with self._lock:
            if not self._due():
                return
            if self._retry_at is not None:
                wait = time.ticks_diff(self._retry_at, time.ticks_ms())
                if wait > 0:
                    raise AuthError("not registered (next attempt in %d ms)" % wait)
            clock = self.clock_set
            if clock is not None and not clock.is_set():
                try:
                    await asyncio.wait_for_ms(clock.wait(), CLOCK_WAIT_MS)
                except asyncio.TimeoutError:
                    pass  # no time server answers: try anyway (a saved time floor may do)
            try:
                await self._register()
            except OSError:
                self._retry_at = time.ticks_add(time.ticks_ms(), self._backoff)
                self._backoff = min(self._backoff * 2, REGISTER_BACKOFF_MAX_MS)
                raise
            self._backoff = REGISTER_BACKOFF_MS
            self._retry_at = None

    async def _register(self, retried=False):
        ts = self.now()
        nonce = hexlify(os.urandom(12)).decode()
        body = {"device_id": self.device_id, "timestamp": ts, "nonce": nonce,
                "proof": proof(self.key, self.device_id, ts, nonce)}
        r = await http_client.request("POST", self.url, body=body, timeout_ms=self.timeout_ms)
        try:
            doc = r.json()
        except OSError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        if r.status == 401 and doc.get("error") == "stale_timestamp" and "server_time" in doc \
                and not retried:
            self.clock_offset = doc["server_time"] - int(time.time())
            _log.info("clock differs from the platform; retrying", offset_s=self.clock_offset)
            return await self._register(True)
        if r.status != 200:
            self.failures += 1
            msg = "registration refused: %d %s: %s" % (
                r.status, doc.get("error", ""), doc.get("message", ""))
            self._fail("auth.register", msg)
            raise AuthError(msg)
        for k, want in (("tenant", self.want_tenant), ("namespace", self.want_namespace)):
            if want is not None and doc.get(k) != want:
                msg = "platform placed the device in %s %r, expected %r" % (k, doc.get(k), want)
                self._fail("auth.tenancy", msg)
                raise AuthError(msg)
        try:
            token = doc["token"]
            logger.add_secret(token, True)  # before anything can log it
            tenant, namespace, services = doc["tenant"], doc["namespace"], doc["services"]
            expires_at, server_time = doc["expires_at"], doc["server_time"]
            life_ms = int(doc["expires_in"]) * 1000
        except (KeyError, TypeError, ValueError) as e:
            self.failures += 1
            raise AuthError("registration answer lacks %s" % e)
        try:
            _check_services(services)
        except ValueError as e:
            # the token would travel to these URLs: a plain one would show it to the network
            self.failures += 1
            self._fail("auth.service_url", str(e))
            raise AuthError(str(e))
        _log.debug("register answer", body=r.body)
        self.token = token
        self.tenant = tenant
        self.namespace = namespace
        self.services = services
        self.expires_at = expires_at
        self.clock_offset = server_time - int(time.time())
        self._refresh_at = time.ticks_add(time.ticks_ms(), life_ms * 4 // 5)
        self.registrations += 1
        _log.info("registered", tenant=self.tenant, namespace=self.namespace,
                  expires_in=doc["expires_in"], registrations=self.registrations)

    def _fail(self, key, msg):
        _log.error(msg, key=key)
        if self.alarm:
            self.alarm(key, msg)

    async def headers(self):
        if self._due():
            await self.register()
        if self.token is None:
            raise AuthError("not registered")
        return {"Authorization": "Bearer " + self.token}

    def service(self, name):
        url = self.services.get(name)
        if url is None:
            raise AuthError("no %r service URL (not registered yet)" % name)
        return url

    async def request(self, method, url, body=None, headers=None, timeout_ms=None,
                      max_body=None):
        # url: a full URL or a service name from the registration ("config", "state", ...)
        for attempt in (0, 1):
            h = await self.headers()
            if not url.startswith("http"):
                target = self.service(url)
            else:
                target = url
            if headers:
                for k in headers:
                    h[k] = headers[k]
            t0 = time.ticks_ms()
            r = await http_client.request(method, target, body, h,
                                          timeout_ms or self.timeout_ms, max_body)
            _log.debug("http", method=method, url=target, status=r.status, headers=h,
                       ms=time.ticks_diff(time.ticks_ms(), t0))
            if r.status != 401 or attempt:
                return r
            try:
                why = r.json().get("error", "401")
            except OSError:
                why = "401"
            self.invalidate(why)  # expired or revoked: register again, once
        return r

    # ---- task ----

    async def run(self):
        while True:
            self._check_key_file()
            if self._due() and (self.net is None or self.net.up) and (
                    self._retry_at is None or time.ticks_diff(time.ticks_ms(), self._retry_at) >= 0):
                try:
                    await self.register()
                except OSError as e:
                    _log.warning("registration failed", error=e,
                                 retry_ms=time.ticks_diff(self._retry_at, time.ticks_ms())
                                 if self._retry_at is not None else 0)
            await asyncio.sleep_ms(500)
