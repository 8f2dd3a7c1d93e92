# The device REST API (iotlib.rest_api) served by RelaysController, as an extension:
#
#   RelaysController(..., extensions=(rest_service.rest_extension("0.0.0.0", 80),))
#
# The HS256 key, issuer and audience come from config api.jwt, the roles from api.roles and the
# limits from rate_limits. Each applied config rebuilds them in place (no restart): a new key
# makes every token signed with the old one fail at once. Until the config has api.jwt the
# relay routes answer 503 not_configured; /health and /ready answer from the start.
import time
from binascii import unhexlify

from iotlib import logger, rbac, rest_api
from iotlib.jwt_validator import DEFAULT_LEEWAY_S, JWTValidator
from iotlib.rate_limiter import ApiRateLimiter

_log = logger.get("rest")
# tokens carry Unix times; a port whose epoch is 2000 counts 30 years less
_UNIX_OFFSET_S = 0 if time.gmtime(0)[0] == 1970 else 946684800


def jwt_config(cfg):
    return ((cfg or {}).get("api") or {}).get("jwt")


def public_config(cfg):
    # the config without its secrets (GET /config): api.jwt.key, mqtt password and key removed
    out = dict(cfg)
    jwt = jwt_config(cfg)
    if jwt is not None:
        api = dict(out["api"])
        api["jwt"] = dict(jwt)
        api["jwt"].pop("key", None)
        out["api"] = api
    if out.get("mqtt"):  # the broker password and client key stay on the device
        out["mqtt"] = {k: v for k, v in out["mqtt"].items() if k not in ("password", "client_key")}
    return out


class RestService:
    def __init__(self, controller, host, port):
        c = controller
        self.c = c
        self.host = host
        self.port = port
        cfg = c.config.config or {}
        self.app = rest_api.create_app(
            c.relays, self._validator(cfg),
            ApiRateLimiter.from_config(cfg.get("rate_limits")),
            identity=lambda: (c.auth.tenant, c.auth.namespace), ready=c.ready,
            counters=c.counters, roles=self._roles(cfg), get_config=self.get_config,
            reload_config=c.config.kick, check_ota=c.ota.check_now if c.ota else None)
        self.api = self.app.api

    def now(self):
        # epoch seconds once time is synced; None before, so no token is judged (503)
        c = self.c
        return c.now() + _UNIX_OFFSET_S if c.time_synced() else None

    def _validator(self, cfg):
        j = jwt_config(cfg)
        if j is None:
            return None
        return JWTValidator(unhexlify(j["key"]), j["issuer"], j["audience"], self.now,
                            j.get("leeway_s", DEFAULT_LEEWAY_S))

    @staticmethod
    def _roles(cfg):
        return rbac.roles_from_config((cfg.get("api") or {}).get("roles"))

    def get_config(self):
        c = self.c.config
        return {"version": c.version, "source": c.source, "config": public_config(c.config)}

    def reconfigure(self, new, old):
        # a config callback: everything is built before anything is replaced, so a config
        # that cannot be used raises and leaves the API as it was
        api = self.api
        validator = self._validator(new)
        roles = self._roles(new)
        limiter = api.limiter
        if new.get("rate_limits") != (old or {}).get("rate_limits"):
            limiter = ApiRateLimiter.from_config(new.get("rate_limits"))
        had = api.validator is not None
        api.validator, api.roles, api.limiter = validator, roles, limiter
        if jwt_config(new) != jwt_config(old):
            if validator is None:
                _log.warning("REST API key removed: relay routes answer 503 until one is set")
            else:
                _log.info("REST API key " + ("replaced" if had else "set"),
                          issuer=validator.issuer, audience=validator.audience)

    async def serve(self):
        _log.info("REST API listening", host=self.host, port=self.port,
                  configured=self.api.validator is not None)
        try:
            await self.app.start_server(host=self.host, port=self.port)
        finally:  # stopped or failed: the listening socket goes with the task
            srv = self.app.server
            self.app.server = None
            if srv is not None:
                srv.close()


def rest_extension(host, port):
    # -> attach(controller) for RelaysController's extensions
    def attach(c):
        svc = RestService(c, host, port)
        c.rest = svc
        c.config.on_change(svc.reconfigure)
        c.add_task("rest", svc.serve)
        return svc
    return attach
