# Time sync end to end: register, take ntp_servers from the platform's config, sync
# against the local NTP responder, report the offset the device now applies.
import time

from scenario_common import asyncio, auth_for, log, result, settings
from iotlib.time_sync_manager import TimeSyncManager


async def main():
    cfg = settings()
    auth = auth_for(cfg)
    await auth.register()
    r = await auth.request("GET", "config")
    doc = r.json()
    tsm = TimeSyncManager(logger=log("time"), timeout_ms=500, set_rtc=False)
    tsm.configure(doc["config"])
    before = tsm.now_ms() - time.time_ns() // 1000000
    ok = await tsm.sync()
    result("timesync", synced=ok, ready=tsm.synced, offset_ms=tsm.last_offset_ms,
           delay_ms=tsm.last_delay_ms, server=tsm.last_server, failures=tsm.failures,
           before_ms=before, applied_ms=tsm.now_ms() - time.time_ns() // 1000000,
           now=tsm.now(), servers=doc["config"]["ntp_servers"])


asyncio.run(main())
