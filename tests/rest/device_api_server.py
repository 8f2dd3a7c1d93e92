# The device REST API on the MicroPython unix build, for tests/rest: the real RelayGPIOManager
# on the simulated relaygpio board, the real JWTValidator, ApiRateLimiter and Registry, and
# rest_api.create_app, serving on 127.0.0.1. A second app on its own port is the test's
# window on the board (pin levels, switch counts) and its controls (clock sync, identity,
# readiness, counters, admin actions); it stays out of the API's routes, limits and metrics.
#
#   micropython device_api_server.py SETTINGS.json     # serve
#   micropython device_api_server.py --routes          # print the API's routes, one JSON line each
#
# SETTINGS: {"port", "control_port", "data_dir", "device": device config (relays, interlocks,
# api, rate_limits), "jwt": {"key", "issuer", "audience", "leeway_s"}, "tenant", "namespace",
# "synced", "missing", "figures", "timeout_s", "heap_watch_ms": sample the heap (free after a
# collection) this often for its low-water mark}
import gc
import json
import sys
import time

import asyncio
from microdot import Microdot

from iotlib import atomic_file, logger, rbac, rest_api
from iotlib.jwt_validator import JWTValidator
from iotlib.prometheus import Registry
from iotlib.rate_limiter import DEFAULT_VERIFY_PER_S, ApiRateLimiter
from iotlib.relay_gpio_manager import RelayGPIOManager


class Sim:
    # what the controller would know: clock, identity, readiness, counters, admin outcomes
    def __init__(self, s):
        self.synced = s.get("synced", True)
        self.offset_s = 0
        self.tenant = s.get("tenant")
        self.namespace = s.get("namespace")
        self.missing = s.get("missing", [])
        self.figures = s.get("figures", {})
        self.ota = "ok"
        self.calls = {"get_config": 0, "reload_config": 0, "check_ota": 0}
        self.cfg = s.get("device", {})
        self.key = s.get("jwt", {}).get("key", "")

    def now(self):
        return time.time() + self.offset_s if self.synced else None

    def identity(self):
        return self.tenant, self.namespace

    def ready(self):
        return not self.missing, list(self.missing)

    def counters(self):
        return self.figures

    def get_config(self):
        self.calls["get_config"] += 1
        return {"relays": self.cfg.get("relays", {})}

    def reload_config(self):
        self.calls["reload_config"] += 1
        return None  # accepted: the reload runs in the config task

    async def check_ota(self):
        self.calls["check_ota"] += 1
        await asyncio.sleep_ms(0)
        if self.ota == "fail":
            raise OSError(113)
        if self.ota == "leak":  # a failure whose text carries a secret (the API key)
            raise ValueError("bad signature with key " + self.key)
        return {"update_available": False}


def build(s, sim, relays):
    j = s["jwt"]
    cfg = s.get("device", {})
    validator = JWTValidator(j["key"], j["issuer"], j["audience"], sim.now,
                             j.get("leeway_s", 30))
    http = cfg.get("http", {})
    return rest_api.create_app(
        relays, validator, ApiRateLimiter.from_config(
            cfg.get("rate_limits"),
            verify_per_s=http.get("token_checks_per_s", DEFAULT_VERIFY_PER_S)), sim.identity,
        sim.ready, counters=sim.counters,
        roles=rbac.roles_from_config(cfg.get("api", {}).get("roles")),
        registry=Registry(), get_config=sim.get_config, reload_config=sim.reload_config,
        check_ota=sim.check_ota, timeout_s=s.get("timeout_s", rest_api.REQUEST_TIMEOUT_S),
        limits=rest_api.HttpLimits.from_config(http))


class HeapWatch:
    # the lowest free heap seen after a collection: how close the API came to running out
    low = None
    samples = 0

    @classmethod
    async def run(cls, ms):
        while True:
            gc.collect()
            f = gc.mem_free()
            cls.samples += 1
            if cls.low is None or f < cls.low:
                cls.low = f
            await asyncio.sleep_ms(ms)


def control_app(app, sim, relays):
    ctl = Microdot()

    @ctl.get("/board")
    def board(req):
        m = relays.metrics()
        return {"pins": relays.pin_levels(), "states": relays.states(), "switches": m["switches"],
                "deferred": m["deferred"], "rejected_interval": m["rejected_interval"],
                "rejected_interlock": m["rejected_interlock"], "wdt_feeds": m["wdt_feeds"]}

    @ctl.post("/sim")
    def update(req):
        d = req.json
        for k in ("synced", "offset_s", "tenant", "namespace", "missing", "figures", "ota"):
            if k in d:
                setattr(sim, k, d[k])
        if "jwt_key" in d:  # a hot-reloaded key, on the same validator
            app.api.validator.set_key(d["jwt_key"])
        if "check_ota" in d:  # an action the device does not offer
            app.api.check_ota = sim.check_ota if d["check_ota"] else None
        return {"ok": True}

    @ctl.get("/calls")
    def calls(req):
        return sim.calls

    @ctl.get("/api")
    def api_state(req):
        gc.collect()
        # the writes still waiting (audit batch, coalesced relay state): tests poll these
        # instead of sleeping through the batching windows
        v = app.api.validator
        return {"connection_errors": app.api.connection_errors, "heap_free": gc.mem_free(),
                "audit_pending": len(logger.root()._abuf),
                "state_write_pending": relays._save_at is not None,
                "heap_low": HeapWatch.low, "heap_samples": HeapWatch.samples,
                "connections_refused": app.refused, "connections_evicted": app.evicted,
                "bad_requests": app.bad_requests, "faults": app.faults, "live": len(app._live),
                "sweeper": app._sweeper is not None, "hmacs": v.hmacs if v else 0,
                "rate_stats": list(app.api.limiter.stats())}

    @ctl.post("/heap/reset")
    def heap_reset(req):
        HeapWatch.low = None
        HeapWatch.samples = 0
        return {"ok": True}

    return ctl


def routes(app):
    for methods, pattern, _, _, _ in app.url_map:
        for m in methods:
            print(json.dumps({"method": m, "path": pattern.url_pattern}))


async def serve(s):
    d = s["data_dir"]
    atomic_file.makedirs(d + "/log")
    logger.setup(path=d + "/log/device.log", audit_path=d + "/log/audit.log", level="info",
                 echo=False)
    logger.add_secret(s["jwt"]["key"])  # as the controller does with api.jwt.key
    sim = Sim(s)
    relays = RelayGPIOManager(d, persist_min_ms=1000)
    relays.start(s.get("device", {"relays": {}}))
    app = build(s, sim, relays)
    asyncio.create_task(relays.run())
    if s.get("heap_watch_ms"):
        asyncio.create_task(HeapWatch.run(s["heap_watch_ms"]))
    api = asyncio.create_task(app.start_server(host="127.0.0.1", port=s["port"]))
    asyncio.create_task(control_app(app, sim, relays).start_server(host="127.0.0.1",
                                                                   port=s["control_port"]))
    print("device_api_server: serving on 127.0.0.1:%d, control on %d" % (s["port"],
                                                                         s["control_port"]))
    await api


def main():
    if sys.argv[1:] == ["--routes"]:
        s = {"jwt": {"key": "k" * 32, "issuer": "i", "audience": "a"}}
        routes(build(s, Sim(s), RelayGPIOManager("-")))  # routes only: no bank needed
        return
    with open(sys.argv[1]) as f:
        s = json.load(f)
    asyncio.run(serve(s))


main()
