# One boot of a device with OTA: count the trial or roll back, confirm when healthy
# (registered with the platform), check the offer, and deliver the alarms. The "app"
# is a version file swapped by the simulation hooks; a reset ends the process.
# mode "crash": the new version dies early in every boot, before it can confirm.
import sys

from scenario_common import RESET_EXIT, asyncio, auth_for, log, result, settings
from iotlib.alarm_manager import AlarmManager
from iotlib.ota_update_manager import AppVersionFile, OTAUpdateManager, load_public_keys


def reset():
    print("RESULT {\"event\": \"reset\"}")
    sys.exit(RESET_EXIT)


async def main():
    cfg = settings()
    app = AppVersionFile(cfg["state_dir"] + "/app_version", default="1.0.0")
    auth = auth_for(cfg)
    alarms = AlarmManager(auth, url=lambda: auth.services.get("alarms"), logger=log("alarms"))
    ota = OTAUpdateManager(app.read(), load_public_keys(cfg["public_key_file"]), auth=auth,
                           offer_url=lambda: auth.services.get("ota"), logger=log("ota"),
                           alarms=alarms, state_dir=cfg["state_dir"] + "/ota",
                           apply_hook=app.apply, rollback_hook=app.rollback, reset=reset,
                           max_boots=2, chunk_size=4096, platform_url=cfg["platform_url"],
                           scope=lambda: (auth.tenant, auth.namespace))
    boot = ota.boot()
    if cfg["mode"] == "crash" and ota.trial:
        result("boot", boot=boot, version=ota.version)
        sys.exit(1)
    await auth.register()
    if ota.trial:
        ota.confirm()  # registered and configured: healthy enough here
    outcome = await ota.check()
    flushed = await alarms.flush()
    result("boot", boot=boot, version=ota.version, check=outcome, flushed=flushed,
           verify_ms=ota.verify_ms, alarms=alarms.counters(), app_version=app.read(),
           floor=ota.counter_floor())
    if outcome == "applied":
        reset()


asyncio.run(main())
