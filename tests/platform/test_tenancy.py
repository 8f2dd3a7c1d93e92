"""Tenant and namespace isolation for devices and operators."""

import base64
import json

from platform_harness import OPERATOR_TOKEN, dev_path


def test_device_only_ever_sees_its_own_data(server, fleet):
    a = fleet.device(config={"relays": {"a_only": {"pin": 5}}})
    b = fleet.device(config={"relays": {"b_only": {"pin": 6}}})
    assert a.tenant != b.tenant
    server.op("PUT", b.op_path("desired-state"), json_body={"relays": {"b_only": True}})
    assert a.call("GET", "/v1/config").json()["config"]["relays"] == {"a_only": {"pin": 5}}
    assert a.call("GET", "/v1/state/desired").json()["relays"] == {}
    # a write by A lands on A only
    state = {"relays": {"a_only": True}, "uptime_s": 1, "firmware_version": "a"}
    assert a.call("PUT", "/v1/state", json_body=state).status == 200
    assert server.op("GET", a.op_path()).json()["reported"] == state
    assert "reported" not in server.op("GET", b.op_path()).json()


def _forge(token, **changes):
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims.update(changes)
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (h, p2, s)


def test_a_token_cannot_be_retargeted(server, fleet):
    a = fleet.device()
    b = fleet.device()
    a.register()
    for forged in (_forge(a.token, tenant=b.tenant, namespace=b.namespace),
                   _forge(a.token, sub=b.device_id, tenant=b.tenant, namespace=b.namespace),
                   _forge(a.token, exp=4102444800)):
        for method, path, body in (("GET", "/v1/config", None),
                                   ("PUT", "/v1/state", {"relays": {}, "uptime_s": 0,
                                                         "firmware_version": "x"})):
            r = server.call(method, path, token=forged, json_body=body)
            assert r.status == 401 and r.json()["error"] == "invalid_token", r
    assert "reported" not in server.op("GET", b.op_path()).json()


def test_same_names_in_two_tenants_stay_apart(server, fleet):
    t1, t2 = fleet.tenant(), fleet.tenant()
    fleet.namespace(t1, "prod")
    fleet.namespace(t2, "prod")
    d1 = fleet.device(t1, "prod", config={"relays": {"r": {"pin": 7}}})
    d2 = fleet.device(t2, "prod", config={"relays": {"r": {"pin": 8}}})
    assert d1.call("GET", "/v1/config").json()["config"]["relays"]["r"]["pin"] == 7
    assert d2.call("GET", "/v1/config").json()["config"]["relays"]["r"]["pin"] == 8
    # device ids are global: the same id cannot be created in another tenant
    r = server.op("POST", dev_path(t2, "prod"), json_body={"device_id": d1.device_id})
    assert r.status == 409 and r.json()["field"] == "device_id"
    # an operator path naming the wrong tenant does not reach the device
    r = server.op("GET", dev_path(t2, "prod", d1.device_id))
    assert r.status == 404 and r.json()["field"] == "device_id"
    r = server.op("PUT", dev_path(t2, "prod", d1.device_id, "config"),
                  json_body={"relays": {"r": {"pin": 9}}})
    assert r.status == 404
    assert d1.call("GET", "/v1/config").json()["version"] == 1


def test_tenant_operator_token_is_scoped(server, fleet):
    mine = fleet.device()
    other = fleet.device()
    r = server.op("POST", "/v1/operator/tenants/%s/tokens" % mine.tenant)
    assert r.status == 201
    tok = r.json()["token"]
    # sees and manages its own tenant
    r = server.call("GET", "/v1/operator/tenants", token=tok)
    assert [t["name"] for t in r.json()["tenants"]] == [mine.tenant]
    assert server.call("GET", mine.op_path(), token=tok).status == 200
    r = server.call("PUT", mine.op_path("desired-state"), token=tok,
                    json_body={"relays": {"pump": True}})
    assert r.status == 200
    r = server.call("POST", "/v1/operator/tenants/%s/namespaces" % mine.tenant, token=tok,
                    json_body={"name": "extra"})
    assert r.status == 201
    # nothing of the other tenant, and no admin actions
    for method, path, body in (
            ("GET", other.op_path(), None),
            ("GET", dev_path(other.tenant, other.namespace), None),
            ("PUT", other.op_path("desired-state"), {"relays": {"pump": True}}),
            ("PUT", other.op_path("config"), {"relays": {"x": {"pin": 1}}}),
            ("GET", other.op_path("alarms"), None),
            ("POST", other.op_path("commands"), {"command": "reset"}),
            ("GET", "/v1/operator/tenants/%s/namespaces/%s/ota" % (other.tenant, other.namespace),
             None),
            ("GET", "/v1/operator/tenants/no-such-tenant/namespaces", None)):
        r = server.call(method, path, token=tok, json_body=body)
        assert r.status == 403 and r.json()["field"] == "tenant", (path, r)
    r = server.call("POST", "/v1/operator/tenants", token=tok, json_body={"name": "evil"})
    assert r.status == 403
    r = server.call("POST", "/v1/operator/tenants/%s/tokens" % mine.tenant, token=tok)
    assert r.status == 403
    assert server.op("GET", other.op_path()).json()["desired"]["version"] == 0


def test_operator_authentication(server):
    for tok in (None, "wrong-token-wrong-token", OPERATOR_TOKEN + "x"):
        r = server.call("GET", "/v1/operator/tenants", token=tok)
        assert r.status == 401, r
    assert server.op("GET", "/v1/operator/tenants").status == 200


def test_operator_creation_errors(server, fleet):
    t = fleet.tenant()
    r = server.op("POST", "/v1/operator/tenants", json_body={"name": t})
    assert r.status == 409 and r.json()["field"] == "name"
    r = server.op("POST", "/v1/operator/tenants", json_body={"name": "Upper_Case"})
    assert r.status == 400 and r.json()["field"] == "name"
    ns = fleet.namespace(t, "ns1")
    r = server.op("POST", "/v1/operator/tenants/%s/namespaces" % t, json_body={"name": ns})
    assert r.status == 409
    r = server.op("GET", dev_path(t, "nope"))
    assert r.status == 404 and r.json()["field"] == "namespace"
    r = server.op("GET", "/v1/operator/tenants/nope-%s/namespaces" % t)
    assert r.status == 404 and r.json()["field"] == "tenant"
    r = server.op("POST", dev_path(t, ns), json_body={"device_id": "dev-a", "device_key": "short"})
    assert r.status == 400 and r.json()["field"] == "device_key"
    # without a key the platform makes one, shown once
    r = server.op("POST", dev_path(t, ns), json_body={"device_id": "dev-gen-" + t})
    assert r.status == 201 and len(r.json()["device_key"]) >= 16
    assert r.headers["Cache-Control"] == "no-store"
    r = server.op("GET", "/v1/operator/tenants/%s/namespaces" % t)
    assert [n["name"] for n in r.json()["namespaces"]] == ["ns1"]
