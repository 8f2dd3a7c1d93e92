# Who may do what on the device REST API: roles, actions and the role x route
# matrix as data, so the docs and the tests print the same table the API enforces.
READ = "read"        # relay states
SWITCH = "switch"    # change relays
METRICS = "metrics"  # GET /metrics
ADMIN = "admin"      # config and OTA triggers
ACTIONS = (READ, SWITCH, METRICS, ADMIN)

ROLES = {
    "viewer": (READ, METRICS),
    "operator": (READ, SWITCH, METRICS),
    "admin": ACTIONS,
}

# (method, path, action); None: no token needed, so probes work before any token can
ROUTES = (
    ("GET", "/health", None),
    ("GET", "/ready", None),
    ("GET", "/metrics", METRICS),
    ("GET", "/gpio", READ),
    ("GET", "/gpio/<relay>", READ),
    ("POST", "/gpio/<relay>", SWITCH),
    ("POST", "/gpio", SWITCH),
    ("GET", "/config", ADMIN),
    ("POST", "/config/reload", ADMIN),
    ("POST", "/ota/check", ADMIN),
)

# config api.roles permissions (reference_platform/config.schema.json) -> actions
PERMISSIONS = {
    "relays:read": (READ,),
    "relays:write": (SWITCH,),
    "metrics:read": (METRICS,),
    "admin": ACTIONS,
}


def roles_from_config(api_roles):
    # the built-in roles plus those of config "api.roles"; config wins on a name clash
    roles = dict(ROLES)
    for name in api_roles or {}:
        actions = []
        for perm in api_roles[name].get("permissions", ()):
            if perm not in PERMISSIONS:
                raise ValueError("role %s: unknown permission %r" % (name, perm))
            for a in PERMISSIONS[perm]:
                if a not in actions:
                    actions.append(a)
        roles[name] = tuple(actions)
    return roles


def token_roles(claims):
    # "role": "operator" and/or "roles": ["viewer", ...]; anything else counts for nothing
    out = []
    r = claims.get("role")
    if isinstance(r, str):
        out.append(r)
    rs = claims.get("roles")
    if isinstance(rs, list):
        for r in rs:
            if isinstance(r, str):
                out.append(r)
    return out


def relay_scope(claims):
    # None: every relay; else the tuple of relay names the token is limited to.
    # A "relays" claim that is not a list of names limits the token to none.
    if "relays" not in claims:
        return None
    rs = claims["relays"]
    if not isinstance(rs, list):
        return ()
    for r in rs:
        if not isinstance(r, str):
            return ()
    return tuple(rs)


def denial(claims, action, relay=None, roles=ROLES):
    # None when allowed, else "forbidden" or "relay_forbidden" (the error code for a 403)
    if action not in ACTIONS:
        raise ValueError("unknown action %r" % (action,))
    granted = False
    for r in token_roles(claims):
        if action in roles.get(r, ()):
            granted = True
            break
    if not granted:
        return "forbidden"
    scope = relay_scope(claims)
    if scope is None:
        return None
    # a token limited to some relays is no admin and cannot see every relay in /metrics
    if action == ADMIN or action == METRICS:
        return "forbidden"
    if relay is not None and relay not in scope:
        return "relay_forbidden"
    return None


def allowed(claims, action, relay=None, roles=ROLES):
    # relay=None on read/switch is the route-level check: a route over several
    # relays (GET /gpio, POST /gpio) must then filter or check each relay
    return denial(claims, action, relay, roles) is None


def permitted_relays(claims, action, names, roles=ROLES):
    # the names the token may act on, in the given order (GET /gpio lists these)
    return [n for n in names if denial(claims, action, n, roles) is None]


def forbidden_relays(claims, action, names, roles=ROLES):
    # the names the token may not act on (POST /gpio refuses the whole request if any)
    return [n for n in names if denial(claims, action, n, roles) is not None]


def route_action(method, path):
    # the action a route template needs; KeyError for a route not in the matrix
    for m, p, a in ROUTES:
        if m == method and p == path:
            return a
    raise KeyError("%s %s" % (method, path))


def matrix(roles=ROLES):
    # [(method, path, action, {role: allowed})] for docs and tests
    rows = []
    for m, p, a in ROUTES:
        cells = {}
        for r in roles:
            cells[r] = a is None or a in roles[r]
        rows.append((m, p, a, cells))
    return rows
