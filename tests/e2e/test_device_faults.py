"""Faults end to end: the platform down at boot, WiFi dropping (briefly, and for longer than
heartbeat_max_missed periods: never a reset), platform commands, JWT expiry and a lost signing
secret, a device key rotated on the fly, and every secret kept out of every log line.
The platform outage and the stuck-stack reset are in test_outage_policy.py."""

import hashlib
import hmac
import json
import os
import re
import sqlite3
import time

import simulation as sim
from e2e_harness import RESET_EXIT_CODE, base_config, wait_for
from reference_platform.security import sign_hs256


def test_platform_down_at_boot_uses_persisted_config(own_platform, sim_device, ntp):
    p = own_platform()
    cfg = base_config(ntp, restore_policy="last")
    cfg["relays"]["r3"] = {"pin": 9, "active_low": True}
    dev = sim_device(p, config=cfg, desired={"r1": True, "r3": True})
    dev.wait_status(lambda s: s["config_version"] == 1 and s["desired_version"] == 1,
                    "config and desired state from the platform")
    time.sleep(1.2)  # one coalescing period: the relay states reach flash
    assert dev.stop() == 0
    p.stop()
    dev.start()
    st = dev.wait_status(lambda s: s["boot"]["boots"] == 2, "second boot")
    # no platform: the persisted config (not the constructor's two relays) and the last states
    assert st["config_source"] == "persisted" and st["config_version"] == 1
    assert st["relays"] == {"r1": True, "r2": False, "r3": True}
    assert dev.pins() == {2: 1, 3: 1, 9: 0}
    dev.wait_log("platform unreachable at boot (POST %s/v1/devices/register: "
                 "ECONNREFUSED); running on the persisted config version 1" % p.url)
    p.start()
    dev.wait_status(lambda s: s["registered"] and s["config_source"] == "platform",
                    "registered after the platform came back")
    alarms = wait_for(lambda: "config.fallback" in dev.cloud.alarms() and dev.cloud.alarms(), 20,
                      "the buffered alarm delivered")
    assert alarms["config.fallback"]["count"] == 1
    assert dev.status()["relays"] == {"r1": True, "r2": False, "r3": True}


def test_wifi_drop_and_return(platform, sim_device):
    dev = sim_device(platform)
    dev.wait_status(lambda s: s["registered"] and s["counters"]["heartbeats_sent"] >= 1,
                    "registered and beating")
    dev.wifi(False)
    dev.wait_status(lambda s: not s["wifi"], "link down seen", timeout=5)
    dev.wait_log("WiFi link lost")
    n = len(dev.cloud.heartbeats())
    time.sleep(2.5)
    st = dev.status()
    assert not st["wifi"] and st["missed"] >= 2, st
    assert len(dev.cloud.heartbeats()) == n, "no heartbeat without a link"
    assert dev.find("heartbeat missed") and "no network link" in dev.find("heartbeat missed")[-1][
        "error"]
    assert dev.find("WiFi join failed", error="no access point"), "rejoin attempts while down"
    dev.wifi(True)
    st = dev.wait_status(lambda s: s["wifi"] and s["missed"] == 0, "link back, heartbeats answered",
                         timeout=15)
    assert st["counters"]["reconnects"] == 1 and st["counters"]["wifi_drops"] == 1
    wait_for(lambda: len(dev.cloud.heartbeats()) > n, 5, "heartbeats on the platform again")
    assert dev.exits == [], "no reset: the drop was shorter than heartbeat_max_missed"


def test_long_wifi_outage_keeps_the_board_and_its_relays(own_platform, sim_device, ntp):
    p = own_platform()
    # no restore_policy: the default ("last")
    dev = sim_device(p, config=base_config(ntp, heartbeat_max_missed=2), desired={"r2": True})
    dev.wait_status(lambda s: s["desired_version"] == 1 and s["heartbeats_answered"] >= 1,
                    "running")
    dev.wifi(False)
    # four times heartbeat_max_missed periods without a link: once a reset, now none
    st = dev.wait_status(lambda s: not s["wifi"] and s["missed"] >= 8, "eight misses, link down",
                         timeout=30)
    assert st["platform_outage"] and "platform" in st["missing"], st
    assert st["relays"]["r2"] is True and dev.pins()[3] == 0, "r2 (active low) kept on"
    assert dev.exits == [] and st["boot"]["boots"] == 1 and st["stuck"] == 0, st
    assert dev.find("platform unreachable") and not dev.find("stuck stack: resetting")
    dev.wifi(True)
    st = dev.wait_status(lambda s: s["wifi"] and s["missed"] == 0 and not s["platform_outage"],
                         "link back, heartbeats answered", timeout=20)
    assert st["relays"]["r2"] is True and dev.exits == []
    alarms = wait_for(lambda: "platform.reachable" in dev.cloud.alarms() and dev.cloud.alarms(),
                      20, "the outage alarm and its clear delivered")
    assert alarms["platform.unreachable"]["count"] == 1


def test_platform_commands_reset_and_resync(platform, sim_device):
    dev = sim_device(platform, desired={"r1": True})
    dev.wait_status(lambda s: s["desired_version"] == 1 and s["relays"]["r1"], "running")
    dev.cloud.command("resync")
    dev.wait_log("platform command", command="resync")
    dev.cloud.command("reset")
    wait_for(lambda: RESET_EXIT_CODE in dev.exits, 10, "reset by command")
    dev.wait_log("device reset by the watchdog supervisor", cause="cmd-reset")
    st = dev.wait_status(lambda s: s["boot"]["boots"] == 2 and s["registered"], "rebooted")
    assert st["boot"]["last_reset_cause"] == "cmd-reset"
    hb = dev.cloud.heartbeats()
    assert [h["command"] for h in hb].count("reset") == 1, "delivered once"


def _jwt_secret(db):
    con = sqlite3.connect(db)
    try:
        return bytes(con.execute("SELECT value FROM meta WHERE key='jwt_secret'").fetchone()[0])
    finally:
        con.close()


def _issued_tokens(secret, device_id, tenant, namespace, t0, t1, ttl):
    """Every JWT the platform can have issued to this device between t0 and t1."""
    out = []
    for iat in range(int(t0) - 1, int(t1) + 2):
        claims = {"sub": device_id, "tenant": tenant, "namespace": namespace, "role": "device",
                  "iss": "relays-reference-platform", "aud": "relays-device", "iat": iat,
                  "exp": iat + ttl}
        out.append(sign_hs256(secret, claims))
    return out


def test_jwt_refresh_401_key_rotation_and_log_masking(own_platform, sim_device, tmp_path):
    p = own_platform(["--token-ttl", "5"])
    t0 = time.time()
    dev = sim_device(p)
    dev.wait_status(lambda s: s["registered"], "registered")
    # 5 s tokens renewed at 80% of their life: several registrations, no heartbeat lost
    st = dev.wait_status(lambda s: s["counters"]["registrations"] >= 3, "token renewals",
                         timeout=15)
    assert st["counters"]["heartbeats_missed"] == 0, st["counters"]
    # the platform loses its signing secret: every token it gave is now invalid (401)
    p.stop()
    jwt_secrets = [_jwt_secret(p.db)]
    con = sqlite3.connect(p.db)
    with con:
        con.execute("DELETE FROM meta WHERE key='jwt_secret'")
    con.close()
    regs = dev.status()["counters"]["registrations"]
    p.start()
    dev.wait_log("token dropped", reason="invalid_token", timeout=15)
    dev.wait_status(lambda s: s["counters"]["registrations"] > regs and s["missed"] == 0,
                    "registered again after the 401")
    # a new device key: set on the platform (a seed re-applied), written to the device's key file
    new_key = "rotated-" + os.urandom(12).hex()
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"tenants": [{"name": dev.cloud.tenant, "namespaces": [
        {"name": dev.cloud.namespace, "devices": [
            {"device_id": dev.cloud.device_id, "device_key": new_key}]}]}]}))
    p.stop()
    p.start(["--token-ttl", "5", "--seed", str(seed)])
    with open(os.path.join(dev.data_dir, "device_key"), "w") as f:
        f.write(new_key + "\n")
    dev.wait_log("device key reloaded from file", timeout=10)
    regs = dev.status()["counters"]["registrations"]
    dev.wait_status(lambda s: s["counters"]["registrations"] > regs and s["registered"],
                    "registered with the new key", timeout=15)
    assert dev.exits == []
    t1 = time.time()
    dev.stop()
    # every line of every log (rotated files, audit, stdout) against every secret
    jwt_secrets.append(_jwt_secret(p.db))
    tokens = []
    for sec in jwt_secrets:
        tokens += _issued_tokens(sec, dev.cloud.device_id, dev.cloud.tenant,
                                 dev.cloud.namespace, t0, t1, 5)
    secrets_ = dev.secrets() + [new_key] + tokens + [t.rsplit(".", 1)[1] for t in tokens]
    lines = dev.raw_lines()
    assert len(lines) > 100
    assert any('"Authorization": "***"' in line for _, line in lines), "requests were logged"
    leaks = [(path, s[:12]) for path, line in lines for s in secrets_ if s in line]
    print("\n[masking] %d lines in %d files scanned for %d secrets (device keys, WiFi password,"
          " operator token, %d candidate JWTs and their signatures): %d leaks"
          % (len(lines), len(dev.log_files()), len(secrets_), len(tokens), len(leaks)))
    assert leaks == []
    jwt_like = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
    assert [line for _, line in lines if jwt_like.search(line)] == []
    # the device did log its register answers (debug level), with the token masked
    assert any("***" in line for _, line in lines if "register answer" in line)
    # the token reconstruction above is the platform's own: a token it issues now is among them
    ts = int(time.time())
    nonce = os.urandom(8).hex()
    proof = hmac.new(new_key.encode(), ("%s|%d|%s" % (dev.cloud.device_id, ts, nonce)).encode(),
                     hashlib.sha256).hexdigest()
    r = sim.http("POST", p.url + "/v1/devices/register", {
        "device_id": dev.cloud.device_id, "timestamp": ts, "nonce": nonce, "proof": proof})
    assert r.status == 200, r
    assert r.json()["token"] in _issued_tokens(jwt_secrets[-1], dev.cloud.device_id,
                                               dev.cloud.tenant, dev.cloud.namespace,
                                               r.json()["server_time"], r.json()["server_time"], 5)
