"""Relays keep their state across a watchdog reset without a flash write: two relays switched on
over the device REST API, the platform commands a reset (the watchdog supervisor path: the
process exits 75 and is started again), and the Bank created at the next boot drives them on
from its creation, before the application restores anything. The relay state file is deleted
while the board is down, so nothing on flash can have carried the state. A normal stop and
start (the simulation's power cycle) boots cold: the relays come up per the file and policy."""

import glob
import os

from e2e_harness import RESET_EXIT_CODE, wait_for
from test_rest_e2e import api_config, call, mint, need_ntp, ready

STATE_FILE = "relays.json"


def relays_up(dev):
    return dev.find("relays up")


def test_watchdog_reset_keeps_relays_without_flash(platform, sim_device, ntp):
    need_ntp(ntp)
    dev = sim_device(platform, config=api_config(ntp, restore_policy="last"))
    ready(dev)
    first = relays_up(dev)  # a first boot: the default config, nothing kept
    assert len(first) == 1 and first[0]["policy"] != "kept", first
    assert first[0]["relays"] == {"r1": False, "r2": False}
    tok = mint(dev.cloud)   # the platform binds the subject to the minter
    for relay in ("r1", "r2"):
        r = call(dev, "POST", "/gpio/" + relay, tok, {"state": "HIGH"})
        assert r.status == 200, r
    dev.wait_status(lambda s: s["pins"].get("2") == 1 and s["pins"].get("3") == 0,
                    "r1 on (pin 2 high), r2 on (active low: pin 3 low)")

    dev.proc.restart_on_reset = False  # the test reboots it, once the state file is gone
    dev.cloud.command("reset")
    wait_for(lambda: RESET_EXIT_CODE in dev.exits, 15, "the reset exit")
    dev.wait_log("device reset by the watchdog supervisor", cause="cmd-reset")
    state_files = glob.glob(os.path.join(dev.data_dir, STATE_FILE + "*"))
    assert state_files, "the reset path persisted the states (the old way)"
    for f in state_files:
        os.remove(f)
    dev.start()
    up = wait_for(lambda: len(relays_up(dev)) == 2 and relays_up(dev), 15, "the second boot")
    # the Bank applied the kept state at its creation: the first thing the new boot logs of
    # the relays already has them on, before the boot record, the network or any restore
    assert up[1]["policy"] == "kept", up[1]
    assert up[1]["relays"] == {"r1": True, "r2": True}, up[1]
    recs = dev.records()
    second_up = [i for i, r in enumerate(recs) if r.get("msg") == "relays up"][1]
    second_boot = [i for i, r in enumerate(recs) if r.get("msg") == "boot"][1]
    assert second_up < second_boot
    st = dev.wait_status(lambda s: s["boot"]["boots"] == 2, "rebooted")
    assert st["relays"] == {"r1": True, "r2": True}
    assert dev.pins()[2] == 1 and dev.pins()[3] == 0
    # no relay moved across the reset: no audit line after the two switch-ons
    changes = [r for r in dev.records("audit") if r.get("relay") in ("r1", "r2")]
    assert [(r["relay"], r["new"]) for r in changes] == [("r1", True), ("r2", True)], changes
    # the scratch file is read once: a later power cycle must not find it
    assert not os.path.exists(os.path.join(dev.data_dir, "sim", "scratch.json"))

    # a power cycle (stop, start) keeps nothing in scratch: without a state file the relays
    # come up per on_at_boot (off), not as they were
    dev.wait_status(lambda s: s["relays"] == {"r1": True, "r2": True}, "still on")
    assert dev.stop() == 0
    for f in glob.glob(os.path.join(dev.data_dir, STATE_FILE + "*")):
        os.remove(f)
    dev.start()
    up = wait_for(lambda: len(relays_up(dev)) == 3 and relays_up(dev), 15, "the third boot")
    assert up[2]["policy"] == "last", up[2]
    assert up[2]["relays"] == {"r1": False, "r2": False}, up[2]
