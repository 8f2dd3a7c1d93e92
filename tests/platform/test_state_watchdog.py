"""StateServer (reported and desired state) and the Watchdog heartbeat with its commands."""

REPORTED = {"relays": {"pump": True, "fan": False}, "uptime_s": 42, "firmware_version": "1.0.0",
            "counters": {"switches": 7, "reconnects": 1}, "config_version": 1,
            "desired_version": 0}


def test_reported_state_is_stored_and_visible_to_the_operator(server, fleet):
    dev = fleet.device()
    r = dev.call("PUT", "/v1/state", json_body=REPORTED)
    assert r.status == 200
    ack = r.json()
    assert ack["config_version"] == 1 and ack["desired_version"] == 0
    r = server.op("GET", dev.op_path())
    assert r.json()["reported"] == REPORTED
    assert r.json()["device"]["firmware_version"] == "1.0.0"
    listed = server.op("GET", "/v1/operator/tenants/%s/namespaces/%s/devices"
                       % (dev.tenant, dev.namespace)).json()["devices"]
    assert [d["device_id"] for d in listed] == [dev.device_id]
    assert listed[0]["reported_at"] == ack["received_at"]
    assert listed[0]["registered_at"] >= listed[0]["created_at"]


def test_reported_state_rejects_bad_input(server, fleet):
    dev = fleet.device()
    cases = [(dict(REPORTED, relays={"pump": "on"}), "relays.pump"),
             (dict(REPORTED, uptime_s=-1), "uptime_s"),
             (dict(REPORTED, counters={"x": 1.5}), "counters.x"),
             (dict(REPORTED, colour="red"), "colour"),
             ({k: v for k, v in REPORTED.items() if k != "firmware_version"}, "firmware_version")]
    for body, field in cases:
        r = dev.call("PUT", "/v1/state", json_body=body)
        assert r.status == 400 and r.json()["field"] == field, (body, r)
    assert "reported" not in server.op("GET", dev.op_path()).json()


def test_desired_state_versions_and_etag(server, fleet):
    dev = fleet.device()
    r = dev.call("GET", "/v1/state/desired")
    assert r.status == 200
    assert r.json()["version"] == 0 and r.json()["relays"] == {}
    r = server.op("PUT", dev.op_path("desired-state"), json_body={"relays": {"pump": True}})
    assert r.status == 200 and r.json()["version"] == 1
    r = dev.call("GET", "/v1/state/desired")
    assert r.json()["version"] == 1 and r.json()["relays"] == {"pump": True}
    etag = r.headers["ETag"]
    assert dev.call("GET", "/v1/state/desired", headers={"If-None-Match": etag}).status == 304
    r = server.op("PUT", dev.op_path("desired-state"),
                  json_body={"relays": {"pump": False, "fan": True}})
    assert r.json()["version"] == 2
    r = dev.call("GET", "/v1/state/desired", headers={"If-None-Match": etag})
    assert r.status == 200 and r.json()["relays"] == {"pump": False, "fan": True}


def test_desired_state_must_name_configured_relays(server, fleet):
    dev = fleet.device()
    r = server.op("PUT", dev.op_path("desired-state"), json_body={"relays": {"boiler": True}})
    assert r.status == 422 and r.json()["field"] == "relays.boiler"
    r = server.op("PUT", dev.op_path("desired-state"), json_body={"relays": {"pump": 1}})
    assert r.status == 400 and r.json()["field"] == "relays.pump"
    r = server.op("PUT", dev.op_path("desired-state"), json_body={"relays": {"Bad Name": True}})
    assert r.status == 400
    r = server.op("PUT", dev.op_path("desired-state") + "?force=1",
                  json_body={"relays": {"boiler": True}})
    assert r.status == 200
    assert dev.call("GET", "/v1/state/desired").json()["relays"] == {"boiler": True}


def test_heartbeat_commands_are_delivered_once_in_order(server, fleet):
    dev = fleet.device()
    r = dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": 1, "seq": 1})
    assert r.status == 200
    assert r.json()["command"] == "none" and "command_id" not in r.json()
    assert r.json()["config_version"] == 1 and r.json()["desired_version"] == 0
    ids = []
    for cmd in ("resync", "reset"):
        r = server.op("POST", dev.op_path("commands"), json_body={"command": cmd})
        assert r.status == 202 and r.json()["command"] == cmd
        ids.append(r.json()["command_id"])
    assert server.op("GET", dev.op_path()).json()["pending_commands"] == 2
    got = []
    for seq in range(2, 5):
        b = dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": seq, "seq": seq}).json()
        got.append((b["command"], b.get("command_id")))
    assert got == [("resync", ids[0]), ("reset", ids[1]), ("none", None)]
    hb = server.op("GET", dev.op_path("heartbeats") + "?limit=10").json()["heartbeats"]
    assert [(h["seq"], h["command"]) for h in hb] == [(4, "none"), (3, "reset"),
                                                      (2, "resync"), (1, "none")]
    assert len(server.op("GET", dev.op_path("heartbeats") + "?limit=2").json()["heartbeats"]) == 2
    r = server.op("GET", dev.op_path("heartbeats") + "?limit=0")
    assert r.status == 400 and r.json()["field"] == "limit"
    r = server.op("POST", dev.op_path("commands"), json_body={"command": "explode"})
    assert r.status == 400 and r.json()["field"] == "command"


def test_heartbeat_carries_state_and_versions(server, fleet):
    dev = fleet.device()
    server.op("PUT", dev.op_path("desired-state"), json_body={"relays": {"fan": True}})
    r = dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": 5, "state": REPORTED})
    assert r.status == 200 and r.json()["desired_version"] == 1
    assert server.op("GET", dev.op_path()).json()["reported"] == REPORTED
    detail = server.op("GET", dev.op_path()).json()["device"]
    assert detail["last_heartbeat_at"] == r.json()["server_time"]
    r = dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": 5, "state": {"relays": {}}})
    assert r.status == 400 and r.json()["field"] == "state.uptime_s"
