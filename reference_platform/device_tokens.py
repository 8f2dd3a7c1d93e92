"""Tokens for the device REST API: minted for the caller only (its subject, at most its role, a
capped lifetime, a jti), revocable; the revocation list travels to the device in its config
(api.revoked), bounded, expired entries pruned."""

import hashlib
import secrets

from starlette.responses import JSONResponse

from .api_error import ApiError
from .security import sign_hs256

DEVICE_API_ROLES = ("viewer", "operator", "admin")  # built into the device (iotlib/rbac.py)
DEFAULT_MAX_TTL_S = 3600
MAX_REVOKED = 64            # the device's config schema bound (api.revoked maxItems)
# the config permissions (api.roles) each built-in role holds, lowest role first
ROLE_PERMISSIONS = (
    ("viewer", {"relays:read", "metrics:read"}),
    ("operator", {"relays:read", "relays:write", "metrics:read"}),
    ("admin", {"relays:read", "relays:write", "metrics:read", "admin"}),
)
RANK = {name: i for i, (name, _) in enumerate(ROLE_PERMISSIONS)}

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_token_roles (
    token_sha256 TEXT PRIMARY KEY REFERENCES tenant_tokens(token_sha256) ON DELETE CASCADE,
    role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_tokens (
    jti TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    sub TEXT NOT NULL, role TEXT NOT NULL, issued_at INTEGER NOT NULL, exp INTEGER NOT NULL,
    revoked_at INTEGER);
"""


def role_rank(role, api_roles):
    """The rank of the lowest built-in role that holds every permission of `role`."""
    if role in (api_roles or {}):
        perms = set(api_roles[role].get("permissions", ()))
        for name, held in ROLE_PERMISSIONS:
            if perms <= held:
                return RANK[name]
        return RANK["admin"]
    return RANK[role]


class DeviceTokens:
    def __init__(self, store, max_ttl_s=DEFAULT_MAX_TTL_S):
        if not 60 <= max_ttl_s <= 86400:
            raise ValueError("the device-API token lifetime cap must be 60..86400 s")
        self.store = store
        self.db = store.db
        self.max_ttl_s = max_ttl_s
        with self.db:
            self.db.executescript(SCHEMA)

    # ---- who is calling ----

    def set_tenant_token_role(self, token_sha256, role):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO tenant_token_roles VALUES (?, ?)",
                            (token_sha256, role))

    def caller(self, operator):
        """(subject, role) of an operator token: the admin token is "operator" with role admin;
        a tenant token is "operator@<tenant>/<its id>" with the role it was issued with."""
        if operator["admin"]:
            return "operator", "admin"
        h = operator["token_sha256"]
        row = self.db.execute("SELECT role FROM tenant_token_roles WHERE token_sha256=?",
                              (h,)).fetchone()
        return "operator@%s/%s" % (operator["tenant"], h[:8]), \
            row["role"] if row is not None else "operator"

    # ---- revocation ----

    def revocations(self, device_id, now):
        """The unexpired revoked tokens of a device, soonest expiry first (api.revoked)."""
        rows = self.db.execute("SELECT jti, exp FROM api_tokens WHERE device_id=? AND"
                               " revoked_at IS NOT NULL AND exp > ? ORDER BY exp, jti",
                               (device_id, now)).fetchall()
        return [{"jti": r["jti"], "exp": r["exp"]} for r in rows]

    def with_revocations(self, device_id, config, now):
        """`config` with api.revoked set to the platform's list (the operator's own is replaced:
        the platform is the one that knows what was minted and revoked)."""
        api = config.get("api") if isinstance(config, dict) else None
        if not isinstance(api, dict):
            return config
        revoked = self.revocations(device_id, now)
        out = dict(config)
        out["api"] = dict(api)
        if revoked:
            out["api"]["revoked"] = revoked
        else:
            out["api"].pop("revoked", None)
        return out


def mount(route, platform):
    """The token routes, on build_app's `route` decorator."""
    p = platform
    s = platform.store
    t = platform.tokens
    one = "/v1/operator/tenants/{tenant}/namespaces/{namespace}/devices/{device_id}"

    @route("POST", one + "/api-tokens", auth="operator")
    async def mint_device_api_token(ctx):
        # a token for the device's own REST API, signed with its config's api.jwt key
        b = ctx.body
        device_id = ctx.device["device_id"]
        cfg = s.current_config(device_id)
        if cfg is not None and not cfg["valid"]:
            raise ApiError(409, "config_invalid", "the device's current config (version %d) is"
                           " invalid; push a valid one with api.jwt first" % cfg["version"])
        config = cfg["config"] if cfg else {}
        api = config.get("api") or {}
        jwt = api.get("jwt")
        if jwt is None:
            raise ApiError(409, "no_api_key", "device %r has no REST API key: push a config with"
                           " api.jwt {key, issuer, audience} first" % device_id)
        role = b["role"]
        api_roles = api.get("roles") or {}
        if role not in DEVICE_API_ROLES and role not in api_roles:
            raise ApiError(422, "unknown_role", "role %r is neither built in (%s) nor in the"
                           " device's api.roles" % (role, ", ".join(DEVICE_API_ROLES)),
                           field="role")
        sub, own_role = t.caller(ctx.operator)
        # the audit trail and the rate limits name the caller: no one mints as someone else
        if b.get("sub", sub) != sub:
            raise ApiError(403, "sub_not_allowed", "a token's subject is its minter (%r)" % sub,
                           field="sub")
        if role_rank(role, api_roles) > RANK[own_role]:
            raise ApiError(403, "role_too_high", "role %r is above the caller's own (%s)"
                           % (role, own_role), field="role")
        for i, name in enumerate(b.get("relays", [])):
            if name not in config["relays"]:
                raise ApiError(422, "unknown_relay", "relay %r is not in the device's config"
                               " (version %d)" % (name, cfg["version"]), field="relays[%d]" % i)
        if b.get("ttl_s", 0) > t.max_ttl_s:
            raise ApiError(422, "ttl_too_long", "ttl_s is capped at %d s on this platform"
                           % t.max_ttl_s, field="ttl_s")
        ttl = b.get("ttl_s", min(api.get("token_ttl_s", t.max_ttl_s), t.max_ttl_s))
        now = p.now()
        jti = secrets.token_urlsafe(16)
        claims = {"iss": jwt["issuer"], "aud": jwt["audience"], "sub": sub,
                  "tenant": ctx.device["tenant"], "namespace": ctx.device["namespace"],
                  "role": role, "iat": now, "nbf": now, "exp": now + ttl, "jti": jti}
        if "relays" in b:
            claims["relays"] = b["relays"]
        token = sign_hs256(bytes.fromhex(jwt["key"]), claims)
        with t.db:
            t.db.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                         (jti, device_id, sub, role, now, claims["exp"]))
        return JSONResponse({"token": token, "expires_at": claims["exp"], "jti": jti,
                             "sub": sub}, status_code=201, headers={"Cache-Control": "no-store"})

    @route("POST", one + "/api-tokens/revoke", auth="operator")
    async def revoke_device_api_token(ctx):
        device_id = ctx.device["device_id"]
        jti = ctx.body["jti"]
        now = p.now()
        row = t.db.execute("SELECT * FROM api_tokens WHERE jti=? AND device_id=?",
                           (jti, device_id)).fetchone()
        if row is None:
            raise ApiError(404, "not_found", "no token %r was minted for this device" % jti,
                           field="jti")
        cfg = s.current_config(device_id)
        out = {"jti": jti, "exp": row["exp"], "revoked_at": row["revoked_at"] or now,
               "config_version": cfg["version"] if cfg else 0}
        if row["exp"] <= now or row["revoked_at"] is not None:
            return JSONResponse(out)   # expired or already on the list: nothing to push
        if len(t.revocations(device_id, now)) >= MAX_REVOKED:
            raise ApiError(409, "revocation_list_full", "%d unexpired tokens are revoked already;"
                           " rotate api.jwt.key instead" % MAX_REVOKED, field="jti")
        with t.db:
            t.db.execute("UPDATE api_tokens SET revoked_at=? WHERE jti=?", (now, jti))
        if cfg is not None:
            # the list reaches the device as a new config version, as any config change does
            out["config_version"] = s.push_config(
                device_id, t.with_revocations(device_id, cfg["config"], now), cfg["valid"], now)
        return JSONResponse(out)

    return mint_device_api_token, revoke_device_api_token


def token_sha256(token):
    return hashlib.sha256(token.encode()).hexdigest()
