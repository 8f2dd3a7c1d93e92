"""Everything survives a restart on the same database; seeds apply idempotently."""

import json
import os
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from platform_harness import OPERATOR_TOKEN, ROOT, Device, Fleet, register_body

sys.path.insert(0, os.path.join(ROOT, "tools"))
import release  # noqa: E402  (tools/release.py)


def test_state_survives_restart(fresh_server):
    srv = fresh_server()
    dev = Fleet(srv).device()
    reg_body = register_body(dev.device_id, dev.key)
    r = srv.call("POST", "/v1/devices/register", json_body=reg_body)
    dev.token = r.json()["token"]
    srv.op("PUT", dev.op_path("config"), json_body={"relays": {"pump": {"pin": 2}}})
    srv.op("PUT", dev.op_path("desired-state"), json_body={"relays": {"pump": True}})
    dev.call("POST", "/v1/alarms", json_body={"batch_id": "b1", "alarms": [
        {"dedup_key": "k", "severity": "error", "message": "m", "count": 3, "first_seen": 1,
         "last_seen": 2}]})
    dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": 9, "seq": 1})
    srv.op("POST", dev.op_path("commands"), json_body={"command": "resync"})
    state = {"relays": {"pump": True}, "uptime_s": 9, "firmware_version": "1.2.3"}
    dev.call("PUT", "/v1/state", json_body=state)
    release_key = Ed25519PrivateKey.generate()
    srv.op("POST", "/v1/operator/tenants/%s/release-keys" % dev.tenant,
           json_body={"public_key_hex": release.public_raw(release_key).hex()})
    rel = release.sign(release_key, release.release_manifest(b"image-bytes", "9.9.9", 1,
                                                             ["RPI_PICO_W"]))
    srv.op("POST", "/v1/operator/tenants/%s/namespaces/%s/ota?%s"
           % (dev.tenant, dev.namespace, release.upload_query(rel)), data=b"image-bytes",
           content_type="application/octet-stream")
    keys_before = srv.op("GET", "/v1/operator/tenants/%s/release-keys" % dev.tenant).json()
    offer_before = dev.call("GET", "/v1/ota").json()
    tenant_tok = srv.op("POST", "/v1/operator/tenants/%s/tokens" % dev.tenant).json()["token"]

    srv.restart()
    # the token issued before the restart is still good (the signing secret persisted)
    r = dev.call("GET", "/v1/config")
    assert r.status == 200 and r.json()["version"] == 2
    assert dev.call("GET", "/v1/config", headers={"If-None-Match": '"cfg-2"'}).status == 304
    assert dev.call("GET", "/v1/state/desired").json()["relays"] == {"pump": True}
    # the replayed registration is still refused
    r = srv.call("POST", "/v1/devices/register", json_body=reg_body)
    assert r.json()["error"] == "nonce_reused"
    # the queued command, the alarm batch id and counts, heartbeats and reported state
    assert dev.call("POST", "/v1/heartbeat", json_body={"uptime_s": 1}).json()["command"] == "resync"
    r = dev.call("POST", "/v1/alarms", json_body={"batch_id": "b1", "alarms": [
        {"dedup_key": "k", "severity": "error", "message": "m", "count": 3, "first_seen": 1,
         "last_seen": 2}]})
    assert r.json()["duplicate_batch"] is True
    assert srv.op("GET", dev.op_path("alarms")).json()["alarms"][0]["count"] == 3
    assert len(srv.op("GET", dev.op_path("heartbeats")).json()["heartbeats"]) == 2
    assert srv.op("GET", dev.op_path()).json()["reported"] == state
    # release keys and the release
    assert srv.op("GET", "/v1/operator/tenants/%s/release-keys" % dev.tenant).json() == keys_before
    offer = dev.call("GET", "/v1/ota").json()
    assert offer == offer_before and offer["signature"] == rel["signature"]
    assert dev.call("GET", offer["url"][len(srv.url):]).body == b"image-bytes"
    assert srv.call("GET", "/v1/operator/tenants", token=tenant_tok).status == 200


def test_seed_creates_a_ready_device_and_is_idempotent(fresh_server, tmp_path):
    with open(os.path.join(ROOT, "reference_platform", "seed.example.json")) as f:
        seed = json.load(f)
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    srv = fresh_server(["--seed", str(path)])
    d = seed["tenants"][0]["namespaces"][0]["devices"][0]
    dev = Device(srv, "demo", "lab", d["device_id"], d["device_key"])
    reg = dev.register()
    assert (reg["tenant"], reg["namespace"]) == ("demo", "lab")
    assert dev.call("GET", "/v1/config").json() == {"version": 1, "config": d["config"]}
    srv.restart()
    assert dev.call("GET", "/v1/config").json()["version"] == 1
    # an edited seed pushes a new version on the next start
    d["config"]["log_level"] = "debug"
    path.write_text(json.dumps(seed))
    srv.restart()
    assert dev.call("GET", "/v1/config").json()["version"] == 2


def _run_cli(args, tmp_path, timeout=20):
    return subprocess.run([sys.executable, "-m", "reference_platform", "--port", "0",
                           "--db", str(tmp_path / "cli.sqlite")] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_refuses_bad_start_loudly(tmp_path):
    r = _run_cli([], tmp_path)
    assert r.returncode == 2 and "--operator-token" in r.stderr
    r = _run_cli(["--operator-token", "short"], tmp_path)
    assert r.returncode == 2 and "at least 16" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tenants": [{"name": "t", "namespaces": [{"name": "n", "devices": [
        {"device_id": "d1", "device_key": "k" * 16, "config": {"relays": {"r": {"pin": 99}}}}]}]}]}))
    r = _run_cli(["--operator-token", OPERATOR_TOKEN, "--seed", str(bad)], tmp_path)
    assert r.returncode == 2 and "relays.r.pin" in r.stderr
    bad.write_text(json.dumps({"tenants": [], "extra": 1}))
    r = _run_cli(["--operator-token", OPERATOR_TOKEN, "--seed", str(bad)], tmp_path)
    assert r.returncode == 2 and "extra" in r.stderr
    bad.write_text("{not json")
    r = _run_cli(["--operator-token", OPERATOR_TOKEN, "--seed", str(bad)], tmp_path)
    assert r.returncode == 2 and "cannot read seed" in r.stderr


def test_cli_reports_a_busy_port(fresh_server, tmp_path):
    srv = fresh_server()
    port = srv.url.rsplit(":", 1)[1]
    r = subprocess.run([sys.executable, "-m", "reference_platform", "--port", port,
                        "--db", str(tmp_path / "other.sqlite"), "--operator-token",
                        OPERATOR_TOKEN], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "cannot listen on 127.0.0.1:%s" % port in r.stderr
