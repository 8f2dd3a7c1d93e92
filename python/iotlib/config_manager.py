# ConfigManager: the device configuration. Boots from the persisted copy (or the constructor's
# default), then fetches from the ConfigurationServer with If-None-Match so only changes travel.
# A new version is checked (config_schema), applied without a reboot through the on_change
# callbacks (relays first), and only then persisted. An invalid or unappliable version raises
# an alarm and the last good one stays in force; its ETag is remembered so it is not fetched
# again until the platform has something newer.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import atomic_file, config_schema, logger

_log = logger.get("config")
CONFIG_FILE = "config.json"


def _ok_doc(d):
    return isinstance(d, dict) and isinstance(d.get("config"), dict) and \
        config_schema.check(d["config"]) is None


class ConfigManager:
    def __init__(self, auth, data_dir, default_config, alarm=None, timeout_ms=5000):
        problem = config_schema.check(default_config)
        if problem:
            raise ValueError("default config: %s: %s" % problem)
        self.auth = auth
        self.path = data_dir + "/" + CONFIG_FILE
        self.default = default_config
        self.alarm = alarm
        self.timeout_ms = timeout_ms
        self.config = None
        self.version = 0
        self.etag = None
        self.source = None            # "default", "persisted" or "platform"
        self.rejected_etag = None
        self.rejected_version = 0
        self.fetches = 0
        self.applied = 0
        self.rejects = 0
        self.reached = False          # the platform answered at least once since boot
        self.net = None
        self._callbacks = []
        self._kick = asyncio.Event()
        self._warned_down = False

    def get(self, key):
        return config_schema.get(self.config, key)

    def on_change(self, fn):
        # fn(new, old): apply the new config or raise; called in registration order
        self._callbacks.append(fn)

    def load_local(self):
        doc = atomic_file.read_json(self.path, _ok_doc)
        if doc is not None:
            self.config = doc["config"]
            self.version = doc.get("version", 0)
            self.etag = doc.get("etag")
            self.source = "persisted"
        else:
            self.config = self.default
            self.version = 0
            self.source = "default"
        _log.info("config loaded", source=self.source, version=self.version)
        return self.config

    def use_default(self):
        # the persisted copy could not be used (the caller says why): start from the default
        self.config = self.default
        self.version = 0
        self.etag = None
        self.source = "default"
        return self.config

    def kick(self):
        self._kick.set()

    def _reject(self, version, etag, key, msg):
        self.rejects += 1
        self.rejected_etag = etag
        self.rejected_version = version
        _log.error(msg, key=key, version=version, kept=self.version)
        if self.alarm:
            self.alarm(key, msg)

    def _apply(self, cfg, version, etag):
        old = self.config
        done = []
        try:
            for fn in self._callbacks:
                fn(cfg, old)
                done.append(fn)
        except Exception as e:
            for fn in done:  # put back what was already changed
                try:
                    fn(old, cfg)
                except Exception as e2:
                    _log.error("restoring the previous config failed", error=e2)
            self._reject(version, etag, "config.apply", "config version %d could not be applied:"
                         " %s; keeping version %d" % (version, e, self.version))
            return False
        self.config = cfg
        self.version = version
        self.etag = etag
        self.source = "platform"
        self.applied += 1
        self.rejected_etag = None
        try:
            atomic_file.write_json(self.path, {"version": version, "etag": etag, "config": cfg})
        except OSError as e:
            _log.error("cannot persist config", error=e)
        _log.info("config applied", version=version)
        return True

    async def fetch(self):
        # -> True when a new version was applied
        tags = [t for t in (self.etag if self.source != "default" else None,
                            self.rejected_etag) if t]
        headers = {"If-None-Match": ", ".join(tags)} if tags else None
        r = await self.auth.request("GET", "config", headers=headers, timeout_ms=self.timeout_ms)
        self.fetches += 1
        self.reached = True
        self._warned_down = False
        if r.status == 304:
            if self.source == "persisted":
                self.source = "platform"  # the platform confirms the copy we run
                _log.info("persisted config confirmed by the platform", version=self.version)
            return False
        if r.status == 404:
            _log.warning("the platform has no config for this device", kept=self.version)
            return False
        if r.status != 200:
            _log.warning("config fetch failed", status=r.status)
            return False
        try:
            doc = r.json()
            version = doc["version"]
            cfg = doc["config"]
        except (OSError, KeyError, TypeError):
            self._reject(0, None, "config.invalid", "config answer is not a config document")
            return False
        etag = r.headers.get("etag")
        problem = config_schema.check(cfg)
        if problem:
            self._reject(version, etag, "config.invalid", "config version %d rejected: %s: %s;"
                         " keeping version %d" % (version, problem[0], problem[1], self.version))
            return False
        return self._apply(cfg, version, etag)

    def behind(self, server_version):
        # the platform announced a version we neither run nor rejected
        return server_version and server_version != self.version and \
            server_version != self.rejected_version

    async def run(self):
        while True:
            if self.net is not None:
                await self.net.wait_up()
            self._kick.clear()  # before the fetch: a kick during it asks for another
            try:
                await self.fetch()
            except OSError as e:
                if not self.reached and not self._warned_down:
                    self._warned_down = True
                    msg = "platform unreachable at boot (%s); running on the %s config" \
                          " version %d" % (e, self.source, self.version)
                    _log.warning(msg)
                    if self.alarm:
                        self.alarm("config.fallback", msg, "warning")
                else:
                    _log.warning("config fetch failed", error=e)
            period = self.get("config_poll_period_s") * 1000
            if not self.reached:
                period = min(period, 2000)  # still booting on a fallback: look again soon
            try:
                await asyncio.wait_for_ms(self._kick.wait(), period)
            except asyncio.TimeoutError:
                pass
