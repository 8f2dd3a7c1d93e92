"""The RBAC matrix over HTTP: every route with every role (built-in, config-defined, none,
unknown, combined), and tokens limited to some relays. The expected table is written out
here from docs/rest_api_security.md, not taken from rbac.py."""

import pytest

from rest_harness import refused, token

# route -> (method, path, body); bodies that would be accepted when the role allows
ROUTES = {
    "health": ("GET", "/health", None),
    "ready": ("GET", "/ready", None),
    "metrics": ("GET", "/metrics", None),
    "list": ("GET", "/gpio", None),
    "read": ("GET", "/gpio/r1", None),
    "switch": ("POST", "/gpio/r1", {"state": "TOGGLE"}),
    "bulk": ("POST", "/gpio", {"relays": {"r2": "LOW"}}),
    "config": ("GET", "/config", None),
    "reload": ("POST", "/config/reload", {}),
    "ota": ("POST", "/ota/check", {}),
}

# the doc's table, plus the config roles of rest_harness.DEVICE: switcher = relays:write,
# auditor = relays:read + metrics:read
ALLOWED = {
    "anonymous": {"health", "ready"},
    "viewer": {"health", "ready", "metrics", "list", "read"},
    "operator": {"health", "ready", "metrics", "list", "read", "switch", "bulk"},
    "admin": set(ROUTES),
    "switcher": {"health", "ready", "switch", "bulk"},
    "auditor": {"health", "ready", "metrics", "list", "read"},
    "no role": {"health", "ready"},
    "unknown role": {"health", "ready"},
    "role as a list": {"health", "ready"},
    "viewer + operator": {"health", "ready", "metrics", "list", "read", "switch", "bulk"},
}


def tok_for(who):
    if who == "anonymous":
        return None
    if who == "no role":
        return token("nobody", None)
    if who == "unknown role":
        return token("nobody", "root")
    if who == "role as a list":
        return token("nobody", ["admin"])
    if who == "viewer + operator":
        return token("both", None, roles=["viewer", "operator"])
    return token(who.replace(" ", "-"), who)


CASES = [(who, route) for who in ALLOWED for route in ROUTES]


@pytest.mark.parametrize("who, route", CASES, ids=["%s-%s" % c for c in CASES])
def test_route_by_role(api, who, route):
    method, path, body = ROUTES[route]
    t = tok_for(who)
    if route in ALLOWED[who]:
        a = api.request(method, path, json_body=body, token=t)
        assert a.status in (200, 202), (who, route, a)
    elif t is None:
        refused(api, "rbac", method, path, 401, "missing_token", json_body=body)
    else:
        refused(api, "rbac", method, path, 403, "forbidden", json_body=body, token=t)


# ---- tokens limited to some relays ----

SCOPED = token("scoped-op", "operator", relays=["r1"])
SCOPED_ADMIN = token("scoped-admin", "admin", relays=["r1"])


def test_scoped_token_lists_and_reads_only_its_relays(api):
    a = api.get("/gpio", SCOPED)
    assert [r["name"] for r in a.json["relays"]] == ["r1"]
    assert api.get("/gpio/r1", SCOPED).status == 200
    refused(api, "rbac", "GET", "/gpio/r2", 403, "relay_forbidden", "relay", token=SCOPED)


def test_scoped_token_switches_only_its_relays(api):
    assert api.post("/gpio/r1", {"state": "TOGGLE"}, SCOPED).status == 200
    refused(api, "rbac", "POST", "/gpio/r2", 403, "relay_forbidden", "relay",
            json_body={"state": "HIGH"}, token=SCOPED)
    # one relay out of scope refuses the whole write: r1 does not move either
    refused(api, "rbac", "POST", "/gpio", 403, "relay_forbidden", "relays.r2",
            json_body={"relays": {"r1": "HIGH", "r2": "HIGH"}}, token=SCOPED)
    assert api.post("/gpio", {"relays": {"r1": "LOW"}}, SCOPED).status == 200


def test_scoped_token_cannot_probe_relay_names(api):
    # outside the scope an unknown relay is forbidden, not 404: names do not leak
    refused(api, "rbac", "GET", "/gpio/nope", 403, "relay_forbidden", "relay", token=SCOPED)
    refused(api, "rbac", "POST", "/gpio", 403, "relay_forbidden", "relays.nope",
            json_body={"relays": {"nope": "HIGH"}}, token=SCOPED)


def test_scoped_token_is_no_admin_and_sees_no_metrics(api):
    refused(api, "rbac", "GET", "/metrics", 403, "forbidden", token=SCOPED)
    for method, path, body in (ROUTES["config"], ROUTES["reload"], ROUTES["ota"], ROUTES["metrics"]):
        refused(api, "rbac", method, path, 403, "forbidden", json_body=body, token=SCOPED_ADMIN)
    assert api.get("/gpio/r1", SCOPED_ADMIN).status == 200


@pytest.mark.parametrize("relays", ["r1", [1, 2], None, {"r1": True}],
                         ids=["a string", "numbers", "null", "an object"])
def test_a_malformed_relays_claim_limits_to_no_relay(api, relays):
    t = token("odd-scope", "operator", relays=relays) if relays is not None else \
        token("odd-scope", "operator", relays=[])
    assert api.get("/gpio", t).json == {"relays": []}
    refused(api, "rbac", "GET", "/gpio/r1", 403, "relay_forbidden", "relay", token=t)
    refused(api, "rbac", "POST", "/gpio/r1", 403, "relay_forbidden", "relay",
            json_body={"state": "TOGGLE"}, token=t)


def test_a_role_checks_before_the_body(api):
    # a viewer's write is refused for its role, whatever its body holds
    refused(api, "rbac", "POST", "/gpio/r1", 403, "forbidden", raw=b"not json",
            token=token("v", "viewer"))
    refused(api, "rbac", "POST", "/gpio/nope", 403, "forbidden", json_body={"state": "HIGH"},
            token=token("v", "viewer"))
