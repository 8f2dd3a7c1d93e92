# Alarms end to end, in phases the driver paces with marker files:
#   1 online: repeated alarms merge, a task exception becomes an alarm, all delivered;
#   2 platform down: more alarms than the buffer holds, the oldest dropped and counted;
#   3 platform back: notify_online() (the network manager's reconnect hook) flushes all;
#   4 the proxy drops the answer to one delivered batch: the retry is not counted twice.
from scenario_common import asyncio, auth_for, log, mark, result, settings, wait_mark, wait_until
from iotlib.alarm_manager import AlarmManager


async def broken_task():
    await asyncio.sleep_ms(0)
    raise RuntimeError("relay worker crashed")


async def main():
    cfg = settings()
    auth = auth_for(cfg)
    alarms = AlarmManager(auth, url=lambda: auth.services.get("alarms"), logger=log("alarms"),
                          max_buffer=8, batch_size=5, coalesce_ms=50, retry_s=1, max_retry_s=2,
                          flush_period_s=3600, timeout_ms=3000)
    alarms.install_exception_handler(asyncio.get_event_loop())
    await auth.register()
    runner = asyncio.create_task(alarms.run())
    empty = lambda: not alarms.pending()

    for i in range(5):
        alarms.raise_alarm_nowait("sensor.flaky", "reading out of range (%d)" % i, "warning")
    alarms.raise_alarm_nowait("relay.fault", "relay2 did not switch")
    asyncio.create_task(broken_task())
    delivered = await wait_until(empty, 5000)
    result("online", delivered=delivered, **alarms.counters())
    mark(cfg, "phase1.done")

    await wait_mark(cfg, "platform.down")
    for i in range(12):
        alarms.raise_alarm_nowait("offline.k%02d" % i, "raised while the platform is down")
    for i in range(3):
        alarms.raise_alarm_nowait("sensor.flaky", "still out of range (%d)" % i, "warning")
    await wait_until(lambda: alarms.send_failures >= 2, 8000)
    result("offline", pending=alarms.pending(), **alarms.counters())
    mark(cfg, "phase2.done")

    await wait_mark(cfg, "platform.up")
    alarms.notify_online()
    delivered = await wait_until(empty, 10000)
    result("recovered", delivered=delivered, **alarms.counters())
    mark(cfg, "phase3.done")

    await wait_mark(cfg, "proxy.armed")
    alarms.raise_alarm_nowait("relay.stuck", "relay1 stuck on")
    alarms.raise_alarm_nowait("relay.stuck", "relay1 stuck on")
    delivered = await wait_until(empty, 10000)
    result("lost_answer", delivered=delivered, **alarms.counters())
    runner.cancel()


asyncio.run(main())
