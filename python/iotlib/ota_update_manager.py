# OTAUpdateManager: signed release manifests, ranged download, sha256 check, staging,
# apply through a hook, confirm after a healthy boot or roll back.
#
# Trust: releases are signed offline by their owner (tools/release.py), never by the
# platform. An offer carries a manifest (canonical JSON text) and its Ed25519 signature;
# the signature is checked over the manifest's exact bytes with the device's trust
# anchors BEFORE any field is read. The manifest, not the offer, says what the image is:
# product, boards, kind, SemVer version, anti-rollback counter, size, sha256, and an
# optional tenant/namespace scope. Refused before any download (each an alarm naming
# the reason): a bad signature, another product/board/kind/tenant/namespace, a version
# not above the running one, a counter below the floor, an image URL on another origin
# than the platform's. The bearer token is only ever sent to the platform's origin.
#
# Trust anchors (release public keys): provisioned (config or a file) and saved at the
# first boot; from then on only a "release_keys" manifest signed by a current key
# changes them. The anti-rollback floor is raised only when a new version confirms.
#
# Hooks (the board-specific part):
#   apply_hook(image_path, meta): make meta["version"] the one that runs after the
#     next reset, keeping the running one for rollback (an app image: unpack into the
#     inactive app folder and switch a pointer file; a firmware image: write the
#     inactive flash slot of a two-slot bootloader). Raise to refuse.
#   rollback_hook(pending): make pending["previous"] run again after the next reset.
#     If it raises, the version stays pending (never confirmed) and the rollback is retried.
#   reset(): reboot (machine.reset on the board).
# AppVersionFile below is the simulation's pair of hooks.
#
# Persisted state (ota/state.json, replaced atomically):
#   pending: the version on trial, the one before it, its counter, how many boots it had;
#   confirmed, counter_floor: the last confirmed version and its anti-rollback counter;
#   keys, keys_counter: the trust anchors (hex) and the counter of the manifest that set them;
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
MAX_KEYS = 4
MANIFEST_FORMAT = "relays-release/1"
PRODUCT = "relays-controller"
MAX_MANIFEST = 2048
ROLLBACK_RETRY_S = 30


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


def _ident_ok(part, numeric_only):
    if not part:
        return False
    for c in part:
        if not ("0" <= c <= "9" or (not numeric_only and (
                "a" <= c <= "z" or "A" <= c <= "Z" or c == "-"))):
            return False
    return True


def version_key(v):
    """SemVer 2.0 precedence key: '1.0.0-rc.1' < '1.0.0-rc.2' < '1.0.0' < '1.10.0'.

    Raises ValueError for anything that is not MAJOR.MINOR.PATCH[-pre][+build]."""
    if not isinstance(v, str) or len(v) > 64:
        raise ValueError("version must be a string of at most 64 characters")
    core, plus, build = v.partition("+")
    core, dash, pre = core.partition("-")
    nums = core.split(".")
    if len(nums) != 3 or (plus and not all(_ident_ok(b, False) for b in build.split("."))):
        raise ValueError("version %r is not SemVer MAJOR.MINOR.PATCH" % v)
    for n in nums:
        if not _ident_ok(n, True) or (len(n) > 1 and n[0] == "0"):
            raise ValueError("version %r: %r is not a number without leading zeros" % (v, n))
    key = [int(n) for n in nums]
    if not dash:
        return (key, (1,))  # a release ranks above all its pre-releases
    ids = []
    for ident in pre.split("."):
        if not _ident_ok(ident, False):
            raise ValueError("version %r: bad pre-release identifier %r" % (v, ident))
        if _ident_ok(ident, True):
            ids.append((0, int(ident), ""))  # numeric identifiers rank below alphanumeric ones
        else:
            ids.append((1, 0, ident))
    return (key, (0, ids))


def _origin(url):
    from iotlib.http_client import split_url
    scheme, host, port, _ = split_url(url)
    return scheme, host.lower(), port


def _origin_or_none(url):
    try:
        return _origin(url)
    except OSError:  # HTTPError: not an http(s) URL
        return None


def _hex(b):
    return binascii.hexlify(b).decode()


def _is_hex(s, n):
    if not isinstance(s, str) or len(s) != n:
        return False
    for c in s:
        if c not in "0123456789abcdef":
            return False
    return True


def load_public_keys(path):
    """Provisioned release keys: a file of Ed25519 public keys, 64 hex characters a line."""
    with open(path) as f:
        lines = [ln.strip() for ln in f.read().split("\n") if ln.strip()]
    if not 0 < len(lines) <= MAX_KEYS:
        raise ValueError("%s: expected 1 to %d keys" % (path, MAX_KEYS))
    for ln in lines:
        if not _is_hex(ln, 64):
            raise ValueError("%s: expected 64 lowercase hex characters a line" % path)
    return [binascii.unhexlify(ln) for ln in lines]


def _keys(value):
    # hex strings or 32-byte values -> list of 32-byte keys
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        value = [value]
    out = []
    for k in value:
        if isinstance(k, str):
            if not _is_hex(k, 64):
                raise ValueError("a release key must be 64 lowercase hex characters")
            k = binascii.unhexlify(k)
        if len(k) != 32:
            raise ValueError("a release key must be 32 bytes (Ed25519)")
        out.append(bytes(k))
    if len(out) > MAX_KEYS:
        raise ValueError("at most %d release keys" % MAX_KEYS)
    return out


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
    def __init__(self, version, release_keys, auth=None, offer_url=None, http=None, logger=None,
                 alarms=None, state_dir="ota", apply_hook=None, rollback_hook=None, reset=None,
                 healthy=None, confirm_after_s=30, max_boots=3, check_period_s=3600,
                 chunk_size=4096, max_image_bytes=1 << 20, kinds=("app",), timeout_ms=10000,
                 chunk_tries=3, board="RPI_PICO_W", product=PRODUCT, scope=None,
                 platform_url=None):
        # scope() -> (tenant, namespace) of this device, or None before registration;
        # platform_url: the platform's URL (str or callable): images come from its origin only
        version_key(version)  # the running version must itself be SemVer
        provisioned = _keys(release_keys)
        self.version = version
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
        self.board = board
        self.product = product
        self._scope = scope
        self._platform_url = platform_url
        self._origin = None         # the platform's (scheme, host, port), set by each check
        self._keys_seen = None      # the last release_keys manifest looked at
        self.trial = False          # running a pending version that is not confirmed yet
        self.reset_required = False  # a new version is installed; waiting for the reset
        self.rollback_needed = False  # the rollback hook failed: retry, never confirm
        self._refused = None        # (manifest, signature, url) of the offer last refused
        self._wake = asyncio.Event()
        self.verify_ms = None
        self.checks = 0
        self.applied = 0
        self.refused = 0
        try:
            os.mkdir(state_dir)
        except OSError:
            pass
        st = self._load()
        saved = st.get("keys")
        if saved:
            self.keys = _keys(saved)  # saved anchors win over anything provisioned later
        else:
            self.keys = provisioned
            if provisioned:
                st["keys"] = [_hex(k) for k in provisioned]
                st["keys_counter"] = -1
                self._save(st)

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

    def counter_floor(self):
        return self._load().get("counter_floor", 0)

    # ---- boot: count the trial, roll back when it ran out ----

    def boot(self):
        """Call once at start, before the application relies on the new version.

        Returns "none", "trial" (a new version on trial, this boot counted),
        "rolled_back", "rollback_failed" (still pending; retried by run()), "not_running"
        (the install did not take) or "interrupted" (the power went during the install: it is
        fetched again, not marked bad)."""
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
            return "rolled_back" if self._roll_back(st, p) else "rollback_failed"
        elif p:
            p["boots"] = p.get("boots", 0) + 1
            self.trial = True
            result = "trial"
            self.log.info("new version on trial", version=self.version, boot=p["boots"],
                          max_boots=self.max_boots)
        self._save(st)
        return result

    def _roll_back(self, st, p):
        # True: the previous version runs after the reset; False: the hook failed, p stays
        msg = "version %s did not confirm within %d boots; rolled back to %s" % (
            p["version"], self.max_boots, p.get("previous"))
        try:
            if self.rollback_hook is not None:
                self.rollback_hook(p)
        except Exception as e:
            p["rollback_failures"] = p.get("rollback_failures", 0) + 1
            st["pending"] = p
            self._save(st)
            self.rollback_needed = True
            self.trial = False
            self._alarm("ota.rollback_failed", "version %s did not confirm within %d boots and"
                        " the rollback to %s failed (%r); still pending, retrying"
                        % (p["version"], self.max_boots, p.get("previous"), e))
            return False
        st["pending"] = None
        self._mark_bad(st, p["version"])
        # reported after the reset that brings the old version back; the floor is untouched
        st.setdefault("report", []).append(["ota.rolled_back", msg, "error"])
        self._save(st)
        self.log.error(msg)
        self.rollback_needed = False
        self.reset_required = True
        if self._reset is not None:
            self._reset()
        return True

    def retry_rollback(self):
        st = self._load()
        p = st.get("pending")
        if not p:
            self.rollback_needed = False
            return True
        return self._roll_back(st, p)

    def confirm(self):
        """The running version is healthy: keep it (no rollback from now on)."""
        if not self.trial or self.rollback_needed:
            return False
        st = self._load()
        p = st.get("pending") or {}
        st["pending"] = None
        st["confirmed"] = self.version
        # anti-rollback: only a confirmed version raises the floor
        st["counter_floor"] = max(st.get("counter_floor", 0), p.get("counter", 0))
        self._save(st)
        self.trial = False
        _remove(self._path("image.bin"))
        self._alarm("ota.confirmed", "version %s confirmed after a healthy boot (was %s);"
                    " counter floor %d" % (self.version, p.get("previous"), st["counter_floor"]),
                    "info")
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

    def _platform_origin(self, fallback):
        u = self._platform_url() if callable(self._platform_url) else self._platform_url
        return _origin(u or fallback)

    async def _get(self, url, headers=None):
        h = {}
        # the bearer token goes to the platform's origin and nowhere else
        if self.auth is not None and _origin(url) == self._origin:
            h.update(await self.auth.headers())
        if headers:
            h.update(headers)
        return await self._client().request("GET", url, headers=h, timeout_ms=self.timeout_ms)

    def _unauthorized(self, r):
        if r.status == 401 and hasattr(self.auth, "invalidate"):
            self.auth.invalidate("ota: 401")  # the next request registers again

    def _verified(self, text, signature, what):
        """The manifest dict, once its exact bytes verify under a trust anchor."""
        if not self.keys:
            raise OTAError("ota.no_public_key", "no release key provisioned; refusing %s" % what)
        if not isinstance(text, str) or not 0 < len(text) <= MAX_MANIFEST:
            raise OTAError("ota.bad_offer", "%s: manifest is not a string of 1..%d characters"
                           % (what, MAX_MANIFEST))
        if not _is_hex(signature, 128):
            raise OTAError("ota.bad_offer", "%s: signature is not 128 hex characters" % what)
        data = text.encode()
        sig = binascii.unhexlify(signature)
        t0 = time.ticks_ms()
        try:
            for k in self.keys:
                if ed25519.is_valid(k, sig, data):
                    break
            else:
                raise OTAError("ota.bad_signature", "%s refused: Ed25519 signature over the"
                               " manifest does not verify with any of %d release key(s)"
                               % (what, len(self.keys)))
        finally:
            self.verify_ms = time.ticks_diff(time.ticks_ms(), t0)
        # only now are the bytes read as JSON
        try:
            m = json.loads(text)
        except ValueError:
            m = None
        if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
            raise OTAError("ota.bad_manifest", "%s: signed manifest is not a %s object"
                           % (what, MANIFEST_FORMAT))
        return m

    def _check_scope(self, m, what):
        mine = self._scope() if callable(self._scope) else self._scope
        for i, name in ((0, "tenant"), (1, "namespace")):
            want = m.get(name)
            if want is None:
                continue  # fleet-wide at this level
            have = mine[i] if mine else None
            if want != have:
                raise OTAError("ota.wrong_scope", "%s is signed for %s %r; this device is in %r"
                               % (what, name, want, have))

    def _check_manifest(self, m, url):
        """Every refusal before download; returns None, "up_to_date" or "skipped"."""
        what = "release"
        for name, kind in (("product", str), ("kind", str), ("version", str), ("sha256", str),
                           ("boards", list), ("counter", int), ("size", int), ("created", int)):
            if not isinstance(m.get(name), kind) or isinstance(m.get(name), bool):
                raise OTAError("ota.bad_manifest", "signed manifest lacks a valid %r" % name)
        try:
            vk = version_key(m["version"])
        except ValueError as e:
            raise OTAError("ota.bad_manifest", "signed manifest: %s" % e)
        what = "release %s" % m["version"]
        if not _is_hex(m["sha256"], 64):
            raise OTAError("ota.bad_manifest", "%s: sha256 is not 64 hex characters" % what)
        if m["product"] != self.product:
            raise OTAError("ota.wrong_product", "%s is for product %r, not %r"
                           % (what, m["product"], self.product))
        if self.board not in m["boards"]:
            raise OTAError("ota.wrong_board", "%s is for boards %r, not %s"
                           % (what, m["boards"][:4], self.board))
        if m["kind"] not in self.kinds:
            raise OTAError("ota.wrong_kind", "%s: kind %r not installable here"
                           % (what, m["kind"]))
        self._check_scope(m, what)
        running = version_key(self.version)
        if vk == running:
            return "up_to_date"
        if vk < running:
            raise OTAError("ota.not_newer", "%s is not above the running %s"
                           % (what, self.version))
        floor = self.counter_floor()
        if m["counter"] < floor:
            raise OTAError("ota.counter_below_floor", "%s: anti-rollback counter %d is below"
                           " the floor %d" % (what, m["counter"], floor))
        if not isinstance(url, str) or _origin_or_none(url) != self._origin:
            raise OTAError("ota.foreign_url", "%s: image URL %r is not on the platform's origin"
                           " %s://%s:%d" % ((what, url if isinstance(url, str) else None)
                                            + self._origin))
        if not 0 < m["size"] <= self.max_image_bytes:
            raise OTAError("ota.too_large", "%s: size %d outside 1..%d bytes"
                           % (what, m["size"], self.max_image_bytes))
        if m["version"] in (self._load().get("bad") or []):
            return "skipped"
        return None

    def update_keys(self, text, signature):
        """Replace the trust anchors with a 'release_keys' manifest signed by a current key."""
        m = self._verified(text, signature, "release key update")
        keys = m.get("keys")
        if m.get("kind") != "release_keys" or not isinstance(m.get("counter"), int) or \
                not isinstance(keys, list):
            raise OTAError("ota.bad_manifest", "release key update: not a release_keys manifest"
                           " with keys and counter")
        self._check_scope(m, "release key update")
        try:
            new = _keys(keys)
        except ValueError as e:
            raise OTAError("ota.bad_manifest", "release key update: %s" % e)
        if not new:
            raise OTAError("ota.bad_manifest", "release key update: no keys")
        st = self._load()
        if m["counter"] <= st.get("keys_counter", -1):
            return False  # already applied, or an old one replayed
        st["keys"] = [_hex(k) for k in new]
        st["keys_counter"] = m["counter"]
        self._save(st)
        self.keys = new
        self._alarm("ota.keys_changed", "release keys replaced (%d key(s), counter %d)"
                    % (len(new), m["counter"]), "info")
        return True

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
                    raise OTAError("ota.bad_download", "image %s: server size %s, manifest"
                                   " says %d" % (o["version"], cr[cr.rfind("/") + 1:], o["size"]))
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
        if self.trial or self.reset_required or self.rollback_needed:
            return "trial"
        url = self._offer_url() if callable(self._offer_url) else self._offer_url
        if not url:
            return "failed"
        try:
            self._origin = self._platform_origin(url)
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
        if not isinstance(o, dict):
            return "none"
        self._rotate_keys(o.get("release_keys"))
        ident = None
        try:
            if not o.get("available"):
                return "none"
            ident = (o.get("manifest"), o.get("signature"), o.get("url"))
            if ident == self._refused:
                return "skipped"
            m = self._verified(o.get("manifest"), o.get("signature"), "offered release")
            quiet = self._check_manifest(m, o.get("url"))
            if quiet:
                return quiet
            m["url"] = o["url"]
            return await self._update(m)
        except OTAError as e:
            if e.permanent and ident is not None:
                self._refused = ident
            self.refused += 1
            self._alarm(e.key, str(e), "error" if e.permanent else "warning")
            return "refused" if e.permanent else "failed"

    def _rotate_keys(self, rk):
        # A rotation that does not verify with our anchors is set aside, not fatal: a device
        # provisioned after the rotation holds only the new key and must still get updates.
        if not isinstance(rk, dict) or rk.get("manifest") in (self._keys_seen, None):
            return
        self._keys_seen = rk.get("manifest")
        try:
            self.update_keys(rk.get("manifest"), rk.get("signature"))
        except OTAError as e:
            self.log.warning("release key update not applied", reason=str(e), key=e.key)

    async def _update(self, m):
        self._check_space(m["size"])
        part = self._path("image.part")
        staged = self._path("image.bin")
        _remove(part)
        self.log.info("downloading update", version=m["version"], size=m["size"])
        try:
            digest = await self._download(m, part)
        except BaseException:
            _remove(part)
            raise
        if _hex(digest) != m["sha256"]:
            _remove(part)
            raise OTAError("ota.bad_hash", "image %s refused: sha256 %s, signed manifest says %s"
                           % (m["version"], _hex(digest), m["sha256"]))
        atomic_file.rename(part, staged)  # staged only once both checks passed
        return self._apply(m, staged, digest)

    def _apply(self, m, staged, digest):
        # read back what flash holds: apply exactly the bytes that were checked
        if file_sha256(staged) != digest:
            _remove(staged)
            raise OTAError("ota.bad_hash", "staged image %s changed on flash; not applied"
                           % m["version"], permanent=False)
        if self.apply_hook is None:
            raise OTAError("ota.no_hook", "no apply hook on this device; %s not applied"
                           % m["version"])
        st = self._load()
        st["pending"] = {"version": m["version"], "previous": self.version, "boots": 0,
                         "sha256": m["sha256"], "kind": m["kind"], "counter": m["counter"]}
        self._save(st)
        meta = {"version": m["version"], "size": m["size"], "sha256": m["sha256"],
                "kind": m["kind"], "counter": m["counter"]}
        try:
            self.apply_hook(staged, meta)
        except Exception as e:
            st["pending"] = None
            self._save(st)
            raise OTAError("ota.apply_failed", "applying %s failed: %r" % (m["version"], e),
                           permanent=False)
        st["pending"]["applied"] = True  # a boot not running it now means it did not take
        self._save(st)
        self.applied += 1
        self.reset_required = True
        self.log.info("update applied; reset to run it", version=m["version"],
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
        """Retry a failed rollback, confirm a version on trial once healthy, then check for
        updates periodically."""
        while self.rollback_needed:
            await self._wait(ROLLBACK_RETRY_S)
            self.retry_rollback()
            if self.reset_required:
                return
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
