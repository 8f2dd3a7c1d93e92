"""Bad input always gets a 4xx JSON answer naming the problem, and never takes the server down."""

import json
import socket

from platform_harness import MIN_CONFIG


def raw(server, method, path, body, content_type="application/json", token=None):
    return server.call(method, path, data=body, content_type=content_type, token=token)


def test_malformed_bodies(server, fleet):
    dev = fleet.device()
    dev.register()
    cases = [
        (b"{not json", 400, "invalid_json"),
        (b'{"uptime_s": 1, "uptime_s": 2}', 400, "invalid_json"),
        (b'{"uptime_s": NaN}', 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"", 400, "invalid_request"),
        (b"[]", 400, "invalid_request"),
        (b'"text"', 400, "invalid_request"),
        (b'{"uptime_s": 1.5}', 400, "invalid_request"),
        (b'{"uptime_s": true}', 400, "invalid_request"),
    ]
    for body, status, code in cases:
        r = raw(server, "POST", "/v1/heartbeat", body, token=dev.token)
        assert r.status == status and r.json()["error"] == code, (body, r)
        assert r.json()["message"]
    r = raw(server, "POST", "/v1/heartbeat", b'{"uptime_s": 1}', "text/plain", token=dev.token)
    assert r.status == 415 and r.json()["field"] == "Content-Type"
    r = raw(server, "POST", "/v1/heartbeat", b'{"uptime_s": 1}', "application/json; charset=utf-8",
            token=dev.token)
    assert r.status == 200


def test_oversized_body(server, fleet):
    dev = fleet.device()
    big = json.dumps(dict(MIN_CONFIG, padding="x" * 70000)).encode()
    r = raw(server, "PUT", dev.op_path("config"), big, token=__import__("platform_harness").OPERATOR_TOKEN)
    assert r.status == 413 and r.json()["error"] == "payload_too_large"


def test_unknown_fields_and_parameters(server, fleet):
    dev = fleet.device()
    r = dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": 1, "uptme": 2})
    assert r.status == 400 and r.json()["field"] == "uptme"
    assert "unknown field" in r.json()["message"]
    r = dev.call("GET", "/v1/config?verbose=1")
    assert r.status == 400 and r.json()["field"] == "verbose"
    r = server.op("GET", dev.op_path("alarms") + "?limit=5&limit=6")
    assert r.status == 400 and r.json()["field"] == "limit"
    r = server.op("GET", dev.op_path("alarms") + "?limit=many")
    assert r.status == 400 and "integer" in r.json()["message"]
    r = server.op("POST", "/v1/operator/tenants", json_body={"name": "ok-name", "owner": "x"})
    assert r.status == 400 and r.json()["field"] == "owner"


def test_unknown_routes_and_methods_are_json(server):
    for method, path, status in (("GET", "/nope", 404), ("GET", "/v1/config/", 404),
                                 ("GET", "/v2/config", 404), ("DELETE", "/v1/config", 405),
                                 ("GET", "/v1/heartbeat", 405), ("POST", "/v1/health", 405)):
        r = server.call(method, path)
        assert r.status == status, (method, path, r)
        assert r.json()["error"] in ("not_found", "method_not_allowed")
        assert path in r.json()["message"]


def test_server_still_healthy_after_abuse(server):
    # NUL bytes as JSON, then a request that is not HTTP at all; the server must keep serving
    r = raw(server, "POST", "/v1/devices/register", b"\x00" * 1000)
    assert r.status == 400 and r.json()["error"] == "invalid_json"
    host, port = server.url[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        s.settimeout(5)
        try:
            s.recv(1024)
        except (ConnectionError, socket.timeout):
            pass
    r = server.call("GET", "/v1/health")
    assert r.status == 200 and r.json()["status"] == "ok"
