"""Operator routes for tenants, their operator tokens and their namespaces."""

import hashlib
import secrets

from starlette.responses import JSONResponse

from .api_error import ApiError


def mount(route, platform):
    p = platform
    s = platform.store

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
