# iotlib.network_manager with the simulated WLAN: join, loss, rejoin with backoff.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from check import eq, true
from iotlib import http_client, logger
from iotlib.network_manager import NetworkManager, SimWLAN, STAT_NO_AP_FOUND
from standins import rm_tree, scratch_dir
from virtual_time import VirtualTime

logger.setup(echo=False)


def ap(path, state):
    with open(path, "w") as f:
        f.write(state)


def test_sim_wlan_needs_connect_after_a_loss():
    d = scratch_dir("net")
    now = [1000]
    w = SimWLAN(d + "/wifi", ticks_ms=lambda: now[0])
    w.active(True)
    w.connect("ssid", "pw")
    true(not w.isconnected(), "associating")
    now[0] += SimWLAN.join_ms - 1
    true(not w.isconnected(), "still associating")
    now[0] += 1
    true(w.isconnected(), "joined after join_ms")
    ap(d + "/wifi", "down")
    true(not w.isconnected(), "AP gone")
    ap(d + "/wifi", "up")
    now[0] += SimWLAN.join_ms + 20
    true(not w.isconnected(), "no rejoin without connect()")
    ap(d + "/wifi", "down")
    w.connect("ssid", "pw")
    eq(w.status(), STAT_NO_AP_FOUND, "join fails while down")
    rm_tree(d)


def test_reconnects_and_counts():
    d = scratch_dir("net")
    vt = VirtualTime()
    w = SimWLAN(d + "/wifi", ticks_ms=vt.ticks_ms)
    n = NetworkManager("ssid", "secret-password", w, backoff_min_ms=50, backoff_max_ms=200,
                       check_ms=50, ticks_ms=vt.ticks_ms)
    changes = []
    n.on_change(changes.append)

    async def scenario():
        task = asyncio.create_task(n.run())
        await asyncio.wait_for_ms(n.wait_up(), 2000)
        ap(d + "/wifi", "down")
        await asyncio.sleep_ms(400)
        true(not n.up and n.drops == 1, "drop seen")
        true(n.attempts >= 3, "retries while down: %d" % n.attempts)
        true(http_client._link_check() is False, "requests fail fast while down")
        ap(d + "/wifi", "up")
        await asyncio.wait_for_ms(n.wait_up(), 2000)
        task.cancel()

    with vt:
        asyncio.run(scenario())
    eq(changes, [True, False, True], "listeners")
    eq((n.connects, n.reconnects), (2, 1), "counters")
    eq(n.health()["connected"], True, "health")
    http_client.set_link_check(None)
    rm_tree(d)


def test_backoff_grows_with_jitter_and_cap():
    n = NetworkManager("s", "password-x", SimWLAN("/nonexistent"), backoff_min_ms=100,
                       backoff_max_ms=1000)
    for k in range(8):
        d = min(100 << k, 1000)
        for _ in range(20):
            b = n._backoff(k)
            true(d // 2 <= b <= d, "backoff %d of step %d outside %d..%d" % (b, k, d // 2, d))
    http_client.set_link_check(None)
