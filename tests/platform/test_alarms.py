"""Alarms: merge by dedup key, retried batches not counted twice, bad reports refused."""


def alarm(key, count=1, first=1000, last=1000, severity="warning", message="m"):
    return {"dedup_key": key, "severity": severity, "message": message, "count": count,
            "first_seen": first, "last_seen": last}


def test_alarms_merge_by_dedup_key(server, fleet):
    dev = fleet.device()
    r = dev.call("POST", "/v1/alarms", json_body={"alarms": [
        alarm("wifi.lost", 3, 100, 200, message="wifi lost"),
        alarm("ntp.fail", 1, 150, 150, severity="error")]})
    assert r.status == 200
    assert r.json() == {"accepted": 2, "created": 2, "merged": 0, "duplicate_batch": False}
    # later report: counts add, window widens, newest message/severity win
    r = dev.call("POST", "/v1/alarms", json_body={"alarms": [
        alarm("wifi.lost", 2, 50, 300, severity="critical", message="wifi lost again"),
        alarm("ntp.fail", 4, 160, 160, message="newer text")]})
    assert r.json() == {"accepted": 2, "created": 0, "merged": 2, "duplicate_batch": False}
    # an older report merged late keeps the newer text
    r = dev.call("POST", "/v1/alarms", json_body={"alarms": [
        alarm("wifi.lost", 1, 60, 70, severity="info", message="stale")]})
    got = {a["dedup_key"]: a for a in
           server.op("GET", dev.op_path("alarms")).json()["alarms"]}
    w = got["wifi.lost"]
    assert (w["count"], w["first_seen"], w["last_seen"]) == (6, 50, 300)
    assert (w["severity"], w["message"]) == ("critical", "wifi lost again")
    n = got["ntp.fail"]
    assert (n["count"], n["first_seen"], n["last_seen"]) == (5, 150, 160)
    assert n["message"] == "newer text"
    listed = server.op("GET", dev.op_path("alarms")).json()["alarms"]
    assert [a["dedup_key"] for a in listed] == ["wifi.lost", "ntp.fail"]


def test_retried_batch_is_not_counted_twice(server, fleet):
    dev = fleet.device()
    batch = {"batch_id": "boot1-0001", "alarms": [alarm("exc.ValueError", 2)]}
    assert dev.call("POST", "/v1/alarms", json_body=batch).json()["created"] == 1
    r = dev.call("POST", "/v1/alarms", json_body=batch)
    assert r.json() == {"accepted": 1, "created": 0, "merged": 0, "duplicate_batch": True}
    assert server.op("GET", dev.op_path("alarms")).json()["alarms"][0]["count"] == 2
    batch["batch_id"] = "boot1-0002"
    assert dev.call("POST", "/v1/alarms", json_body=batch).json()["merged"] == 1
    assert server.op("GET", dev.op_path("alarms")).json()["alarms"][0]["count"] == 4


def test_alarms_are_per_device(server, fleet):
    a = fleet.device()
    b = fleet.device(tenant=a.tenant, namespace=a.namespace)
    a.call("POST", "/v1/alarms", json_body={"alarms": [alarm("same.key", 5)]})
    b.call("POST", "/v1/alarms", json_body={"alarms": [alarm("same.key", 1)]})
    assert server.op("GET", a.op_path("alarms")).json()["alarms"][0]["count"] == 5
    assert server.op("GET", b.op_path("alarms")).json()["alarms"][0]["count"] == 1


def test_bad_alarm_reports(server, fleet):
    dev = fleet.device()
    cases = [({"alarms": []}, "alarms"),
             ({"alarms": [alarm("k")] * 101}, "alarms"),
             ({"alarms": [dict(alarm("k"), count=0)]}, "alarms[0].count"),
             ({"alarms": [dict(alarm("k"), severity="bad")]}, "alarms[0].severity"),
             ({"alarms": [dict(alarm("k"), extra=True)]}, "alarms[0].extra"),
             ({"alarms": [alarm("k", first=10, last=5)]}, "alarms[0].last_seen"),
             ({"alarms": [alarm("")]}, "alarms[0].dedup_key"),
             ({"alarms": [alarm("k")], "batch_id": "has space"}, "batch_id")]
    for body, field in cases:
        r = dev.call("POST", "/v1/alarms", json_body=body)
        assert r.status == 400 and r.json()["field"] == field, (field, r)
    assert server.op("GET", dev.op_path("alarms")).json()["alarms"] == []
