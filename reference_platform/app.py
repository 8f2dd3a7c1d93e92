"""The reference platform as a Starlette application."""

import hashlib
import hmac
import json
import logging
import secrets
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from . import device_api, device_tokens, devices, discovery, releases, tenants
from .api_error import ApiError, error_response
from .contract import Contract, ContractError
from .security import JWTSigner, TokenError
from .store import Store

log = logging.getLogger("reference_platform")

MAX_JSON_BYTES = 64 * 1024


def _reject_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate member %r" % k)
        obj[k] = v
    return obj


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


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

    def versions(self, device_id):
        """(config version, desired-state version) of a device; 0 for no config yet."""
        cfg = self.store.current_config(device_id)
        return (cfg["version"] if cfg else 0), self.store.get_desired(device_id)["version"]

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

    # each resource's routes live in its own module, all on the same `route`
    for module in (discovery, device_api, releases, tenants, devices, device_tokens):
        module.mount(route, p)

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

