"""ConfigurationServer: versions, ETag/304, schema validation on push, forced invalid configs."""

import json
import os

from platform_harness import MIN_CONFIG, ROOT

FULL_CONFIG = {
    "relays": {
        "heater": {"pin": 2, "active_low": True, "on_at_boot": False, "min_interval_ms": 500},
        "cooler": {"pin": 3, "min_interval_ms": 500},
        "door": {"pin": 4, "pulse_ms": 750},
    },
    "restore_policy": "last",
    "interlocks": [{"relays": ["heater", "cooler"], "dead_ms": 1000}],
    "inputs": {"door_closed": {"pin": 10, "pull": "up", "active_low": True, "debounce_ms": 30}},
    "ntp_servers": ["127.0.0.1:12300", "pool.ntp.org"],
    "ntp_period_s": 600,
    "log_level": "debug",
    "log_file": {"max_bytes": 8192, "keep": 2},
    "heartbeat_period_s": 15,
    "heartbeat_max_missed": 4,
    "state_period_s": 30,
    "config_poll_period_s": 60,
    "api": {
        "roles": {"viewer": {"permissions": ["relays:read", "metrics:read"]},
                  "operator": {"permissions": ["relays:read", "relays:write"]}},
        "keys": [{"id": "ops", "role": "operator", "key_sha256": "ab" * 32}],
        "token_ttl_s": 600,
    },
    "rate_limits": {"default": {"requests": 10, "window_s": 1},
                    "operator": {"requests": 50, "window_s": 10}},
}


def test_config_version_etag_and_304(server, fleet):
    dev = fleet.device(config=FULL_CONFIG)
    r = dev.call("GET", "/v1/config")
    assert r.status == 200
    assert r.json() == {"version": 1, "config": FULL_CONFIG}
    etag = r.headers["ETag"]
    assert etag == '"cfg-1"'
    r = dev.call("GET", "/v1/config", headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"" and r.headers["ETag"] == etag
    r = dev.call("GET", "/v1/config", headers={"If-None-Match": 'W/"cfg-1", "x"'})
    assert r.status == 304
    # a push changes the version, and the old ETag no longer matches
    changed = dict(FULL_CONFIG, log_level="warning")
    r = server.op("PUT", dev.op_path("config"), json_body=changed)
    assert r.status == 200 and r.json() == {"version": 2, "valid": True, "etag": '"cfg-2"'}
    r = dev.call("GET", "/v1/config", headers={"If-None-Match": etag})
    assert r.status == 200 and r.json()["version"] == 2
    assert r.json()["config"]["log_level"] == "warning"
    assert dev.call("GET", "/v1/config", headers={"If-None-Match": '"cfg-2"'}).status == 304
    # the operator sees what was pushed
    r = server.op("GET", dev.op_path("config"))
    assert r.json()["version"] == 2 and r.json()["valid"] is True


def test_no_config_yet(server, fleet):
    dev = fleet.device(config=None)
    r = dev.call("GET", "/v1/config")
    assert r.status == 404 and r.json()["error"] == "no_config"
    assert server.op("GET", dev.op_path("config")).status == 404


INVALID = [
    ({"relays": {}}, "relays"),
    ({"heartbeat_period_s": 10}, "relays"),
    (dict(MIN_CONFIG, colour="blue"), "colour"),
    ({"relays": {"pump": {"pin": 2, "speed": 3}}}, "relays.pump.speed"),
    ({"relays": {"pump": {"pin": 25}}}, "relays.pump.pin"),
    ({"relays": {"pump": {"pin": "2"}}}, "relays.pump.pin"),
    ({"relays": {"Pump": {"pin": 2}}}, "relays.Pump"),
    ({"relays": {"pump": {"pin": 2, "min_interval_ms": -1}}}, "relays.pump.min_interval_ms"),
    ({"relays": {"pump": {"pin": 2, "pulse_ms": 0}}}, "relays.pump.pulse_ms"),
    ({"relays": {"a": {"pin": 2}, "b": {"pin": 2}}}, "relays.b.pin"),
    (dict(MIN_CONFIG, inputs={"btn": {"pin": 3}}), "inputs.btn.pin"),
    (dict(MIN_CONFIG, interlocks=[{"relays": ["pump", "valve"], "dead_ms": 10}]),
     "interlocks[0].relays[1]"),
    (dict(MIN_CONFIG, interlocks=[{"relays": ["pump"], "dead_ms": 10}]), "interlocks[0].relays"),
    (dict(MIN_CONFIG, log_level="verbose"), "log_level"),
    (dict(MIN_CONFIG, heartbeat_period_s=0), "heartbeat_period_s"),
    (dict(MIN_CONFIG, ntp_servers=["bad host"]), "ntp_servers[0]"),
    (dict(MIN_CONFIG, api={"roles": {}, "keys": [{"id": "k", "role": "root",
                                                   "key_sha256": "0" * 64}]}), "api.keys[0].role"),
    (dict(MIN_CONFIG, api={"roles": {"r": {"permissions": ["fly"]}}}),
     "api.roles.r.permissions[0]"),
    (dict(MIN_CONFIG, rate_limits={"ghost": {"requests": 1, "window_s": 1}}), "rate_limits.ghost"),
]


def test_config_push_validation_names_the_field(server, fleet):
    dev = fleet.device()
    for config, field in INVALID:
        r = server.op("PUT", dev.op_path("config"), json_body=config)
        assert r.status == 422, (config, r)
        b = r.json()
        assert b["error"] == "invalid_config"
        assert b["field"] == field, (config, b)
        assert field in b["message"]
    # nothing was stored: still version 1
    assert dev.call("GET", "/v1/config").json()["version"] == 1
    # not even an object
    r = server.op("PUT", dev.op_path("config"), json_body=[1, 2])
    assert r.status == 400


def test_forced_invalid_config_is_served(server, fleet):
    dev = fleet.device()
    bad = {"relays": {"pump": {"pin": 99}}}
    r = server.op("PUT", dev.op_path("config") + "?force=1", json_body=bad)
    assert r.status == 200, r
    b = r.json()
    assert b["valid"] is False and b["version"] == 2
    assert b["problem"]["field"] == "relays.pump.pin"
    r = dev.call("GET", "/v1/config")
    assert r.json() == {"version": 2, "config": bad}
    assert server.op("GET", dev.op_path("config")).json()["valid"] is False
    # force=0 is the default behaviour, other values are refused
    assert server.op("PUT", dev.op_path("config") + "?force=0", json_body=bad).status == 422
    r = server.op("PUT", dev.op_path("config") + "?force=yes", json_body=bad)
    assert r.status == 400 and r.json()["field"] == "force"


def test_schema_is_published_and_matches_the_file(server):
    r = server.call("GET", "/v1/config/schema")
    assert r.status == 200
    with open(os.path.join(ROOT, "reference_platform", "config.schema.json")) as f:
        assert r.json() == json.load(f)


def test_example_configs_are_valid():
    from reference_platform.validation import check_config
    assert check_config(FULL_CONFIG) is None
    assert check_config(MIN_CONFIG) is None
    with open(os.path.join(ROOT, "reference_platform", "seed.example.json")) as f:
        seed = json.load(f)
    for t in seed["tenants"]:
        for n in t["namespaces"]:
            for d in n["devices"]:
                assert check_config(d["config"]) is None
