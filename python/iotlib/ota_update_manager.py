# OTAUpdateManager: offer check, ranged download, sha256 + Ed25519 checks, staging,
# apply through a hook, confirm after a healthy boot or roll back.
#
# Trust: only the Ed25519 public key the device was provisioned with verifies an
# image (the platform signs the raw 32-byte SHA-256 digest). The key is never taken
# from the network at update time.
#
# Hooks (the board-specific part):
#   apply_hook(image_path, meta): make meta["version"] the one that runs after the
#     next reset, keeping the running one for rollback (an app image: unpack into the
#     inactive app folder and switch a pointer file; a firmware image: write the
#     inactive flash slot of a two-slot bootloader). Raise to refuse.
#   rollback_hook(pending): make pending["previous"] run again after the next reset.
#   reset(): reboot (machine.reset on the board).
# AppVersionFile below is the simulation's pair of hooks.
#
# Persisted state (ota/state.json, replaced atomically):
#   pending: the version on trial, the one before it, and how many boots it had;
#   bad: versions that failed or were rolled back (never offered again);
#   report: outcomes decided before a reset, raised as alarms on the next boot.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
try:
    import json
except ImportError:
    import ujson as json
import binascii
import hashlib
import os
import time

from iotlib import atomic_file
from iotlib import ed25519

MAX_BAD = 8


class OTAError(Exception):
    """An update refused; key is the alarm's dedup key."""

    def __init__(self, key, message, permanent=True):
        super().__init__(message)
        self.key = key
        self.permanent = permanent


class _NullLog:
    def debug(self, msg, **kw):
        pass

    info = warning = error = debug


def version_key(v):
    """'1.10.0' > '1.9.2': numeric parts compare as numbers."""
    out = []
    for part in v.replace("-", ".").replace("+", ".").split("."):
        out.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return out


def _hex(b):
    return binascii.hexlify(b).decode()


def _is_hex(s, n):
    if not isinstance(s, str) or len(s) != n:
        return False
    for c in s:
        if c not in "0123456789abcdef":
            return False
    return True


def load_public_key(path):
    """The provisioned Ed25519 key: a file holding its 64 hex characters."""
    with open(path) as f:
        text = f.read().strip()
    if not _is_hex(text, 64):
        raise ValueError("%s: expected 64 lowercase hex characters" % path)
    return binascii.unhexlify(text)


def file_sha256(path, chunk=1024):
    h = hashlib.sha256()
    buf = bytearray(chunk)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(buf if n == chunk else buf[:n])
    return h.digest()


def _remove(path):
    try:
        atomic_file.delete(path)
    except OSError:
        pass


class AppVersionFile:
    """Simulation hooks: the installed app is a version file, the image kept beside it."""

    def __init__(self, path, default="0.0.0"):
        self.path = path
        self.default = default

    def read(self):
        v = atomic_file.read(self.path)
        if not v:
            return self.default
        return v.decode().strip() or self.default

    def apply(self, image_path, meta):
        atomic_file.rename(image_path, self.path + ".img")
        atomic_file.write(self.path, meta["version"].encode())

    def rollback(self, pending):
        atomic_file.write(self.path, pending["previous"].encode())


class OTAUpdateManager:
    def __init__(self, version, public_key, auth=None, offer_url=None, http=None, logger=None,
                 alarms=None, state_dir="ota", apply_hook=None, rollback_hook=None, reset=None,
                 healthy=None, confirm_after_s=30, max_boots=3, check_period_s=3600,
                 chunk_size=4096, max_image_bytes=1 << 20, kinds=("app",), timeout_ms=10000,
                 chunk_tries=3):
        if isinstance(public_key, str):
            public_key = binascii.unhexlify(public_key)
        if public_key is not None and len(public_key) != 32:
            raise ValueError("the OTA public key must be 32 bytes (Ed25519)")
        self.version = version
        self.public_key = public_key
        self.auth = auth
        self._offer_url = offer_url
        self._http = http
        self.log = logger or _NullLog()
        self.alarms = alarms
        self.state_dir = state_dir
        self.apply_hook = apply_hook
        self.rollback_hook = rollback_hook
        if reset is None:
            try:
                from machine import reset
            except ImportError:
                reset = None
        self._reset = reset
        self.healthy = healthy
        self.confirm_after_ms = confirm_after_s * 1000
        self.max_boots = max_boots
        self.check_period_s = check_period_s
        self.chunk_size = chunk_size
        self.max_image_bytes = max_image_bytes
        self.kinds = kinds
        self.timeout_ms = timeout_ms
        self.chunk_tries = chunk_tries
        self.trial = False          # running a pending version that is not confirmed yet
        self.reset_required = False  # a new version is installed; waiting for the reset
        self._refused = None        # (version, sha256, signature) of the offer last refused
        self._wake = asyncio.Event()
        self.verify_ms = None
        self.checks = 0
        self.applied = 0
        self.refused = 0
        try:
            os.mkdir(state_dir)
        except OSError:
            pass

    # ---- persisted state ----

    def _path(self, name):
        return self.state_dir + "/" + name

    def _load(self):
        try:
            st = json.loads(atomic_file.read(self._path("state.json")))
            if isinstance(st, dict):
                return st
        except (OSError, ValueError, TypeError):
            pass
        return {}

    def _save(self, st):
        atomic_file.write(self._path("state.json"), json.dumps(st).encode())

    def _alarm(self, key, message, severity="error"):
        if severity == "info":
            self.log.info(message, key=key)
        else:
            self.log.warning(message, key=key)
        if self.alarms is not None:
            self.alarms.raise_alarm_nowait(key, message, severity)

    # ---- boot: count the trial, roll back when it ran out ----

    def boot(self):
        """Call once at start, before the application relies on the new version.

        Returns "none", "trial" (a new version on trial, this boot counted),
        "rolled_back", "not_running" (the install did not take) or "interrupted" (the
        power went during the install: it is fetched again, not marked bad)."""
        st = self._load()
        for key, msg, sev in st.pop("report", []):
            self._alarm(key, msg, sev)
        p = st.get("pending")
        result = "none"
        if p and p.get("version") != self.version and not p.get("applied"):
            # the power went before the apply hook returned: not a bad image, fetch it again
            st["pending"] = None
            self._alarm("ota.interrupted", "installing %s was interrupted; running %s, the"
                        " update will be fetched again" % (p["version"], self.version),
                        "warning")
            result = "interrupted"
        elif p and p.get("version") != self.version:
            st["pending"] = None
            self._mark_bad(st, p["version"])
            self._alarm("ota.not_running", "version %s was installed but %s is running; not"
                        " retrying it" % (p["version"], self.version))
            result = "not_running"
        elif p and p.get("boots", 0) >= self.max_boots:
            st["pending"] = None
            self._mark_bad(st, p["version"])
            msg = "version %s did not confirm within %d boots; rolled back to %s" % (
                p["version"], self.max_boots, p.get("previous"))
            try:
                if self.rollback_hook is not None:
                    self.rollback_hook(p)
            except Exception as e:
                msg += " (rollback hook failed: %r)" % (e,)
            # reported after the reset that brings the old version back
            st.setdefault("report", []).append(["ota.rolled_back", msg, "error"])
            self._save(st)
            self.log.error(msg)
            self.reset_required = True
            if self._reset is not None:
                self._reset()
            return "rolled_back"
        elif p:
            p["boots"] = p.get("boots", 0) + 1
            self.trial = True
            result = "trial"
            self.log.info("new version on trial", version=self.version, boot=p["boots"],
                          max_boots=self.max_boots)
        self._save(st)
        return result

    def confirm(self):
        """The running version is healthy: keep it (no rollback from now on)."""
        if not self.trial:
            return False
        st = self._load()
        p = st.get("pending") or {}
        st["pending"] = None
        st["confirmed"] = self.version
        self._save(st)
        self.trial = False
        _remove(self._path("image.bin"))
        self._alarm("ota.confirmed", "version %s confirmed after a healthy boot (was %s)"
                    % (self.version, p.get("previous")), "info")
        self._wake.set()
        return True

    def _mark_bad(self, st, version):
        bad = st.get("bad") or []
        if version not in bad:
            bad.append(version)
        st["bad"] = bad[-MAX_BAD:]

    # ---- checking and downloading ----

    def check_now(self):
        self._wake.set()

    def counters(self):
        return {"ota_checks": self.checks, "ota_applied": self.applied,
                "ota_refused": self.refused, "ota_trial": 1 if self.trial else 0}

    def _client(self):
        if self._http is None:
            from iotlib import http_client
            self._http = http_client
        return self._http

    async def _get(self, url, headers=None):
        h = {}
        if self.auth is not None:
            h.update(await self.auth.headers())
        if headers:
            h.update(headers)
        return await self._client().request("GET", url, headers=h, timeout_ms=self.timeout_ms)

    def _unauthorized(self, r):
        if r.status == 401 and hasattr(self.auth, "invalidate"):
            self.auth.invalidate("ota: 401")  # the next request registers again

    def _check_offer(self, o):
        for name, kind in (("version", str), ("url", str), ("size", int)):
            if not isinstance(o.get(name), kind):
                raise OTAError("ota.bad_offer", "offer lacks a valid %r" % name)
        if not _is_hex(o.get("sha256"), 64):
            raise OTAError("ota.bad_offer", "offer %s: sha256 is not 64 hex characters"
                           % o["version"])
        if not _is_hex(o.get("signature"), 128):
            raise OTAError("ota.bad_offer", "offer %s: signature is not 128 hex characters"
                           % o["version"])
        if o.get("signature_algorithm", "Ed25519") != "Ed25519":
            raise OTAError("ota.bad_offer", "offer %s: unsupported signature algorithm %r"
                           % (o["version"], o.get("signature_algorithm")))
        if o.get("kind", "app") not in self.kinds:
            raise OTAError("ota.bad_offer", "offer %s: kind %r not installable here"
                           % (o["version"], o.get("kind")))
        if not 0 < o["size"] <= self.max_image_bytes:
            raise OTAError("ota.too_large", "offer %s: size %d outside 1..%d bytes"
                           % (o["version"], o["size"], self.max_image_bytes))

    def _check_signature(self, o):
        if self.public_key is None:
            raise OTAError("ota.no_public_key", "no OTA public key provisioned; refusing %s"
                           % o["version"])
        t0 = time.ticks_ms()
        try:
            ed25519.verify(self.public_key, binascii.unhexlify(o["signature"]),
                           binascii.unhexlify(o["sha256"]))
        except ed25519.BadSignature as e:
            raise OTAError("ota.bad_signature", "image %s refused: Ed25519 signature over sha256"
                           " %s: %s" % (o["version"], o["sha256"], e))
        finally:
            self.verify_ms = time.ticks_diff(time.ticks_ms(), t0)

    def _check_space(self, size):
        try:
            st = os.statvfs(self.state_dir)
        except (AttributeError, OSError):
            return
        free = st[0] * st[4]
        if free < size + 8192:
            raise OTAError("ota.no_space", "image of %d bytes does not fit (%d bytes free)"
                           % (size, free), permanent=False)

    async def _download(self, o, part):
        """Fetch the image into part with Range requests; returns its sha256 digest."""
        size = o["size"]
        h = hashlib.sha256()
        got = 0
        with atomic_file.create(part) as f:
            while got < size:
                last = min(got + self.chunk_size, size) - 1
                data = await self._chunk(o, got, last)
                f.write(data)
                h.update(data)
                got += len(data)
        return h.digest()

    async def _chunk(self, o, first, last):
        want = last - first + 1
        err = None
        for attempt in range(self.chunk_tries):
            if attempt:
                await asyncio.sleep_ms(500 * attempt)
            try:
                r = await self._get(o["url"], {"Range": "bytes=%d-%d" % (first, last)})
            except Exception as e:
                err = "%s: %s" % (type(e).__name__, e)
                continue
            if r.status == 206:
                cr = r.headers.get("content-range", "")
                if not cr.startswith("bytes %d-%d/" % (first, last)) or len(r.body) != want:
                    raise OTAError("ota.bad_download", "image %s: range %d-%d answered with %r"
                                   " and %d bytes" % (o["version"], first, last, cr, len(r.body)))
                if cr[cr.rfind("/") + 1:] != str(o["size"]):
                    raise OTAError("ota.bad_download", "image %s: server size %s, offer said %d"
                                   % (o["version"], cr[cr.rfind("/") + 1:], o["size"]))
                return r.body
            if r.status == 200 and first == 0 and len(r.body) == o["size"] == want:
                return r.body  # a server without ranges sent it whole, and it fits one chunk
            if r.status in (401, 408, 429) or r.status >= 500:
                err = "HTTP %d" % r.status
                self._unauthorized(r)
                continue
            raise OTAError("ota.bad_download", "image %s: range %d-%d answered HTTP %d"
                           % (o["version"], first, last, r.status))
        raise OTAError("ota.download_failed", "image %s: range %d-%d failed %d times, last: %s"
                       % (o["version"], first, last, self.chunk_tries, err), permanent=False)

    async def check(self):
        """One offer check; downloads, verifies and applies a newer image.

        Returns a short outcome: "none", "up_to_date", "trial", "skipped", "applied",
        "refused" or "failed"."""
        self.checks += 1
        if self.trial or self.reset_required:
            return "trial"
        url = self._offer_url() if callable(self._offer_url) else self._offer_url
        if not url:
            return "failed"
        try:
            r = await self._get(url)
        except Exception as e:
            self.log.warning("ota offer check failed", error="%s: %s" % (type(e).__name__, e))
            return "failed"
        if r.status != 200:
            self.log.warning("ota offer check failed", status=r.status)
            self._unauthorized(r)
            return "failed"
        try:
            o = r.json()
        except (ValueError, OSError):
            self._alarm("ota.bad_offer", "offer is not JSON")
            return "failed"
        if not isinstance(o, dict) or not o.get("available"):
            return "none"
        ident = (o.get("version"), o.get("sha256"), o.get("signature"))
        if ident == self._refused:
            return "skipped"
        try:
            self._check_offer(o)
            if version_key(o["version"]) <= version_key(self.version):
                return "up_to_date"
            if o["version"] in (self._load().get("bad") or []):
                return "skipped"
            return await self._update(o)
        except OTAError as e:
            if e.permanent:
                self._refused = ident
            self.refused += 1
            self._alarm(e.key, str(e), "error" if e.permanent else "warning")
            return "refused" if e.permanent else "failed"

    async def _update(self, o):
        # the signature first: a forged offer costs no download
        self._check_signature(o)
        self._check_space(o["size"])
        part = self._path("image.part")
        staged = self._path("image.bin")
        _remove(part)
        self.log.info("downloading update", version=o["version"], size=o["size"])
        try:
            digest = await self._download(o, part)
        except BaseException:
            _remove(part)
            raise
        if _hex(digest) != o["sha256"]:
            _remove(part)
            raise OTAError("ota.bad_hash", "image %s refused: sha256 %s, offer says %s"
                           % (o["version"], _hex(digest), o["sha256"]))
        atomic_file.rename(part, staged)  # staged only once both checks passed
        return self._apply(o, staged, digest)

    def _apply(self, o, staged, digest):
        # read back what flash holds: apply exactly the bytes that were checked
        if file_sha256(staged) != digest:
            _remove(staged)
            raise OTAError("ota.bad_hash", "staged image %s changed on flash; not applied"
                           % o["version"], permanent=False)
        if self.apply_hook is None:
            raise OTAError("ota.no_hook", "no apply hook on this device; %s not applied"
                           % o["version"])
        st = self._load()
        st["pending"] = {"version": o["version"], "previous": self.version, "boots": 0,
                         "sha256": o["sha256"], "kind": o.get("kind", "app")}
        self._save(st)
        meta = {"version": o["version"], "size": o["size"], "sha256": o["sha256"],
                "kind": o.get("kind", "app")}
        try:
            self.apply_hook(staged, meta)
        except Exception as e:
            st["pending"] = None
            self._save(st)
            raise OTAError("ota.apply_failed", "applying %s failed: %r" % (o["version"], e),
                           permanent=False)
        st["pending"]["applied"] = True  # a boot not running it now means it did not take
        self._save(st)
        self.applied += 1
        self.reset_required = True
        self.log.info("update applied; reset to run it", version=o["version"],
                      previous=self.version)
        return "applied"

    # ---- the task ----

    async def _confirm_when_healthy(self):
        good_since = None
        while self.trial:
            if self.healthy is not None and self.healthy():
                now = time.ticks_ms()
                if good_since is None:
                    good_since = now
                elif time.ticks_diff(now, good_since) >= self.confirm_after_ms:
                    self.confirm()
                    return
            else:
                good_since = None
            await asyncio.sleep_ms(min(1000, max(50, self.confirm_after_ms // 4)))

    async def _wait(self, seconds):
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def run(self):
        """Confirm a version on trial once healthy, then check for updates periodically."""
        if self.trial and self.healthy is not None:
            await self._confirm_when_healthy()
        while True:
            while self.trial:  # confirm() comes from elsewhere
                await self._wait(5)
            result = await self.check()
            if result == "applied":
                await self._reset_soon()
            await self._wait(self.check_period_s)

    async def _reset_soon(self):
        # give the alarm queue a moment so the platform hears about it
        if self.alarms is not None:
            try:
                await asyncio.wait_for_ms(self.alarms.flush(), 3000)
            except Exception:
                pass
        if self._reset is not None:
            self._reset()
