# RelaysController: composes the iotlib managers into the device application.
#
#   controller = RelaysController(wifi_ssid, wifi_password, device_id, device_key,
#                                 service_discovery_url, relay_pins)   # + keyword options
#   code = await controller.main()
#
# Boot order puts the relays first: they come up at their power-on levels from the persisted
# (or default) config before any network activity. Every task runs under a supervisor that
# turns its exceptions into alarms and restarts it; a global asyncio exception handler catches
# the rest. main() returns 0 after stop(), or RESET_EXIT_CODE when the watchdog supervisor reset
# the simulated board: the process must then exit with that code and be started again (the
# unix port cannot reboot itself; tools/simulation.py and the tests restart it).
# The device REST API (iotlib/rest_service.py) is attached as an extension unless rest=False.
import asyncio
import gc
import sys

from iotlib import atomic_file, events, logger
from iotlib.auth_manager import AuthManager
from iotlib.config_manager import ConfigManager
from iotlib.network_manager import NetworkManager, SimWLAN, board_wlan
from iotlib import relay_gpio_manager
from iotlib.relay_gpio_manager import RelayGPIOManager
from iotlib.state_manager import StateManager
from iotlib.watchdog_manager import WatchdogManager

from iotlib import ota_update_manager
from iotlib.alarm_manager import AlarmManager

FIRMWARE_VERSION = "0.1.0"
RESET_EXIT_CODE = 75
SIM_SCRATCH_FILE = "/sim/scratch.json"  # the simulated watchdog scratch words across a reset
SIM_REST_PORT = 8081  # the REST API's port on the unix port when none is given
_log = logger.get("app")


def _simulated():
    try:
        import network  # noqa: F401
        return False
    except ImportError:
        return True


class _LocalAlarms:
    # the alarms raised before main() builds the AlarmManager: the last ones, in RAM
    def __init__(self, size=16):
        self.size = size
        self.items = []
        self.raised = 0

    def raise_alarm_nowait(self, key, message, severity="error"):
        self.raised += 1
        self.items.append((key, severity, message))
        del self.items[:-self.size]

    async def raise_alarm(self, key, message, severity="error"):
        self.raise_alarm_nowait(key, message, severity)

    def counters(self):
        return {"alarms_raised": self.raised, "alarms_buffered": len(self.items)}


class RelaysController:
    def __init__(self, wifi_ssid, wifi_password, device_id, device_key, service_discovery_url,
                 relay_pins, data_dir=None, tenant=None, namespace=None, simulate=None,
                 firmware_version=FIRMWARE_VERSION, log_level="info", log_echo=True,
                 persist_min_ms=None, tick_ms=10, wdt_timeout_ms=8000, loop_window_ms=10000,
                 timeout_ms=5000, ota_public_key=None, ota_apply_hook=None,
                 ota_rollback_hook=None, wlan=None, ntp_servers=None, extensions=(),
                 ca_cert=None, rest=True, rest_host=None, rest_port=None, rest_tls_cert=None,
                 rest_tls_key=None, rest_plain_port=None, rest_probes_only=None, mqtt=True):
        from iotlib import platform_url
        platform_url.check(service_discovery_url)  # before anything is created or written
        self.simulate = _simulated() if simulate is None else simulate
        self.data_dir = data_dir or ("data" if self.simulate else "/data")
        self.device_id = device_id
        self.log_level = log_level
        self.log_echo = log_echo
        self.firmware_version = firmware_version
        self.ota_public_key = ota_public_key
        self.ota_apply_hook = ota_apply_hook
        self.ota_rollback_hook = ota_rollback_hook
        self.timeout_ms = timeout_ms
        self.exit_code = None
        self.boot = {}
        self._stop = asyncio.Event()
        self._tasks = []
        self.task_failures = 0
        for d in (self.data_dir, self.data_dir + "/log"):
            atomic_file.makedirs(d)
        logger.add_secret(wifi_password)
        logger.add_secret(device_key)
        if ca_cert:  # an https platform: trust exactly this CA (DER or PEM file)
            import tls
            from iotlib import http_client
            with open(ca_cert, "rb") as f:
                ca = f.read()
            if ca.startswith(b"-----BEGIN"):  # PEM -> DER: mbedtls here parses DER only
                from binascii import a2b_base64
                ca = a2b_base64(b"".join(ca.split(b"-----")[2].split()))
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = tls.CERT_REQUIRED
            ctx.load_verify_locations(ca)
            http_client.set_tls_context(ctx)
            if not self.simulate:
                http_client.reserve_tls_heap()  # before the heap fragments

        self.alarms = _LocalAlarms()
        self.alarm_listeners = []  # fn(key, message, severity) for each alarm (MQTT)
        default = {"relays": {}}
        for name in relay_pins:
            default["relays"][name] = {"pin": relay_pins[name]}
        if ntp_servers is not None:
            default["ntp_servers"] = list(ntp_servers)
        if wlan is None:
            wlan = SimWLAN(self.data_dir + "/sim/wifi") if self.simulate else board_wlan()
        self.net = NetworkManager(wifi_ssid, wifi_password, wlan)
        self.auth = AuthManager(device_id, device_key, service_discovery_url,
                                key_file=self.data_dir + "/device_key", tenant=tenant,
                                namespace=namespace, alarm=self.alarm, timeout_ms=timeout_ms)
        self.auth.net = self.net
        self.config = ConfigManager(self.auth, self.data_dir, default, alarm=self.alarm,
                                    timeout_ms=timeout_ms)
        self.config.net = self.net
        if persist_min_ms is None:
            persist_min_ms = 1000 if self.simulate else 5000
        self.events = events.EventBus()  # live events: the web page's stream, MQTT
        self.relays = RelayGPIOManager(self.data_dir, alarm=self.alarm,
                                       persist_min_ms=persist_min_ms, tick_ms=tick_ms,
                                       bus=self.events)
        self.relays.on_reset = self._on_reset
        self.state = StateManager(self.auth, self.relays, self.config, firmware_version,
                                  counters=self.counters, alarm=self.alarm, timeout_ms=timeout_ms)
        self.state.net = self.net
        self.relays.on_change = self.state.changed
        self.watchdog = WatchdogManager(self.auth, self.relays, self.config, self.state,
                                        alarm=self.alarm, loop_window_ms=loop_window_ms,
                                        wdt_timeout_ms=wdt_timeout_ms)
        self.watchdog.net = self.net
        self.watchdog.on_history = self._save_stuck_history
        from iotlib import http_client
        try:  # the stuck-stack probe's address: the platform host itself
            self.watchdog.target = http_client.split_url(self.auth.url)[1:3]
        except OSError as e:  # registration reports the URL; no probe, so never a stuck reset
            _log.error("no stuck-stack probe", error=e)
        self.timesync = None
        self.ota = None
        self.mqtt = None  # the MqttBridge once attached (it stays idle without an mqtt config)
        if mqtt:
            from iotlib import mqtt_bridge
            extensions = tuple(extensions) + (mqtt_bridge.mqtt_extension(),)
        self.rest = None  # the RestService once attached
        if rest:  # the device REST API: 0.0.0.0:80 on the board, loopback in simulation
            from iotlib import rest_service
            tls = rest_tls_cert is not None
            if rest_host is None:
                rest_host = "127.0.0.1" if self.simulate else "0.0.0.0"
            if rest_port is None:
                rest_port = SIM_REST_PORT if self.simulate else (443 if tls else 80)
            if rest_plain_port is None and tls and not self.simulate:
                rest_plain_port = 80  # the probes stay on plain HTTP for load balancers
            if rest_probes_only is None:  # a board's plain HTTP: /health and /ready only
                rest_probes_only = not self.simulate
            extensions = tuple(extensions) + (rest_service.rest_extension(
                rest_host, int(rest_port), rest_tls_cert, rest_tls_key,
                None if rest_plain_port is None else int(rest_plain_port), rest_probes_only),)
        self.extensions = extensions
        self._extra = []
        self.restart_ms = 1000    # first delay before a failed task starts again

    # ---- alarms ----

    def alarm(self, key, message, severity="error"):
        # every manager reports through here; never raises
        try:
            self.alarms.raise_alarm_nowait(key, message, severity)
            self.events.publish(events.ALARM, key=key, message=message, severity=severity)
        except Exception as e:
            _log.error("alarm lost", key=key, error=e)
        for fn in self.alarm_listeners:
            try:
                fn(key, message, severity)
            except Exception as e:
                _log.error("alarm listener failed", error=e)

    def _exception(self, loop, context):
        exc = context.get("exception")
        msg = "%s: %s" % (type(exc).__name__, exc) if exc else context.get("message", "?")
        _log.error("task failed", error=msg)
        self.alarm("task.exception", msg, "critical")

    # ---- the managers that need the config (TimeSyncManager, AlarmManager, OTAUpdateManager) ----

    def _extras(self, cfg):
        self.alarms = AlarmManager(
            auth=self.auth, url=lambda: self.auth.services.get("alarms"),
            logger=logger.get("alarms"), online=lambda: self.net.up,
            clock=self.now, synced=self.time_synced, timeout_ms=self.timeout_ms)
        self.net.on_change(lambda up: up and self.alarms.notify_online())
        self.watchdog.on_recover = self.alarms.notify_online
        from iotlib import config_schema
        # imported here: it needs socket, which a board without network lacks (the app is
        # frozen and importable there; main.py does not start it)
        from iotlib.time_sync_manager import TimeSyncManager
        self.timesync = TimeSyncManager(
            servers=config_schema.get(cfg, "ntp_servers"),
            period_s=config_schema.get(cfg, "ntp_period_s"), logger=logger.get("time"),
            alarms=self.alarms, set_rtc=not self.simulate,
            max_step_s=config_schema.get(cfg, "ntp_max_step_s"),
            second_source=lambda: self.auth.now() if self.auth.registered else None,
            floor_path=self.data_dir + "/time_floor")
        self.watchdog.on_resync = self.timesync.resync
        self.timesync.on_first_sync = self._first_sync
        if not self.simulate:  # a board's RTC starts in 2021: register once the clock is set
            self.auth.clock_set = asyncio.Event()
        # an attempt made before the link was up failed: the next one need not wait its retry
        self.net.on_change(lambda up: up and not self.timesync.synced and self.timesync.resync())
        self._ota_setup(cfg)

    def _first_sync(self):
        # the clock was just set: a registration or config fetch refused for a certificate
        # "not yet valid" may pass now, without waiting for its retry
        if self.auth.clock_set is not None:
            self.auth.clock_set.set()
        self.auth.retry_now()
        self.config.kick()

    def _ota_setup(self, cfg):
        o = ota_update_manager
        # trust anchors: the constructor's, the provisioned file's, or the first config's;
        # the manager keeps the first set it saw, later ones change nothing
        keys = self.ota_public_key or cfg.get("ota_release_keys")
        if not keys:
            try:
                keys = o.load_public_keys(self.data_dir + "/ota_public_key")
            except (OSError, ValueError):
                keys = None
        apply_hook, rollback_hook = self.ota_apply_hook, self.ota_rollback_hook
        if self.simulate and apply_hook is None:
            # the simulated board "installs" an app version by recording it
            vf = o.AppVersionFile(self.data_dir + "/ota/app_version", self.firmware_version)
            self.firmware_version = vf.read()
            self.state.firmware_version = self.firmware_version
            apply_hook, rollback_hook = vf.apply, vf.rollback
        try:
            self.ota = o.OTAUpdateManager(
                self.firmware_version, keys, auth=self.auth,
                offer_url=lambda: self.auth.services.get("ota"), logger=logger.get("ota"),
                alarms=self.alarms, state_dir=self.data_dir + "/ota", apply_hook=apply_hook,
                rollback_hook=rollback_hook, reset=lambda: self.watchdog.reset("ota"),
                healthy=self.healthy, timeout_ms=self.timeout_ms,
                board="RPI_PICO_W" if self.simulate else getattr(sys.implementation, "_build", ""),
                scope=lambda: (self.auth.tenant, self.auth.namespace),
                platform_url=lambda: self.auth.url)
        except ValueError as e:  # a key or the running version malformed
            _log.warning("OTA disabled", error=str(e))
            return
        if not self.ota.keys:
            _log.warning("OTA disabled: no release key provisioned",
                         file=self.data_dir + "/ota_public_key")
            self.ota = None

    # ---- status ----

    def now(self):
        if self.timesync is not None and self.timesync.synced:
            return self.timesync.now()
        return self.auth.now()

    def time_synced(self):
        return self.timesync is not None and self.timesync.synced

    def healthy(self):
        return self.auth.registered and self.watchdog.answered > 0 and self.watchdog.missed == 0

    def ready(self):
        # what /ready needs: (True, []) or (False, [missing parts])
        missing = []
        if not self.auth.registered:
            missing.append("registered")
        if self.config.source != "platform":
            missing.append("config")
        if not self.time_synced():
            missing.append("time")
        if self.watchdog.outage:  # heartbeat_max_missed heartbeats unanswered
            missing.append("platform")
        return not missing, missing

    def counters(self):
        m = self.relays.metrics()
        c = {"reconnects": self.net.reconnects, "wifi_drops": self.net.drops,
             "registrations": self.auth.registrations, "config_rejected": self.config.rejects,
             "config_applied": self.config.applied, "heartbeats_sent": self.watchdog.sent,
             "heartbeats_missed": self.watchdog.missed_total, "resets": self.boot.get("resets", 0),
             "boots": self.boot.get("boots", 0), "flash_writes": atomic_file.writes,
             "task_failures": self.task_failures, "wdt_feeds": m["wdt_feeds"],
             "rejected_interval": m["rejected_interval"],
             "rejected_interlock": m["rejected_interlock"], "deferred": m["deferred"],
             "pulses_expired": m["pulses_expired"], "late_ticks": m["late_ticks"],
             "state_writes": m["persist_writes"]}
        for i, n in enumerate(self.relays.names):
            c["switches_" + n] = m["switches"][i]
        for mgr in (self.alarms, self.timesync, self.ota, self.mqtt, self.rest):
            if mgr is not None and hasattr(mgr, "counters"):
                c.update(mgr.counters())
        return c

    def status(self):
        # the simulation's debug view (data_dir/sim/status.json)
        ok, missing = self.ready()
        return {"relays": self.relays.states(), "pins": self.relays.pin_levels(),
                "wifi": self.net.up, "registered": self.auth.registered,
                "tenant": self.auth.tenant, "namespace": self.auth.namespace,
                "config_version": self.config.version, "config_source": self.config.source,
                "desired_version": self.relays.desired_version, "ready": ok, "missing": missing,
                "heartbeats_answered": self.watchdog.answered, "missed": self.watchdog.missed,
                "platform_outage": self.watchdog.outage, "stuck": self.watchdog.stuck,
                "stuck_withheld": self.watchdog.stuck_withheld,
                "boot": self.boot, "firmware_version": self.firmware_version,
                "counters": self.counters()}

    # ---- life cycle ----

    def _boot_record(self):
        path = self.data_dir + "/boot.json"
        b = atomic_file.read_json(path) or {}
        b["boots"] = b.get("boots", 0) + 1
        cause = b.pop("pending_cause", None)
        if cause is None and not self.simulate:
            cause = self.relays.bank.reset_cause()
        if cause:
            b["resets"] = b.get("resets", 0) + 1
        b["last_reset_cause"] = cause
        atomic_file.write_json(path, b)
        self.boot = b
        self.watchdog.load_history(b.get("stuck_reset"))
        gc.collect()
        _log.info("boot", device_id=self.device_id, version=self.firmware_version,
                  boots=b["boots"], reset_cause=cause, simulate=self.simulate,
                  heap_free=gc.mem_free())

    def _save_stuck_history(self, doc):
        # the stuck-reset history must survive the reset it precedes: into the boot record now
        self.boot["stuck_reset"] = {"streak": doc["streak"], "at": list(doc["at"]),
                                    "clock_s": doc["clock_s"]}
        atomic_file.write_json(self.data_dir + "/boot.json", self.boot)

    def _sim_scratch(self):
        # the simulated board's watchdog scratch words (the relay state kept across a reset):
        # written by the simulated reset, loaded once at the next boot before the Bank exists;
        # no file (a first start, a kill, a normal stop) is a power-on
        rg = relay_gpio_manager.relaygpio
        if not hasattr(rg, "sim_scratch"):
            return None
        path = self.data_dir + SIM_SCRATCH_FILE
        doc = atomic_file.read_json(path, lambda d: isinstance(d.get("words"), list))
        atomic_file.remove(path)
        words = doc["words"] if doc else (0, 0, 0)
        try:
            rg.sim_scratch(words)
        except (TypeError, ValueError) as e:  # a damaged file is a power-on
            _log.warning("simulated scratch words unusable; cold start", error=e)
            rg.sim_scratch((0, 0, 0))
        return doc is not None

    def _on_reset(self, cause):
        # the supervisor reset the simulated board: keep what a real board keeps, then stop
        rg = relay_gpio_manager.relaygpio
        if hasattr(rg, "sim_scratch"):
            atomic_file.makedirs(self.data_dir + "/sim")
            atomic_file.write_json(self.data_dir + SIM_SCRATCH_FILE,
                                   {"words": list(rg.sim_scratch())})
        self.relays.flush()
        b = dict(self.boot)
        b["pending_cause"] = cause
        atomic_file.write_json(self.data_dir + "/boot.json", b)
        _log.error("device reset by the watchdog supervisor", cause=cause,
                   exit_code=RESET_EXIT_CODE)
        self.exit_code = RESET_EXIT_CODE
        self._stop.set()

    def _apply_config(self, new, old):
        jwt = (new.get("api") or {}).get("jwt")
        if jwt:
            logger.add_secret(jwt.get("key"))  # the REST API's key: never in a log line
        if old is None or new["relays"] != old["relays"] or \
                new.get("interlocks") != old.get("interlocks") or \
                new.get("inputs") != old.get("inputs"):
            self.relays.reconfigure(new)
        log = logger.root()
        log.set_level(new.get("log_level", self.log_level))
        lf = new.get("log_file") or {}
        log.set_rotation(lf.get("max_bytes", 16384), lf.get("keep", 3))
        if self.timesync is not None:
            self.timesync.configure(new)
        self.state.kick()  # periods may have changed: the state loop re-reads them

    def _spawn(self, name, fn):
        async def supervised():
            backoff = self.restart_ms
            while True:
                try:
                    await fn()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    self.task_failures += 1
                    msg = "task %s failed: %s: %s" % (name, type(e).__name__, e)
                    _log.error(msg, retry_ms=backoff)
                    self.alarm("task." + name, msg, "critical")
                    await asyncio.sleep_ms(backoff)
                    backoff = min(backoff * 2, 30000)
        self._tasks.append(asyncio.create_task(supervised()))

    async def _sim_status(self):
        path = self.data_dir + "/sim/status.json"
        last = None
        while True:
            try:
                import json
                text = json.dumps(self.status())
            except Exception as e:
                text = '{"error": "%s"}' % type(e).__name__
            if text != last:
                atomic_file.write(path, text)
                last = text
            await asyncio.sleep_ms(200)

    async def _flush_logs(self):
        while True:
            await asyncio.sleep_ms(5000)
            logger.root().flush()

    def add_task(self, name, fn):
        # an extension's long-running work (e.g. the REST server): supervised like the managers
        self._extra.append((name, fn))

    def stop(self, code=0):
        self.exit_code = code
        self._stop.set()

    def shutdown(self):
        # a clean stop: persist what is pending
        try:
            self.relays.flush()
        except Exception:
            pass
        _log.info("stopped", exit_code=self.exit_code or 0)
        logger.root().flush()

    async def main(self):
        d = self.data_dir
        logger.setup(path=d + "/log/device.log", audit_path=d + "/log/audit.log",
                     level=self.log_level, echo=self.log_echo,
                     buffer_bytes=0 if self.simulate else 1024)
        if self.simulate:
            atomic_file.makedirs(d + "/sim")
            self._sim_scratch()
        cfg = self.config.load_local()
        boot_problem = None
        try:
            self.relays.start(cfg)                  # relays safe before anything else
        except Exception as e:
            boot_problem = "config version %d unusable at boot (%s: %s); relays from relay_pins" \
                % (self.config.version, type(e).__name__, e)
            _log.error(boot_problem)
            cfg = self.config.use_default()
            self.relays.start(cfg)
        self._boot_record()
        asyncio.get_event_loop().set_exception_handler(self._exception)
        self._extras(cfg)
        if boot_problem:
            self.alarm("config.boot", boot_problem)
        cause = self.boot.get("last_reset_cause")
        if cause:  # said after the reboot: the alarm buffer did not survive the reset
            self.alarm("reset." + cause, "the device was reset (cause: %s); boot %d" % (
                cause, self.boot["boots"]), "info" if cause in ("cmd-reset", "ota") else "critical")
        if hasattr(self.alarms, "install_exception_handler"):
            self.alarms.install_exception_handler()
        self.config.on_change(self._apply_config)
        self._apply_config(cfg, cfg)
        if self.ota is not None:
            self.ota.boot()
        for ext in self.extensions:  # ext(controller): may call add_task()
            ext(self)
        self.watchdog.start()
        s = self._spawn
        s("relays", self.relays.run)
        s("loop", self.watchdog.feed_loop)
        s("net", self.net.run)
        s("auth", self.auth.run)
        s("config", self.config.run)
        s("state", self.state.run)
        s("heartbeat", self.watchdog.run)
        s("events", lambda: events.watch_ready(self.events, self.ready))
        if hasattr(self.alarms, "run"):
            s("alarms", self.alarms.run)
        if self.timesync is not None:
            s("time", self.timesync.run)
        if self.ota is not None:
            s("ota", self.ota.run)
        for name, fn in self._extra:
            s(name, fn)
        if self.simulate:
            s("sim", self._sim_status)
        else:
            s("logflush", self._flush_logs)
        await self._stop.wait()
        for t in self._tasks:
            t.cancel()
        await asyncio.sleep_ms(0)
        self.shutdown()
        return self.exit_code or 0
