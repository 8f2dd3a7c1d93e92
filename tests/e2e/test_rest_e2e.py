"""The device REST API end to end: the reference platform mints a token with the key of the
device's config (api.jwt), the device (unix build running python/main.py) serves the API on
127.0.0.1 and switches the relay; the simulated pin and the audit trail show it. A config with
a new key is hot-reloaded: old tokens stop at once, new ones work. Tenancy, scopes, and the
503s before the key and before time sync."""

import secrets

import pytest

from e2e_harness import base_config, sim, wait_for

ISSUER = "https://platform.e2e/relays"


def api_config(ntp, key=None, **over):
    cfg = base_config(ntp, **over)
    cfg["api"] = {"jwt": {"key": key or secrets.token_hex(32), "issuer": ISSUER,
                          "audience": "e2e-devices"}}
    return cfg


def need_ntp(ntp):
    if not ntp:
        pytest.fail("no NTP responder: the device clock cannot be synced")


def mint(cloud, **body):
    return cloud.mint_api_token(**body)["token"]


def call(dev, method, path, token=None, body=None):
    return sim.http(method, dev.rest_url + path, body, token=token)


def rest_up(dev):
    return wait_for(lambda: _answers(dev, "/health"), 15, "the device REST API to answer")


def _answers(dev, path):
    try:
        return call(dev, "GET", path).status == 200
    except OSError:
        return False


def ready(dev):
    dev.wait_status(lambda s: s["ready"] and s["config_version"] >= 1,
                    "registered, config from the platform and time synced")
    rest_up(dev)


def audit(dev, relay):
    return [r for r in dev.records("audit") if r.get("relay") == relay]


def test_minted_token_switches_a_relay(platform, sim_device, ntp):
    need_ntp(ntp)
    dev = sim_device(platform, config=api_config(ntp))
    ready(dev)
    tok = mint(dev.cloud)
    r = call(dev, "POST", "/gpio/r1", tok, {"state": "HIGH"})
    assert r.status == 200, r
    assert r.json()["name"] == "r1" and r.json()["state"] == "HIGH", r
    dev.wait_status(lambda s: s["pins"].get("2") == 1, "pin 2 driven high")
    # r2 is active-low: on is a low pin
    assert call(dev, "POST", "/gpio/r2", tok, {"state": "HIGH"}).status == 200
    dev.wait_status(lambda s: s["pins"].get("3") == 0, "pin 3 driven low")
    assert dev.status()["relays"] == {"r1": True, "r2": True}
    lines = wait_for(lambda: audit(dev, "r1"), 10, "the audit line of r1")
    a = lines[-1]
    assert (a["subject"], a["source"], a["old"], a["new"]) == ("operator", "127.0.0.1", False, True)
    r = call(dev, "GET", "/gpio", tok)
    assert r.status == 200
    assert {d["name"]: d["state"] for d in r.json()["relays"]} == {"r1": "HIGH", "r2": "HIGH"}
    # the platform sees the change in the reported state
    wait_for(lambda: (dev.cloud.get().get("reported") or {}).get("relays") ==
             {"r1": True, "r2": True}, 10, "the switch reported to the platform")
    # a viewer reads but does not switch; a token limited to r2 does not reach r1
    view = mint(dev.cloud, role="viewer")
    assert call(dev, "GET", "/gpio/r1", view).status == 200
    r = call(dev, "POST", "/gpio/r1", view, {"state": "LOW"})
    assert r.status == 403 and r.json()["error"] == "forbidden", r
    r = call(dev, "POST", "/gpio/r1", mint(dev.cloud, relays=["r2"]), {"state": "LOW"})
    assert r.status == 403 and r.json()["error"] == "relay_forbidden", r
    assert dev.status()["relays"] == {"r1": True, "r2": True}
    # admin: the config in force, without its key
    r = call(dev, "GET", "/config", mint(dev.cloud, role="admin"))
    assert r.status == 200, r
    assert r.json()["config"]["api"]["jwt"] == {"issuer": ISSUER, "audience": "e2e-devices"}
    assert r.json()["config"]["relays"] == dev.cloud.platform.op(
        "GET", dev.cloud.op_path("config")).json()["config"]["relays"]


def test_new_key_is_hot_reloaded(platform, sim_device, ntp):
    need_ntp(ntp)
    cfg = api_config(ntp)
    dev = sim_device(platform, config=cfg)
    ready(dev)
    pid = dev.proc.pid
    old = mint(dev.cloud)
    assert call(dev, "POST", "/gpio/r1", old, {"state": "HIGH"}).status == 200
    new_cfg = api_config(ntp)
    assert dev.cloud.push_config(new_cfg).status == 200
    dev.wait_status(lambda s: s["config_version"] == 2, "config version 2 applied")
    dev.wait_log("REST API key replaced")
    r = call(dev, "POST", "/gpio/r1", old, {"state": "LOW"})
    assert r.status == 401 and r.json()["error"] == "bad_signature", r
    assert dev.status()["relays"]["r1"] is True, "the refused request moved nothing"
    new = mint(dev.cloud)
    r = call(dev, "POST", "/gpio/r1", new, {"state": "LOW"})
    assert r.status == 200 and r.json()["state"] == "LOW", r
    dev.wait_status(lambda s: s["pins"].get("2") == 0, "pin 2 low again")
    assert dev.proc.pid == pid and dev.exits == [], "reloaded without a restart"
    # neither key is in any log line or file the device wrote
    keys = [cfg["api"]["jwt"]["key"], new_cfg["api"]["jwt"]["key"]]
    assert keys[1] in dev.secrets()
    leaks = [(p, k) for p, line in dev.raw_lines() for k in keys if k in line]
    assert leaks == []


def test_token_of_another_tenant_is_403(platform, sim_device, ntp):
    need_ntp(ntp)
    cfg = api_config(ntp)
    dev = sim_device(platform, config=cfg)
    # another tenant's device whose config happens to use the same key, issuer and audience
    other = platform.provision(cfg)
    assert other.tenant != dev.cloud.tenant
    ready(dev)
    foreign = mint(other, role="admin")
    for method, path, body in (("GET", "/gpio", None), ("POST", "/gpio/r1", {"state": "HIGH"})):
        r = call(dev, method, path, foreign, body)
        assert r.status == 403 and r.json()["error"] == "wrong_tenant", r
    assert dev.status()["relays"] == {"r1": False, "r2": False}
    assert call(dev, "GET", "/gpio", mint(dev.cloud)).status == 200


def test_503_before_the_key_and_before_time_sync(platform, sim_device):
    # no NTP server: the clock never syncs
    dev = sim_device(platform, config=base_config(None), ntp_servers=[])
    dev.wait_status(lambda s: s["registered"] and s["config_version"] == 1, "registered")
    rest_up(dev)
    r = call(dev, "GET", "/gpio", "x.y.z")
    assert r.status == 503 and r.json()["error"] == "not_configured", r
    assert "key" in r.json()["message"]
    assert call(dev, "GET", "/health").status == 200
    r = call(dev, "GET", "/ready")
    assert r.status == 503 and r.json()["missing"] == ["time"], r
    r = dev.cloud.platform.op("POST", dev.cloud.op_path("api-tokens"), {"role": "operator"})
    assert r.status == 409 and r.json()["error"] == "no_api_key", r
    # the key arrives with the next config; the clock is still not synced
    assert dev.cloud.push_config(api_config(None)).status == 200
    dev.wait_status(lambda s: s["config_version"] == 2, "config version 2 applied")
    tok = mint(dev.cloud)
    for method, path, body in (("GET", "/gpio", None), ("POST", "/gpio/r1", {"state": "HIGH"})):
        r = call(dev, method, path, tok, body)
        assert r.status == 503 and r.json()["error"] == "time_not_synced", r
    assert dev.status()["relays"] == {"r1": False, "r2": False}
    # without a token the answer is still the token's own 401
    assert call(dev, "GET", "/gpio").status == 401


def test_rest_can_be_turned_off(platform, sim_device, ntp):
    # rest=False in the device settings (keyword options of RelaysController): no listener
    dev = sim_device(platform, config=api_config(ntp), rest=False)
    dev.wait_status(lambda s: s["registered"] and s["config_version"] == 1, "registered")
    assert not _answers(dev, "/health")
