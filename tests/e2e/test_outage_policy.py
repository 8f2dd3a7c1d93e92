"""Outages never reset the relays, end to end (device: the unix build running python/main.py;
platform: the reference platform process, both on 127.0.0.1).

- A platform outage far longer than heartbeat_max_missed periods: the device keeps running
  (no reset exit), keeps the relay switched on over REST, /ready answers 503 naming "platform",
  and the alarm platform.unreachable reaches the platform once after it returns, with its clear.
- A stuck local stack (the simulated WLAN keeps the link up but refuses every socket): the
  device resets for it, with the configured backoff between resets and no more than
  max_per_hour of them; the relay stays on through every reset."""

import json
import os
import secrets
import time

import yaml
from jsonschema import Draft202012Validator

from e2e_harness import RESET_EXIT_CODE, ROOT, base_config, sim, wait_for

ISSUER = "https://platform.e2e/outage"


def api_config(ntp, **over):
    cfg = base_config(ntp, **over)
    cfg["api"] = {"jwt": {"key": secrets.token_hex(32), "issuer": ISSUER,
                          "audience": "e2e-devices"}}
    return cfg


def call(dev, method, path, token=None, body=None):
    return sim.http(method, dev.rest_url + path, body, token=token)


def relay_on_over_rest(dev):
    dev.wait_status(lambda s: s["ready"] and s["config_version"] >= 1,
                    "registered, config from the platform and time synced")
    token = dev.cloud.mint_api_token()["token"]
    r = wait_for(lambda: _post_on(dev, token), 15, "POST /gpio/r1 answered")
    assert r.status == 200 and r.json()["state"] == "HIGH", r
    dev.wait_status(lambda s: s["relays"]["r1"] and s["pins"]["2"] == 1, "r1 on, pin high")


def _post_on(dev, token):
    try:
        return call(dev, "POST", "/gpio/r1", token, {"state": "HIGH"})
    except OSError:
        return None


def documented_not_ready():
    # the /ready 503 body as docs/device_api.openapi.yaml describes it
    with open(os.path.join(ROOT, "docs", "device_api.openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    return Draft202012Validator(doc["components"]["schemas"]["NotReady"])


def boot_record(dev):
    with open(os.path.join(dev.data_dir, "boot.json")) as f:
        return json.load(f)


def test_platform_outage_keeps_the_device_and_its_relay(own_platform, sim_device, ntp):
    assert ntp, "the NTP responder is needed: REST tokens wait for a synced clock"
    p = own_platform()
    # no restore_policy: the default ("last") applies
    dev = sim_device(p, config=api_config(ntp, heartbeat_max_missed=2))
    relay_on_over_rest(dev)
    dev.wait_status(lambda s: s["heartbeats_answered"] >= 1, "heartbeats answered")
    pid = dev.proc.pid
    p.stop()
    t0 = time.monotonic()
    # 5 times heartbeat_max_missed periods (1 s each) without the platform
    st = dev.wait_status(lambda s: s["missed"] >= 10, "ten heartbeats missed", timeout=30)
    down_s = time.monotonic() - t0
    assert st["platform_outage"] and st["relays"]["r1"] and st["pins"]["2"] == 1, st
    assert dev.exits == [] and dev.proc.running and dev.proc.pid == pid, "no reset"
    assert st["boot"]["boots"] == 1 and st["counters"]["resets"] == 0, st["boot"]
    r = call(dev, "GET", "/ready")
    assert r.status == 503, r
    assert r.json()["error"] == "not_ready" and r.json()["missing"] == ["platform"], r.json()
    assert "platform" in r.json()["message"]
    documented_not_ready().validate(r.json())
    assert call(dev, "GET", "/health").status == 200, "the local API keeps serving"
    assert len(dev.find("platform unreachable")) == 1, "one outage, logged once"
    p.start()
    dev.wait_status(lambda s: s["missed"] == 0 and not s["platform_outage"], "platform back")
    wait_for(lambda: call(dev, "GET", "/ready").status == 200, 10, "ready again")
    alarms = wait_for(lambda: "platform.reachable" in dev.cloud.alarms() and dev.cloud.alarms(),
                      20, "the outage alarm and its clear delivered")
    assert alarms["platform.unreachable"]["count"] == 1, alarms["platform.unreachable"]
    assert alarms["platform.unreachable"]["severity"] == "error"
    assert alarms["platform.reachable"]["count"] == 1
    # the buffer is empty once both are delivered: nothing more can arrive for this outage
    dev.wait_status(lambda s: s["counters"]["alarms_buffered"] == 0, "alarm buffer drained")
    assert dev.cloud.alarms()["platform.unreachable"]["count"] == 1, "delivered once"
    st = dev.status()
    assert st["relays"]["r1"] and dev.exits == [] and st["boot"]["boots"] == 1
    print("\n[outage] platform down %.1f s (%d heartbeat periods, heartbeat_max_missed 2): "
          "%d resets, relay r1 %s, /ready missing %s" % (
              down_s, st["counters"]["heartbeats_missed"], len(dev.exits),
              "kept on" if st["relays"]["r1"] else "LOST", r.json()["missing"]))


def test_stuck_stack_resets_with_backoff_and_hourly_cap(platform, sim_device, ntp):
    cfg = base_config(ntp, watchdog={"stuck_reset": {"after_missed": 2, "backoff_s": 2,
                                                      "max_per_hour": 3}})
    dev = sim_device(platform, config=cfg, desired={"r1": True})
    dev.wait_status(lambda s: s["desired_version"] == 1 and s["relays"]["r1"] and
                    s["heartbeats_answered"] >= 1, "running, r1 on")
    with open(os.path.join(dev.data_dir, "sim", "wifi"), "w") as f:
        f.write("stuck")  # the link stays up; every new socket fails with ENOMEM
    wait_for(lambda: dev.exits.count(RESET_EXIT_CODE) >= 3, 40, "three stuck-stack resets")
    # the fourth boot: the cap holds past the next backoff (8 s); heartbeats keep failing
    st = dev.wait_status(lambda s: s["boot"]["boots"] == 4 and
                         s["counters"]["heartbeats_missed"] >= 12, "fourth boot, 12 misses",
                         timeout=40)
    assert dev.exits == [RESET_EXIT_CODE] * 3, dev.exits
    assert st["boot"]["last_reset_cause"] == "stack-stuck" and st["boot"]["resets"] == 3
    assert st["relays"]["r1"] and st["pins"]["2"] == 1, "r1 on through every reset"
    assert st["stuck_withheld"] >= 10, st
    rec = boot_record(dev)["stuck_reset"]
    at = rec["at"]
    assert len(at) == 3 and rec["streak"] == 3, rec
    gaps = [b - a for a, b in zip(at, at[1:])]
    assert gaps[0] >= 2 and gaps[1] >= 4, "backoff 2 s, then 4 s: %r" % gaps
    withheld = dev.find("stuck stack: reset withheld")
    assert any("max_per_hour 3" in w["reason"] for w in withheld), withheld
    resets = dev.find("stuck stack: resetting")
    assert len(resets) == 3 and all("ENOMEM" in r["probe"] for r in resets), resets
    # the stack recovers: heartbeats answered, the streak ends, the device stays up
    with open(os.path.join(dev.data_dir, "sim", "wifi"), "w") as f:
        f.write("up")
    dev.wait_status(lambda s: s["missed"] == 0 and s["heartbeats_answered"] >= 1, "answered")
    wait_for(lambda: boot_record(dev)["stuck_reset"]["streak"] == 0, 10, "streak cleared")
    alarms = wait_for(lambda: "reset.stack-stuck" in dev.cloud.alarms() and
                      "watchdog.stuck_withheld" in dev.cloud.alarms() and dev.cloud.alarms(),
                      20, "the reset and cap alarms delivered")
    assert alarms["reset.stack-stuck"]["severity"] == "critical"
    assert dev.exits == [RESET_EXIT_CODE] * 3
    print("\n[stuck stack] resets: %d (cap 3 per hour), device seconds between them: %r "
          "(backoff 2 s doubling), reset withheld %d times, r1 kept on" % (
              len(dev.exits), gaps, st["stuck_withheld"]))
