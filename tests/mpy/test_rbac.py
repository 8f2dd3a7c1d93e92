# iotlib.rbac: roles x actions, relay scoping, config roles, and the matrix in
# docs/rest_api_security.md kept equal to the data the API enforces.
from check import eq, raises, true
from iotlib import rbac
from iotlib.rbac import ADMIN, METRICS, READ, SWITCH

# written out by hand: the table the original spec asks for, independent of rbac.ROLES
WANT = {
    "viewer": {READ: True, SWITCH: False, METRICS: True, ADMIN: False},
    "operator": {READ: True, SWITCH: True, METRICS: True, ADMIN: False},
    "admin": {READ: True, SWITCH: True, METRICS: True, ADMIN: True},
}

WANT_ROUTES = (
    # method, path, anonymous, viewer, operator, admin
    ("GET", "/health", True, True, True, True),
    ("GET", "/ready", True, True, True, True),
    ("GET", "/metrics", False, True, True, True),
    ("GET", "/gpio", False, True, True, True),
    ("GET", "/gpio/<relay>", False, True, True, True),
    ("POST", "/gpio/<relay>", False, False, True, True),
    ("POST", "/gpio", False, False, True, True),
    ("GET", "/config", False, False, False, True),
    ("POST", "/config/reload", False, False, False, True),
    ("POST", "/ota/check", False, False, False, True),
)


def claims(role="operator", **kw):
    c = {"sub": "s", "role": role}
    c.update(kw)
    return c


def test_roles_by_action():
    for role in WANT:
        for action in WANT[role]:
            eq(rbac.allowed(claims(role), action), WANT[role][action], "%s %s" % (role, action))
            eq(rbac.allowed(claims(role), action, "relay1"), WANT[role][action], "%s %s relay1" % (role, action))


def test_denial_codes():
    eq(rbac.denial(claims("viewer"), SWITCH), "forbidden", "viewer switch")
    eq(rbac.denial(claims("operator"), SWITCH, "relay2"), None, "operator switch")
    eq(rbac.denial(claims("operator", relays=["relay1"]), SWITCH, "relay2"), "relay_forbidden", "scoped")


def test_route_matrix():
    rows = rbac.matrix()
    eq(len(rows), len(WANT_ROUTES), "route count")
    for (m, p, action, cells), want in zip(rows, WANT_ROUTES):
        eq((m, p), want[:2], "route order")
        eq(action is None, want[2], "%s %s anonymous" % (m, p))
        eq((cells["viewer"], cells["operator"], cells["admin"]), want[3:], "%s %s roles" % (m, p))
        eq(rbac.route_action(m, p), action, "route_action")


def test_every_route_checked_by_allowed():
    # the matrix and allowed() say the same for every route and role
    for m, p, action, cells in rbac.matrix():
        if action is None:
            continue
        for role in cells:
            eq(rbac.allowed(claims(role), action), cells[role], "%s %s %s" % (role, m, p))


def test_unknown_route_and_action():
    raises(KeyError, "DELETE /gpio", rbac.route_action, "DELETE", "/gpio")
    raises(ValueError, "unknown action 'reboot'", rbac.allowed, claims("admin"), "reboot")


def test_no_or_unknown_role():
    for c in ({"sub": "s"}, claims("device"), claims("root"), claims(None), claims(["admin"]),
              claims(7), claims(""), claims("Admin"), {"sub": "s", "roles": "admin"}):
        for action in rbac.ACTIONS:
            eq(rbac.allowed(c, action), False, "%r %s" % (c, action))


def test_roles_list_is_a_union():
    c = {"sub": "s", "roles": ["viewer", "nobody", 3]}
    eq((rbac.allowed(c, READ), rbac.allowed(c, SWITCH)), (True, False), "viewer via list")
    c = {"sub": "s", "role": "viewer", "roles": ["operator"]}
    eq(rbac.allowed(c, SWITCH), True, "role + roles")
    eq(rbac.token_roles(c), ["viewer", "operator"], "token_roles")


def test_relay_scope():
    c = claims("operator", relays=["relay1", "relay3"])
    eq(rbac.allowed(c, SWITCH, "relay1"), True, "in scope")
    eq(rbac.allowed(c, SWITCH, "relay2"), False, "out of scope switch")
    eq(rbac.allowed(c, READ, "relay2"), False, "out of scope read")
    eq(rbac.allowed(c, READ), True, "route-level read")
    eq(rbac.allowed(c, SWITCH), True, "route-level switch")
    names = ["relay1", "relay2", "relay3", "relay4"]
    eq(rbac.permitted_relays(c, READ, names), ["relay1", "relay3"], "GET /gpio lists")
    eq(rbac.forbidden_relays(c, SWITCH, names), ["relay2", "relay4"], "POST /gpio refuses")
    eq(rbac.forbidden_relays(c, SWITCH, ["relay3", "relay1"]), [], "all in scope")


def test_scope_does_not_grant():
    # a viewer limited to relay1 still cannot switch it
    c = claims("viewer", relays=["relay1"])
    eq(rbac.allowed(c, SWITCH, "relay1"), False, "viewer scoped switch")
    eq(rbac.permitted_relays(c, SWITCH, ["relay1"]), [], "nothing to switch")


def test_scoped_token_is_no_admin():
    c = claims("admin", relays=["relay1"])
    eq(rbac.allowed(c, SWITCH, "relay1"), True, "switch own relay")
    eq(rbac.allowed(c, SWITCH, "relay2"), False, "other relay")
    eq(rbac.denial(c, ADMIN), "forbidden", "config/OTA")
    eq(rbac.denial(c, METRICS), "forbidden", "metrics show every relay")


def test_bad_relays_claim_limits_to_none():
    for bad in ("relay1", None, {"relay1": True}, [1], ["relay1", None], 0):
        c = claims("admin", relays=bad)
        eq(rbac.relay_scope(c), (), "scope of %r" % (bad,))
        eq(rbac.allowed(c, READ, "relay1"), False, "read with relays=%r" % (bad,))
        eq(rbac.allowed(c, ADMIN), False, "admin with relays=%r" % (bad,))
    eq(rbac.relay_scope(claims("admin", relays=[])), (), "empty list")
    eq(rbac.relay_scope(claims("admin")), None, "no claim: every relay")


def test_roles_from_config():
    roles = rbac.roles_from_config({
        "auditor": {"permissions": ["relays:read", "metrics:read"]},
        "switcher": {"permissions": ["relays:write"]},
        "root": {"permissions": ["admin"]},
        "viewer": {"permissions": ["relays:read"]},
    })
    eq(roles["auditor"], (READ, METRICS), "auditor")
    eq(roles["switcher"], (SWITCH,), "write alone does not read")
    eq(roles["root"], rbac.ACTIONS, "admin is everything")
    eq(roles["viewer"], (READ,), "config redefines a built-in")
    eq(roles["operator"], rbac.ROLES["operator"], "built-ins kept")
    eq(rbac.allowed(claims("auditor"), SWITCH, roles=roles), False, "auditor switch")
    eq(rbac.allowed(claims("root"), ADMIN, roles=roles), True, "root admin")
    eq(rbac.allowed(claims("root"), ADMIN), False, "root unknown without config")
    eq(rbac.roles_from_config(None), rbac.ROLES, "no api.roles")
    raises(ValueError, "role x: unknown permission 'relays:delete'",
           rbac.roles_from_config, {"x": {"permissions": ["relays:delete"]}})


def table_lines(roles=rbac.ROLES):
    # the matrix as docs/rest_api_security.md shows it
    names = ["viewer", "operator", "admin"]  # fixed: MicroPython dicts keep no order
    eq(sorted(names), sorted(rbac.ROLES), "built-in roles")
    lines = ["| method | path | action | anonymous | " + " | ".join(names) + " |"]
    for m, p, action, cells in rbac.matrix(roles):
        marks = ["yes" if cells[r] else "no" for r in names]
        lines.append("| %s | `%s` | %s | %s | %s |" % (
            m, p, action or "none", "yes" if action is None else "no", " | ".join(marks)))
    return lines


def test_docs_show_the_matrix():
    here = __file__[:__file__.rfind("/")] if "/" in __file__ else "."
    with open(here + "/../../docs/rest_api_security.md") as f:
        doc = f.read()
    for line in table_lines():
        true(line in doc, "docs/rest_api_security.md lacks the line: " + line)
