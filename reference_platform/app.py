"""The reference platform as a Starlette application."""

import hashlib
import hmac
import json
import logging
import re
import secrets
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import CONTRACT_VERSION
from . import device_tokens
from .contract import Contract, ContractError
from . import releases
from .security import JWTSigner, TokenError, check_proof
from .store import Store
from .validation import CONFIG_SCHEMA, check_config

log = logging.getLogger("reference_platform")

MAX_JSON_BYTES = 64 * 1024
RELAY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ApiError(Exception):
    def __init__(self, status, code, message, field=None, headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra


def error_response(status, code, message, field=None, headers=None, **extra):
    body = {"error": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=headers)


def _reject_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate member %r" % k)
        obj[k] = v
    return obj


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def etag_matches(header, etag):
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or (tag[2:] if tag.startswith("W/") else tag) == etag:
            return True
    return False


class Ctx:
    def __init__(self, request, op):
        self.request = request
        self.op = op
        self.params = request.path_params
        self.query = {}
        self.body = None
        self.device = None      # device row (device calls) or target device (operator calls)
        self.claims = None
        self.operator = None    # {"admin": bool, "tenant": str or None}


class Platform:
    def __init__(self, db_path, operator_token, token_ttl_s=900, clock_skew_s=300,
                 issuer="relays-reference-platform", public_url=None,
                 max_image_bytes=16 * 1024 * 1024,
                 api_token_max_ttl_s=device_tokens.DEFAULT_MAX_TTL_S):
        self.store = Store(db_path)
        self.tokens = device_tokens.DeviceTokens(self.store, api_token_max_ttl_s)
        self.contract = Contract()
        self.operator_token = operator_token
        self.clock_skew_s = clock_skew_s
        self.public_url = public_url.rstrip("/") if public_url else None
        self.max_image_bytes = max_image_bytes
        secret = self.store.meta_get("jwt_secret")
        if secret is None:
            secret = secrets.token_bytes(32)
            self.store.meta_set("jwt_secret", secret)
        self.jwt = JWTSigner(bytes(secret), issuer, token_ttl_s)
        self.decoy_key = secrets.token_urlsafe(24)   # proof work for ids that do not exist
        # no OTA signing key here: releases are signed by their owners (releases.py)

    @staticmethod
    def now():
        return int(time.time())

    def base_url(self, request):
        return self.public_url or str(request.base_url).rstrip("/")

    # ---- authentication and scoping ----

    @staticmethod
    def _bearer(request):
        header = request.headers.get("authorization")
        if not header:
            raise ApiError(401, "missing_token", "Authorization: Bearer <token> is required")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "invalid_token", "Authorization must be 'Bearer <token>'")
        return token.strip()

    def auth_device(self, ctx):
        try:
            claims = self.jwt.verify(self._bearer(ctx.request), self.now())
        except TokenError as e:
            raise ApiError(401, e.code, e.message)
        dev = self.store.get_device(claims["sub"])
        # A deleted or moved device loses access even with an unexpired token.
        if dev is None or dev["tenant"] != claims["tenant"] or dev["namespace"] != claims["namespace"]:
            raise ApiError(401, "invalid_token", "the token's device no longer exists in its namespace")
        ctx.claims = claims
        ctx.device = dev

    def auth_operator(self, ctx, admin_only):
        token = self._bearer(ctx.request)
        if hmac.compare_digest(token.encode(), self.operator_token.encode()):
            ctx.operator = {"admin": True, "tenant": None}
        else:
            h = hashlib.sha256(token.encode()).hexdigest()
            tenant = self.store.tenant_for_token(h)
            if tenant is None:
                raise ApiError(401, "invalid_token", "unknown operator token")
            ctx.operator = {"admin": False, "tenant": tenant, "token_sha256": h}
        if admin_only and not ctx.operator["admin"]:
            raise ApiError(403, "forbidden", "only the admin operator token may do this")

    def scope(self, ctx):
        """Resolve {tenant}/{namespace}/{device_id} path parameters within the caller's reach."""
        p = ctx.params
        tenant = p.get("tenant")
        if tenant is None:
            return
        op = ctx.operator
        if not op["admin"] and op["tenant"] != tenant:
            raise ApiError(403, "forbidden", "this token is limited to tenant %r" % op["tenant"],
                           field="tenant")
        if self.store.get_tenant(tenant) is None:
            raise ApiError(404, "not_found", "no tenant %r" % tenant, field="tenant")
        ns = p.get("namespace")
        if ns is None:
            return
        if self.store.get_namespace(tenant, ns) is None:
            raise ApiError(404, "not_found", "no namespace %r in tenant %r" % (ns, tenant),
                           field="namespace")
        device_id = p.get("device_id")
        if device_id is None:
            return
        dev = self.store.device_in(tenant, ns, device_id)
        if dev is None:
            raise ApiError(404, "not_found", "no device %r in %s/%s" % (device_id, tenant, ns),
                           field="device_id")
        ctx.device = dev

    # ---- request bodies ----

    async def _read(self, request, limit):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(413, "payload_too_large", "body larger than %d bytes" % limit)
        chunks, total = [], 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise ApiError(413, "payload_too_large", "body larger than %d bytes" % limit)
                chunks.append(chunk)
        except ClientDisconnect:
            raise ApiError(400, "invalid_request", "client disconnected while sending the body")
        return b"".join(chunks)

    async def read_body(self, ctx):
        op = ctx.op
        if op.body_media is None:
            return
        ctype = ctx.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != op.body_media:
            raise ApiError(415, "unsupported_media_type",
                           "Content-Type must be %s" % op.body_media, field="Content-Type")
        if op.body_media == "application/json":
            raw = await self._read(ctx.request, MAX_JSON_BYTES)
            if not raw.strip():
                raise ApiError(400, "invalid_request", "a JSON body is required", field="(body)")
            try:
                ctx.body = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                                      parse_constant=_reject_constant)
            except (ValueError, UnicodeDecodeError) as e:
                raise ApiError(400, "invalid_json", "body is not valid JSON: %s" % e, field="(body)")
            op.check_body(ctx.body)
        else:
            ctx.body = await self._read(ctx.request, self.max_image_bytes)
            if not ctx.body:
                raise ApiError(400, "invalid_request", "the body is empty", field="(body)")


def build_app(platform):
    p = platform
    s = platform.store
    routes = []

    def route(method, path, auth=None):
        """auth: None, 'device', 'operator' or 'admin'."""
        op = p.contract.operation(method, path)   # KeyError at start-up if undocumented

        def wrap(handler):
            async def endpoint(request):
                ctx = Ctx(request, op)
                try:
                    if auth == "device":
                        p.auth_device(ctx)
                    elif auth in ("operator", "admin"):
                        p.auth_operator(ctx, admin_only=(auth == "admin"))
                    op.check_path(ctx.params)
                    if auth in ("operator", "admin"):
                        p.scope(ctx)
                    ctx.query = op.check_query(request.query_params)
                    await p.read_body(ctx)
                    return await handler(ctx)
                except ContractError as e:
                    return error_response(400, "invalid_request", e.message, field=e.field)
                except ApiError as e:
                    return error_response(e.status, e.code, e.message, e.field, e.headers, **e.extra)
            endpoint.__name__ = op.id
            routes.append(Route(path, endpoint, methods=[method]))
            return handler
        return wrap

    def summary(dev):
        cfg = s.current_config(dev["device_id"])
        out = {"device_id": dev["device_id"], "tenant": dev["tenant"],
               "namespace": dev["namespace"], "created_at": dev["created_at"],
               "config_version": cfg["version"] if cfg else 0,
               "desired_version": s.get_desired(dev["device_id"])["version"]}
        if dev["registered_at"] is not None:
            out["registered_at"] = dev["registered_at"]
        hb = s.last_heartbeat(dev["device_id"])
        if hb is not None:
            out["last_heartbeat_at"] = hb
        rep = s.get_reported(dev["device_id"])
        if rep is not None:
            out["reported_at"] = rep["received_at"]
            out["firmware_version"] = rep["state"]["firmware_version"]
        return out

    def versions(device_id):
        cfg = s.current_config(device_id)
        return (cfg["version"] if cfg else 0), s.get_desired(device_id)["version"]

    # ---- meta ----

    @route("GET", "/v1/health")
    async def health(ctx):
        return JSONResponse({"status": "ok", "contract_version": CONTRACT_VERSION,
                             "server_time": p.now()})

    # ---- ServiceDiscovery ----

    @route("POST", "/v1/devices/register")
    async def register(ctx):
        b = ctx.body
        now = p.now()
        dev = s.get_device(b["device_id"])
        # The clock is judged before the device is looked up, so "fix my clock" tells nothing
        # about which ids exist; an unknown id and a wrong proof then answer the same, after
        # the same HMAC work, so device ids cannot be enumerated.
        if abs(now - b["timestamp"]) > p.clock_skew_s:
            raise ApiError(401, "stale_timestamp", "timestamp is more than %d s from server time;"
                           " retry with server_time" % p.clock_skew_s, field="timestamp",
                           server_time=now)
        key = dev["device_key"] if dev is not None else p.decoy_key
        proof_ok = check_proof(key, b["device_id"], b["timestamp"], b["nonce"], b["proof"])
        if dev is None or not proof_ok:
            raise ApiError(401, "bad_proof", "proof is not HMAC-SHA256(device key,"
                           " '<device_id>|<timestamp>|<nonce>') of a provisioned device",
                           field="proof")
        if not s.use_nonce(b["device_id"], b["nonce"], now, 2 * p.clock_skew_s + 1):
            raise ApiError(401, "nonce_reused", "this nonce was already used; send a fresh one",
                           field="nonce")
        token, claims = p.jwt.issue({"sub": dev["device_id"], "tenant": dev["tenant"],
                                     "namespace": dev["namespace"], "role": "device"}, now)
        s.mark_registered(dev["device_id"], now)
        base = p.base_url(ctx.request)
        return JSONResponse({
            "device_id": dev["device_id"], "tenant": dev["tenant"],
            "namespace": dev["namespace"], "token": token, "token_type": "Bearer",
            "expires_in": claims["exp"] - now, "expires_at": claims["exp"], "server_time": now,
            "services": {
                "config": base + "/v1/config", "config_schema": base + "/v1/config/schema",
                "state": base + "/v1/state", "desired_state": base + "/v1/state/desired",
                "heartbeat": base + "/v1/heartbeat", "alarms": base + "/v1/alarms",
                "ota": base + "/v1/ota"},
        }, headers={"Cache-Control": "no-store"})

    # ---- ConfigurationServer ----

    @route("GET", "/v1/config", auth="device")
    async def get_config(ctx):
        cfg = s.current_config(ctx.device["device_id"])
        if cfg is None:
            raise ApiError(404, "no_config", "no configuration has been pushed for this device yet")
        etag = '"cfg-%d"' % cfg["version"]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag_matches(ctx.request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return JSONResponse({"version": cfg["version"], "config": cfg["config"]}, headers=headers)

    @route("GET", "/v1/config/schema")
    async def get_config_schema(ctx):
        return JSONResponse(CONFIG_SCHEMA)

    # ---- StateServer ----

    @route("PUT", "/v1/state", auth="device")
    async def put_state(ctx):
        now = p.now()
        s.set_reported(ctx.device["device_id"], ctx.body, now)
        cfg_v, des_v = versions(ctx.device["device_id"])
        return JSONResponse({"received_at": now, "config_version": cfg_v, "desired_version": des_v})

    @route("GET", "/v1/state/desired", auth="device")
    async def get_desired(ctx):
        d = s.get_desired(ctx.device["device_id"])
        etag = '"desired-%d"' % d["version"]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag_matches(ctx.request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return JSONResponse(d, headers=headers)

    # ---- Watchdog ----

    @route("POST", "/v1/heartbeat", auth="device")
    async def heartbeat(ctx):
        now = p.now()
        device_id = ctx.device["device_id"]
        if "state" in ctx.body:
            s.set_reported(device_id, ctx.body["state"], now)
        popped = s.pop_command(device_id, now)
        command = popped[1] if popped else "none"
        s.add_heartbeat(device_id, now, ctx.body.get("seq"), ctx.body["uptime_s"], command)
        cfg_v, des_v = versions(device_id)
        out = {"command": command, "server_time": now, "config_version": cfg_v,
               "desired_version": des_v}
        if popped:
            out["command_id"] = popped[0]
        return JSONResponse(out)

    # ---- Alarms ----

    @route("POST", "/v1/alarms", auth="device")
    async def alarms(ctx):
        for i, a in enumerate(ctx.body["alarms"]):
            if a["first_seen"] > a["last_seen"]:
                raise ApiError(400, "invalid_request", "last_seen is before first_seen",
                               field="alarms[%d].last_seen" % i)
        result = s.merge_alarms(ctx.device["device_id"], ctx.body.get("batch_id"),
                                ctx.body["alarms"], p.now())
        return JSONResponse(result)

    # ---- OTA (offers, downloads, release keys, uploads) ----

    releases.add_routes(route, p, ApiError, parse_range)

    # ---- Operator ----

    @route("GET", "/v1/operator/tenants", auth="operator")
    async def list_tenants(ctx):
        rows = s.list_tenants(None if ctx.operator["admin"] else ctx.operator["tenant"])
        return JSONResponse({"tenants": [{"name": r["name"], "created_at": r["created_at"]}
                                         for r in rows]})

    @route("POST", "/v1/operator/tenants", auth="admin")
    async def create_tenant(ctx):
        now = p.now()
        if not s.create_tenant(ctx.body["name"], now):
            raise ApiError(409, "conflict", "tenant %r already exists" % ctx.body["name"],
                           field="name")
        return JSONResponse({"name": ctx.body["name"], "created_at": now}, status_code=201)

    @route("POST", "/v1/operator/tenants/{tenant}/tokens", auth="admin")
    async def create_tenant_token(ctx):
        token = "tt_" + secrets.token_urlsafe(32)
        h = hashlib.sha256(token.encode()).hexdigest()
        s.add_tenant_token(h, ctx.params["tenant"], p.now())
        # the highest device-API role its holder may mint
        role = ctx.query.get("role") or "operator"
        p.tokens.set_tenant_token_role(h, role)
        return JSONResponse({"tenant": ctx.params["tenant"], "token": token, "role": role},
                            status_code=201, headers={"Cache-Control": "no-store"})

    @route("GET", "/v1/operator/tenants/{tenant}/namespaces", auth="operator")
    async def list_namespaces(ctx):
        rows = s.list_namespaces(ctx.params["tenant"])
        return JSONResponse({"namespaces": [{"tenant": r["tenant"], "name": r["name"],
                                             "created_at": r["created_at"]} for r in rows]})

    @route("POST", "/v1/operator/tenants/{tenant}/namespaces", auth="operator")
    async def create_namespace(ctx):
        now = p.now()
        tenant, name = ctx.params["tenant"], ctx.body["name"]
        if not s.create_namespace(tenant, name, now):
            raise ApiError(409, "conflict", "namespace %r already exists in tenant %r"
                           % (name, tenant), field="name")
        return JSONResponse({"tenant": tenant, "name": name, "created_at": now}, status_code=201)

    dev_path = "/v1/operator/tenants/{tenant}/namespaces/{namespace}/devices"

    @route("GET", dev_path, auth="operator")
    async def list_devices(ctx):
        rows = s.list_devices(ctx.params["tenant"], ctx.params["namespace"])
        return JSONResponse({"devices": [summary(r) for r in rows]})

    @route("POST", dev_path, auth="operator")
    async def create_device(ctx):
        now = p.now()
        key = ctx.body.get("device_key") or secrets.token_urlsafe(24)
        device_id = ctx.body["device_id"]
        # Device ids are global: registration names only the id.
        if not s.create_device(device_id, ctx.params["tenant"], ctx.params["namespace"], key, now):
            raise ApiError(409, "conflict", "device id %r is already taken" % device_id,
                           field="device_id")
        return JSONResponse({"device_id": device_id, "tenant": ctx.params["tenant"],
                             "namespace": ctx.params["namespace"], "device_key": key,
                             "created_at": now}, status_code=201,
                            headers={"Cache-Control": "no-store"})

    one = dev_path + "/{device_id}"

    @route("GET", one, auth="operator")
    async def get_device(ctx):
        device_id = ctx.device["device_id"]
        out = {"device": summary(ctx.device), "desired": s.get_desired(device_id),
               "pending_commands": s.pending_commands(device_id)}
        rep = s.get_reported(device_id)
        if rep is not None:
            out["reported"] = rep["state"]
        return JSONResponse(out)

    @route("DELETE", one, auth="operator")
    async def delete_device(ctx):
        s.delete_device(ctx.device["device_id"])
        return Response(status_code=204)

    @route("GET", one + "/config", auth="operator")
    async def get_device_config(ctx):
        cfg = s.current_config(ctx.device["device_id"])
        if cfg is None:
            raise ApiError(404, "no_config", "no configuration has been pushed for this device yet")
        return JSONResponse(cfg)

    @route("PUT", one + "/config", auth="operator")
    async def put_device_config(ctx):
        problem = check_config(ctx.body)
        if problem and not ctx.query["force"]:
            raise ApiError(422, "invalid_config", "%s: %s" % problem, field=problem[0])
        now = p.now()
        body = p.tokens.with_revocations(ctx.device["device_id"], ctx.body, now)
        version = s.push_config(ctx.device["device_id"], body, problem is None, now)
        out = {"version": version, "valid": problem is None, "etag": '"cfg-%d"' % version}
        if problem:
            out["problem"] = {"error": "invalid_config", "message": "%s: %s" % problem,
                              "field": problem[0]}
        return JSONResponse(out)

    @route("PUT", one + "/desired-state", auth="operator")
    async def put_desired(ctx):
        relays = ctx.body["relays"]
        cfg = s.current_config(ctx.device["device_id"])
        for name in relays:
            if not RELAY_NAME.match(name) or len(name) > 32:
                raise ApiError(400, "invalid_request", "invalid relay name %r" % name,
                               field="relays.%s" % name)
            known = cfg["config"].get("relays", {}) if cfg else None
            if known is not None and isinstance(known, dict) and name not in known \
                    and not ctx.query["force"]:
                raise ApiError(422, "unknown_relay", "relay %r is not in the device's config"
                               " (version %d)" % (name, cfg["version"]), field="relays.%s" % name)
        return JSONResponse(s.set_desired(ctx.device["device_id"], relays, p.now()))

    @route("POST", one + "/commands", auth="operator")
    async def queue_command(ctx):
        now = p.now()
        cid = s.queue_command(ctx.device["device_id"], ctx.body["command"], now)
        return JSONResponse({"command_id": cid, "command": ctx.body["command"], "created_at": now},
                            status_code=202)

    device_tokens.mount(route, p)

    @route("GET", one + "/heartbeats", auth="operator")
    async def list_heartbeats(ctx):
        rows = s.list_heartbeats(ctx.device["device_id"], ctx.query["limit"])
        out = []
        for r in rows:
            h = {"received_at": r["received_at"], "uptime_s": r["uptime_s"], "command": r["command"]}
            if r["seq"] is not None:
                h["seq"] = r["seq"]
            out.append(h)
        return JSONResponse({"heartbeats": out})

    @route("GET", one + "/alarms", auth="operator")
    async def list_alarms(ctx):
        rows = s.list_alarms(ctx.device["device_id"], ctx.query["limit"])
        keys = ("dedup_key", "severity", "message", "count", "first_seen", "last_seen",
                "received_at")
        return JSONResponse({"alarms": [{k: r[k] for k in keys} for r in rows]})

    async def http_error(request, exc):
        if exc.status_code == 404:
            return error_response(404, "not_found", "no route %s %s" % (request.method,
                                                                         request.url.path))
        if exc.status_code == 405:
            return error_response(405, "method_not_allowed", "%s is not allowed on %s"
                                  % (request.method, request.url.path),
                                  headers=getattr(exc, "headers", None))
        return error_response(exc.status_code, "http_error", str(exc.detail))

    async def internal_error(request, exc):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; see the server log")

    app = Starlette(routes=routes,
                    exception_handlers={HTTPException: http_error, Exception: internal_error})
    app.router.redirect_slashes = False
    app.state.platform = platform
    return app


def parse_range(header, size):
    """(first, last) for one 'bytes=' range; anything else is 416, per RFC 9110 single-range use."""
    def bad(msg):
        return ApiError(416, "range_not_satisfiable", msg, field="Range",
                        headers={"Content-Range": "bytes */%d" % size})
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        raise bad("Range must be 'bytes=<first>-<last>'")
    if "," in spec:
        raise bad("only one range per request is supported")
    first, dash, last = spec.strip().partition("-")
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or \
            (not first and not last):
        raise bad("malformed Range %r" % header)
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            raise bad("empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise bad("range %s is outside the image (%d bytes)" % (spec, size))
    return start, min(end, size - 1)
