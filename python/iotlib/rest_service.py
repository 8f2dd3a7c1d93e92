# The device REST API (iotlib.rest_api) served by RelaysController, as an extension:
#
#   RelaysController(..., extensions=(rest_service.rest_extension("0.0.0.0", 80),))
#
# The HS256 key, issuer and audience come from config api.jwt, the roles from api.roles, the
# limits from rate_limits and the connection limits and token-check budget from http. Each applied config rebuilds them in place (no restart): a new key
# makes every token signed with the old one fail at once. Until the config has api.jwt the
# relay routes answer 503 not_configured; /health and /ready answer from the start.
#
# TLS: with a certificate and key (files, PEM or DER; ECDSA P-256 is the cheap choice on the
# RP2040) the API listens with TLS on `port` (http.max_tls_sessions sessions at once, the other
# clients wait their turn: iotlib.tls_listener), and an optional plain listener on `plain_port`
# serves the probes. With probes_only (the default on a board) a plain connection reaches
# /health and /ready only, unless the config says api.allow_plain_http: true.
import time
from binascii import a2b_base64, unhexlify

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import logger, rbac, rest_api, tls_listener
from iotlib.jwt_validator import DEFAULT_LEEWAY_S, JWTValidator
from iotlib.rate_limiter import DEFAULT_VERIFY_PER_S, ApiRateLimiter

_log = logger.get("rest")
# tokens carry Unix times; a port whose epoch is 2000 counts 30 years less
_UNIX_OFFSET_S = 0 if time.gmtime(0)[0] == 1970 else 946684800


def jwt_config(cfg):
    return ((cfg or {}).get("api") or {}).get("jwt")


def limiter(cfg):
    # the rate limiter of a config: rate_limits, and http.token_checks_per_s
    per_s = (cfg.get("http") or {}).get("token_checks_per_s", DEFAULT_VERIFY_PER_S)
    return ApiRateLimiter.from_config(cfg.get("rate_limits"), verify_per_s=per_s)


def _limiter_config(cfg):
    return (cfg or {}).get("rate_limits"), ((cfg or {}).get("http") or {}).get(
        "token_checks_per_s")


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


PLAIN_ROUTES = ("/health", "/ready")
# how long a TLS connection may wait for its session slot: on the RP2040 a session takes
# 0.6-2 s (more while the platform client's own handshake holds the CPU), and a waiting
# connection holds only its lwIP socket
TLS_WAIT_MS = 30000


def der(data):
    # PEM -> DER (the first block); DER passes through: this mbedtls build parses DER only
    if data.startswith(b"-----BEGIN"):
        return a2b_base64(b"".join(data.split(b"-----")[2].split()))
    return data


def server_context(cert_file, key_file):
    # -> tls.SSLContext for the API listener; OSError/ValueError name the file that is wrong
    import tls
    blobs = []
    for what, path in (("certificate", cert_file), ("key", key_file)):
        try:
            with open(path, "rb") as f:
                blobs.append(der(f.read()))
        except OSError as e:
            raise OSError("REST TLS %s %s: %s" % (what, path, e))
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(blobs[0], blobs[1])
    except (OSError, ValueError) as e:
        raise ValueError("REST TLS certificate %s or key %s unusable: %s" % (cert_file, key_file, e))
    return ctx


class RestService:
    def __init__(self, controller, host, port, tls_cert=None, tls_key=None, plain_port=None,
                 probes_only=False):
        c = controller
        self.c = c
        self.host = host
        self.port = port
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("REST TLS needs both a certificate and a key")
        # built now: a bad certificate or key fails at start-up, not at the first client
        self.tls = server_context(tls_cert, tls_key) if tls_cert is not None else None
        self.plain_port = plain_port
        self.probes_only = probes_only
        self._plain = None   # the plain listener beside the TLS one
        self.listener = None  # the TLS listener (tls_listener.TlsListener) while serving
        cfg = c.config.config or {}
        self.app = rest_api.create_app(
            c.relays, self._validator(cfg), limiter(cfg),
            identity=lambda: (c.auth.tenant, c.auth.namespace), ready=c.ready,
            counters=c.counters, roles=self._roles(cfg), get_config=self.get_config,
            reload_config=c.config.kick, check_ota=c.ota.check_now if c.ota else None,
            limits=rest_api.HttpLimits.from_config(cfg.get("http")))
        self.api = self.app.api
        self.allow_plain = bool((cfg.get("api") or {}).get("allow_plain_http"))
        self.app.before_request(self._plain_gate)

    def _plain_gate(self, req):
        # a plain connection: every one when there is no TLS, else those of the plain listener
        if not self.probes_only or self.allow_plain or req.path in PLAIN_ROUTES:
            return None
        if self.tls is not None and not getattr(req.sock[1], "plain", False):
            return None
        return self.api.refuse(rest_api.Refusal(
            403, "tls_required", "plain HTTP serves only /health and /ready on this device;"
            " use https (or set api.allow_plain_http)"))

    async def _plain_conn(self, reader, writer):
        writer.plain = True
        await self.app.handle_request(reader, writer)

    def now(self):
        # epoch seconds once time is synced; None before, so no token is judged (503)
        c = self.c
        return c.now() + _UNIX_OFFSET_S if c.time_synced() else None

    def _validator(self, cfg):
        j = jwt_config(cfg)
        if j is None:
            return None
        v = JWTValidator(unhexlify(j["key"]), j["issuer"], j["audience"], self.now,
                         j.get("leeway_s", DEFAULT_LEEWAY_S))
        v.set_revoked(cfg["api"].get("revoked", ()))
        return v

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
        limits = rest_api.HttpLimits.from_config(new.get("http"))
        lim = api.limiter
        if _limiter_config(new) != _limiter_config(old):
            lim = limiter(new)
        had = api.validator is not None
        api.validator, api.roles, api.limiter = validator, roles, lim
        self.app.limits = limits
        self._listener_limits(limits)
        self.allow_plain = bool((new.get("api") or {}).get("allow_plain_http"))
        if jwt_config(new) != jwt_config(old):
            if validator is None:
                _log.warning("REST API key removed: relay routes answer 503 until one is set")
            else:
                _log.info("REST API key " + ("replaced" if had else "set"),
                          issuer=validator.issuer, audience=validator.audience)

    async def serve(self):
        _log.info("REST API listening", host=self.host, port=self.port,
                  tls=self.tls is not None, plain_port=self.plain_port,
                  probes_only=self.probes_only, configured=self.api.validator is not None)
        try:
            if self.tls is None:
                await self.app.start_server(host=self.host, port=self.port)
                return
            if self.plain_port is not None:
                self._plain = await asyncio.start_server(self._plain_conn, self.host,
                                                         self.plain_port)
            # TLS sessions one at a time (http.max_tls_sessions), the rest wait accepted
            self.listener = tls_listener.TlsListener(self.tls, self.app.handle_request)
            self._listener_limits(self.app.limits)
            await self.listener.serve(self.host, self.port)
        finally:  # stopped or failed: the listening sockets go with the task
            for srv in (self.app.server, self._plain, self.listener):
                if srv is not None:
                    srv.close()
            self.app.server = self._plain = None

    def counters(self):
        # the TLS listener's figures (none on a plain API)
        lst = self.listener
        if lst is None:
            return {}
        return {"rest_tls_sessions": lst.started, "rest_tls_waited": lst.waited,
                "rest_tls_turned_away": lst.turned_away, "rest_tls_timed_out": lst.timed_out,
                "rest_tls_heap_waits": lst.heap_waits, "rest_tls_failed": lst.failed,
                "rest_tls_streams_closed": lst.evicted}

    def _listener_limits(self, limits):
        if self.listener is not None:
            self.listener.set_limits(limits.max_tls_sessions, limits.max_connections,
                                     limits.max_per_address, TLS_WAIT_MS,
                                     limits.max_tls_streams)


def rest_extension(host, port, tls_cert=None, tls_key=None, plain_port=None, probes_only=False):
    # -> attach(controller) for RelaysController's extensions
    def attach(c):
        svc = RestService(c, host, port, tls_cert, tls_key, plain_port, probes_only)
        c.rest = svc
        c.config.on_change(svc.reconfigure)
        c.add_task("rest", svc.serve)
        return svc
    return attach
