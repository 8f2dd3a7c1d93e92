# The device REST API with its live event stream on the MicroPython unix build, for
# tests/web: the real RelayGPIOManager (and its EventBus) on the simulated relaygpio board, the
# real JWTValidator and ApiRateLimiter, rest_api.create_app (which mounts web_page) and
# events.watch_ready, serving on 127.0.0.1. A second app on its own port is the test's window
# and hands: pin levels, the bus's counters and the heap; driving an input pin, raising an
# alarm, changing readiness, replacing the token key.
#
#   micropython device_events_server.py SETTINGS.json
#
# SETTINGS: {"port", "control_port", "data_dir", "device": device config (relays, interlocks,
# inputs, api, rate_limits), "jwt": {"key", "issuer", "audience"}, "tenant", "namespace",
# "timeout_s", "keepalive_ms", "max_subscribers", "max_pending"}
import gc
import json
import sys
import time

import asyncio
from microdot import Microdot

from iotlib import atomic_file, events, logger, rbac, rest_api
from iotlib.jwt_validator import JWTValidator
from iotlib.prometheus import Registry
from iotlib.rate_limiter import ApiRateLimiter
from iotlib.relay_gpio_manager import RelayGPIOManager


class Device:
    # what the controller would know: identity, readiness; alarms go to the bus as it does
    def __init__(self, s):
        self.tenant = s.get("tenant")
        self.namespace = s.get("namespace")
        self.missing = []

    def identity(self):
        return self.tenant, self.namespace

    def ready(self):
        return not self.missing, list(self.missing)


def control_app(app, dev, relays, bus):
    ctl = Microdot()

    @ctl.get("/board")
    def board(req):
        return {"pins": relays.pin_levels(), "states": relays.states()}

    @ctl.get("/bus")
    def bus_state(req):
        gc.collect()
        c = bus.counters()
        c["seq"] = bus.seq
        c["heap_free"] = gc.mem_free()
        c["pending"] = [len(s.items) for s in bus.subs]
        return c

    @ctl.post("/drive")
    def drive(req):
        # an input pin driven to a level; the time it happened, for latency figures
        d = req.json
        relays.bank.sim_drive(d["pin"], d["level"])
        return {"t": time.time()}

    @ctl.post("/alarm")
    def alarm(req):
        d = req.json
        bus.publish(events.ALARM, key=d["key"], message=d["message"], severity=d["severity"])
        return {"ok": True}

    @ctl.post("/ready")
    def ready(req):
        dev.missing = req.json["missing"]
        return {"ok": True}

    @ctl.post("/jwt_key")
    def jwt_key(req):
        app.api.validator.set_key(req.json["key"])
        return {"ok": True}

    return ctl


async def serve(s):
    d = s["data_dir"]
    atomic_file.makedirs(d + "/log")
    logger.setup(path=d + "/log/device.log", audit_path=d + "/log/audit.log", level="info",
                 echo=False)
    dev = Device(s)
    bus = events.EventBus(max_subscribers=s.get("max_subscribers", events.MAX_SUBSCRIBERS),
                          max_pending=s.get("max_pending", events.MAX_PENDING))
    relays = RelayGPIOManager(d, persist_min_ms=1000, bus=bus)
    cfg = s["device"]
    relays.start(cfg)
    j = s["jwt"]
    validator = JWTValidator(j["key"], j["issuer"], j["audience"], time.time, 30)
    app = rest_api.create_app(
        relays, validator, ApiRateLimiter.from_config(cfg.get("rate_limits")), dev.identity,
        dev.ready, roles=rbac.roles_from_config(cfg.get("api", {}).get("roles")),
        registry=Registry(), timeout_s=s.get("timeout_s", rest_api.REQUEST_TIMEOUT_S))
    if "keepalive_ms" in s:
        app.web.keepalive_ms = s["keepalive_ms"]
    asyncio.create_task(relays.run())
    asyncio.create_task(events.watch_ready(bus, dev.ready, 50))
    api = asyncio.create_task(app.start_server(host="127.0.0.1", port=s["port"]))
    asyncio.create_task(control_app(app, dev, relays, bus).start_server(
        host="127.0.0.1", port=s["control_port"]))
    print("device_events_server: serving on 127.0.0.1:%d, control on %d" % (
        s["port"], s["control_port"]))
    await api


with open(sys.argv[1]) as f:
    asyncio.run(serve(json.load(f)))
