"""The device (unix build) against the reference platform: registration, config hot reload,
invalid config, desired state."""

import time

from e2e_harness import base_config, wait_for


def reported(dev):
    return dev.cloud.get().get("reported")


def audit_records(dev, done, timeout=2):
    """The audit records, polled until done(records): lines are batched, on file within 500 ms."""
    deadline = time.monotonic() + timeout
    while True:
        recs = dev.records("audit")
        if done(recs) or time.monotonic() > deadline:
            return recs
        time.sleep(0.05)


def test_registration_state_and_heartbeats(platform, sim_device, ntp):
    dev = sim_device(platform)
    st = dev.wait_status(lambda s: s["registered"] and s["config_source"] == "platform",
                         "registered with the platform config")
    assert (st["tenant"], st["namespace"]) == (dev.cloud.tenant, dev.cloud.namespace)
    dev.wait_log("registered", tenant=dev.cloud.tenant, namespace=dev.cloud.namespace)
    info = wait_for(lambda: (lambda d: d if d["device"].get("last_heartbeat_at") and
                             d.get("reported") else None)(dev.cloud.get()), 10,
                    "heartbeat and state on the platform")
    assert info["device"]["registered_at"] > 0
    rep = info["reported"]
    assert rep["relays"] == {"r1": False, "r2": False}
    assert rep["firmware_version"] and rep["config_version"] == 1
    assert rep["counters"]["registrations"] == 1
    hb = wait_for(lambda: len(dev.cloud.heartbeats()) >= 2 and dev.cloud.heartbeats(), 10,
                  "two heartbeats")
    assert [h["seq"] for h in hb][:2] == sorted([h["seq"] for h in hb][:2], reverse=True)
    # the board comes up with every relay off in its own polarity: r2 is active-low
    assert dev.pins() == {2: 0, 3: 1}
    dev.wait_status(lambda s: "time" not in s["missing"], "time synchronised")


def test_config_change_is_hot_reloaded(platform, sim_device, ntp):
    dev = sim_device(platform, desired={"r1": True, "r2": True})
    dev.wait_status(lambda s: s["relays"] == {"r1": True, "r2": True}, "desired state applied")
    pid = dev.proc.pid
    # timing only: applied in place; then a new layout: r2 keeps its pin but flips polarity,
    # r3 is added, r1 moves to another pin
    cfg = base_config(ntp)
    cfg["relays"]["r1"]["min_interval_ms"] = 2000
    assert dev.cloud.push_config(cfg).status == 200
    dev.wait_status(lambda s: s["config_version"] == 2, "config version 2")
    dev.wait_log("relay timing updated in place")
    assert dev.status()["relays"] == {"r1": True, "r2": True}
    cfg = base_config(ntp, interlocks=[{"relays": ["r1", "r3"], "dead_ms": 100}])
    cfg["relays"] = {"r1": {"pin": 6}, "r2": {"pin": 3, "active_low": False}, "r3": {"pin": 7}}
    assert dev.cloud.push_config(cfg).status == 200
    st = dev.wait_status(lambda s: s["config_version"] == 3, "config version 3")
    # r2: same pin, other polarity: it starts off; r1 moved: off; the old pin 2 is released
    assert st["relays"] == {"r1": False, "r2": False, "r3": False}
    assert dev.pins() == {6: 0, 3: 0, 7: 0}
    assert dev.proc.pid == pid and dev.exits == [], "reloaded without a restart"
    dev.wait_log("relay bank rebuilt")
    recs = audit_records(dev, lambda rs: sum(r.get("source") == "reconfigure" for r in rs) >= 2)
    changes = [r for r in recs if r.get("source") == "reconfigure"]
    assert {(r["relay"], r["old"], r["new"]) for r in changes} == {("r1", True, False),
                                                                  ("r2", True, False)}
    wait_for(lambda: (reported(dev) or {}).get("config_version") == 3, 10,
             "config version 3 reported")


def test_invalid_config_rejected_with_alarm_and_old_kept(platform, sim_device, ntp):
    dev = sim_device(platform)
    dev.wait_status(lambda s: s["config_version"] == 1, "config version 1")
    bad = base_config(ntp, interlocks=[{"relays": ["r1", "ghost"], "dead_ms": 10}])
    r = dev.cloud.push_config(bad, force=True)  # the platform stores it, marked invalid
    assert r.status == 200 and r.json()["valid"] is False
    rec = dev.wait_log("config version 2 rejected: interlocks[0].relays[1]: unknown relay"
                       " 'ghost'; keeping version 1")
    assert rec[0]["lvl"] == "error"
    st = dev.status()
    assert st["config_version"] == 1 and st["relays"] == {"r1": False, "r2": False}
    alarms = wait_for(lambda: "config.invalid" in dev.cloud.alarms() and dev.cloud.alarms(), 15,
                      "config.invalid alarm on the platform")
    assert "unknown relay 'ghost'" in alarms["config.invalid"]["message"]
    # the rejected version is not fetched again and again: its ETag goes in If-None-Match
    n = len(dev.find("config version 2 rejected: interlocks[0].relays[1]: unknown relay 'ghost';"
                     " keeping version 1"))
    wait_for(lambda: dev.status()["counters"]["heartbeats_sent"] >= 5, 10, "more heartbeats")
    assert len(dev.find(rec[0]["msg"])) == n == 1
    # a second kind of invalid: a pin the Pico W cannot drive
    bad = base_config(ntp)
    bad["relays"]["r2"]["pin"] = 25
    dev.cloud.push_config(bad, force=True)
    dev.wait_log("config version 3 rejected: relays.r2.pin: 25 is not a usable Pico W GPIO;"
                 " keeping version 1")
    good = base_config(ntp, state_period_s=2)
    dev.cloud.push_config(good)
    dev.wait_status(lambda s: s["config_version"] == 4, "valid version 4 applied")
    assert dev.status()["counters"]["config_rejected"] == 2


def test_desired_state_applied(platform, sim_device, ntp):
    cfg = base_config(ntp)
    cfg["relays"]["r3"] = {"pin": 4}
    cfg["relays"]["r4"] = {"pin": 5}
    cfg["interlocks"] = [{"relays": ["r3", "r4"], "dead_ms": 300}]
    dev = sim_device(platform, config=cfg)
    dev.wait_status(lambda s: s["config_version"] == 1 and s["registered"], "registered")
    assert dev.cloud.set_desired({"r1": True, "r2": True, "r3": True}).status == 200
    st = dev.wait_status(lambda s: s["desired_version"] == 1, "desired version 1 applied")
    assert st["relays"] == {"r1": True, "r2": True, "r3": True, "r4": False}
    # physical levels: r2 is active-low, so on is a low pin
    assert dev.pins() == {2: 1, 3: 0, 4: 1, 5: 0}
    # a change-over inside an interlock: r3 off at once, r4 on after the dead time
    dev.cloud.set_desired({"r1": False, "r3": False, "r4": True})
    st = dev.wait_status(lambda s: s["desired_version"] == 2 and s["relays"]["r4"],
                         "change-over done")
    assert st["relays"] == {"r1": False, "r2": True, "r3": False, "r4": True}
    assert dev.pins() == {2: 0, 3: 0, 4: 0, 5: 1}
    recs = audit_records(dev, lambda rs: any((r["relay"], r["new"], r["source"]) ==
                                             ("r4", True, "core") for r in rs))
    audit = [(r["relay"], r["new"], r["source"]) for r in recs]
    assert ("r1", True, "desired") in audit and ("r4", True, "core") in audit
    # the deferred turn-on made by the core is reported too
    wait_for(lambda: (lambda r: r and r.get("desired_version") == 2 and
                      r["relays"] == st["relays"])(reported(dev)), 10,
             "desired version 2 and its relays reported")
    # unknown relays are named in an alarm; the known ones still apply
    dev.cloud.set_desired({"r1": True, "ghost": True}, force=True)
    dev.wait_status(lambda s: s["desired_version"] == 3 and s["relays"]["r1"], "version 3")
    wait_for(lambda: "state.unknown_relay" in dev.cloud.alarms(), 15, "unknown relay alarm")
