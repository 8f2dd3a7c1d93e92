# A day of a device's flash writes, on the unix build, with the power cut at one chosen point.
#   power_cut_device.py work DIR CUT   boot from DIR, then write: relay states, config, boot
#                                      record, logs and audit (with rotation), an OTA download,
#                                      staging, apply and confirm. CUT > 0 tears the CUT-th
#                                      mutating operation (iotlib.atomic_file.cut_at) and stops
#                                      there, as a power cut does; CUT = 0 runs to the end and
#                                      prints the trace of every mutating operation.
#   power_cut_device.py boot DIR       boot from DIR as after a power-on; print what was restored
# Output lines: "BEGIN <file> <json>" before a write that commits <json>, "ACK <file> <json>"
# once it is committed, "CUT" when the power went, "OPS <json list>" (CUT = 0), "BOOT <json>".
import json
import sys

from iotlib import atomic_file, logger
from relays_controller import RelaysController
from standins import FixedAuth, ListLog, ScriptedHTTP, run
from test_ota import IMAGE, OFFER_URL, PK, SCOPE, Platform
from iotlib.alarm_manager import AlarmManager
from iotlib.ota_update_manager import AppVersionFile, OTAUpdateManager

RELAYS = {"r%d" % i: i + 2 for i in range(4)}


def say(kind, name, value):
    print("%s %s %s" % (kind, name, json.dumps(value)))


def config(version):
    c = {"relays": {n: {"pin": p} for n, p in RELAYS.items()}, "restore_policy": "last",
         "log_file": {"max_bytes": 1500, "keep": 2}}
    c["log_level"] = "debug" if version % 2 else "info"
    return c


class Device:
    # the managers a power-on brings up, over the data folder
    def __init__(self, d):
        self.d = d
        self.ctl = RelaysController("ap", "wifi-secret", "dev-1", "k" * 32,
                                    "http://127.0.0.1:9/v1/devices/register", RELAYS,
                                    data_dir=d, simulate=True, log_echo=False, rest=False,
                                    persist_min_ms=0)
        logger.setup(path=d + "/log/device.log", audit_path=d + "/log/audit.log",
                     level="debug", echo=False, max_bytes=1500, keep=2)
        self.cfg = self.ctl.config.load_local()
        if self.cfg.get("restore_policy") != "last":  # the factory default: restore the last
            self.cfg = dict(self.cfg, restore_policy="last")
        self.ctl.config.config = self.cfg
        self.ctl.config.on_change(self.ctl._apply_config)
        self.ctl.relays.start(self.cfg)
        self.ctl._boot_record()
        self.app = AppVersionFile(d + "/app_version", default="1.0.0")
        self.platform = Platform()
        self.ota = OTAUpdateManager(
            self.app.read(), auth=FixedAuth(), offer_url=OFFER_URL,
            http=ScriptedHTTP(self.platform), logger=ListLog(), alarms=AlarmManager(url=None),
            state_dir=d + "/ota", apply_hook=self.app.apply, rollback_hook=self.app.rollback,
            release_keys=[PK], scope=SCOPE, max_boots=3, chunk_size=4096)
        self.ota_boot = self.ota.boot()

    def report(self):
        return {"relays": self.ctl.relays.states(), "config_version": self.ctl.config.version,
                "boots": self.ctl.boot.get("boots"), "app_version": self.app.read(),
                "ota_boot": self.ota_boot, "ota_bad": self.ota._load().get("bad") or []}


def work(dev):
    relays = dev.ctl.relays
    log = logger.get("work")
    for step in range(10):
        want = {n: bool((step * 2654435761 + i * 40503) >> 7 & 1) or (step + i) % 3 == 0
                for i, n in enumerate(sorted(RELAYS))}
        relays.write(want, source="test", subject="power-cut")
        states = relays.states()
        say("BEGIN", "relays", states)
        relays.flush()
        say("ACK", "relays", states)
        log.info("step done", step=step, states=states)
        if step % 4 == 1:
            v = dev.ctl.config.version + 1
            say("BEGIN", "config", v)
            assert dev.ctl.config._apply(config(v), v, "etag-%d" % v)
            say("ACK", "config", v)
    if dev.app.read() == "1.0.0":
        say("BEGIN", "app_version", "1.1.0")
        assert run(dev.ota.check()) == "applied"
        say("ACK", "app_version", "1.1.0")
    elif dev.ota.trial:
        dev.ota.confirm()
    log.warning("work done")


def main():
    mode, d = sys.argv[1], sys.argv[2]
    cut = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    if mode == "boot":
        print("BOOT " + json.dumps(Device(d).report()))
        return
    if cut:
        atomic_file.cut_at = cut
    else:
        atomic_file.trace = []
    try:
        dev = Device(d)
        say("ACK", "boots", dev.ctl.boot["boots"])
        work(dev)
        logger.root().flush()
    except atomic_file.PowerCut:
        print("CUT")
        sys.exit(3)
    if not cut:
        print("OPS " + json.dumps(atomic_file.trace))


main()
