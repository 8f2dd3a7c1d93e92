# NetworkManager over its link backends: PPPLink (network.PPP) driven through a stand-in for the
# network.PPP object (the outside world), with the same connect/back-off/reconnect logic as WiFi.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

import time

from check import eq, raises, true
from iotlib import http_client, logger
from iotlib.network_manager import (NetworkManager, PPPLink, STAT_CONNECT_FAIL, STAT_CONNECTING,
                                    STAT_GOT_IP, STAT_IDLE, board_link)
from virtual_time import VirtualTime

logger.setup(echo=False)


class FakePPP:
    # network.PPP as MicroPython 1.25 has it: status() 0 inactive, 1 active, 3 connecting,
    # 4 connected, negative an lwIP error. The "peer" decides how long IPCP takes, or hangs up.
    def __init__(self, ticks_ms, up_after_ms=200):
        self.ticks_ms = ticks_ms
        self.up_after_ms = up_after_ms
        self.state = 0
        self.since = None
        self.connects = 0
        self.peer = "up"  # "up", "dead" (no answer), "hangup" (the link fails)

    def connect(self):
        if self.state in (3, 4):
            raise OSError(114)  # EALREADY, as the firmware
        self.connects += 1
        self.state = 3
        self.since = self.ticks_ms()

    def disconnect(self):
        if self.state in (3, 4):
            self.state = 1

    def status(self):
        if self.peer == "hangup" and self.state in (3, 4):
            self.state = -5  # PPPERR_CONNECT
        if self.state == 3 and self.peer == "up" and \
                time.ticks_diff(self.ticks_ms(), self.since) >= self.up_after_ms:
            self.state = 4
        return self.state

    def isconnected(self):
        return self.status() == 4

    def ifconfig(self):
        return ("10.0.2.15", "255.255.255.255", "10.0.2.2", "10.0.2.3")


def test_ppp_link_maps_ppp_states():
    now = [0]
    p = FakePPP(lambda: now[0])
    link = PPPLink(p)
    raises(OSError, "PPP not active", link.connect)
    eq(link.status(), STAT_IDLE, "inactive")
    link.active(True)
    link.connect("ignored", "ignored")
    eq(link.status(), STAT_CONNECTING, "LCP/IPCP running")
    now[0] = 200
    eq(link.status(), STAT_GOT_IP, "IPCP done")
    true(link.isconnected(), "connected")
    eq(link.ifconfig()[0], "10.0.2.15", "address from IPCP")
    eq(link.config("ssid"), "ppp", "names itself")
    p.peer = "hangup"
    eq(link.status(), STAT_CONNECT_FAIL, "a failed link reads as a failed join")
    link.disconnect()


def test_manager_brings_ppp_up_and_reconnects_after_hangup():
    vt = VirtualTime()
    p = FakePPP(vt.ticks_ms)
    n = NetworkManager("ppp", "unused-password", PPPLink(p), backoff_min_ms=100,
                       backoff_max_ms=400, check_ms=50, ticks_ms=vt.ticks_ms)
    changes = []
    n.on_change(changes.append)

    async def scenario():
        task = asyncio.create_task(n.run())
        await asyncio.wait_for_ms(n.wait_up(), 2000)
        eq(n.health()["ip"], "10.0.2.15", "address reported")
        p.peer = "hangup"
        await asyncio.sleep_ms(300)
        true(not n.up and n.drops == 1, "hang-up seen as a drop")
        true(n.attempts >= 2, "joins retried: %d" % n.attempts)
        p.peer = "up"
        await asyncio.wait_for_ms(n.wait_up(), 3000)
        task.cancel()

    with vt:
        asyncio.run(scenario())
    http_client.set_link_check(None)
    eq(changes, [True, False, True], "link changes")
    eq(n.reconnects, 1, "one reconnect")
    true(p.connects >= 3, "connect() called again after the failure")


def test_manager_times_out_a_silent_peer_and_backs_off():
    vt = VirtualTime()
    p = FakePPP(vt.ticks_ms)
    p.peer = "dead"
    n = NetworkManager("ppp", "unused-password", PPPLink(p), connect_timeout_ms=500,
                       backoff_min_ms=100, backoff_max_ms=200, check_ms=50, ticks_ms=vt.ticks_ms)

    async def scenario():
        task = asyncio.create_task(n.run())
        await asyncio.sleep_ms(1500)
        task.cancel()

    with vt:
        asyncio.run(scenario())
    http_client.set_link_check(None)
    true(not n.up, "never up")
    eq(n.last_error, "join timed out", "the silent peer is named")
    true(2 <= n.attempts <= 3, "attempts bounded by timeout and backoff: %d" % n.attempts)


def test_board_link_refuses_an_unknown_kind():
    raises(ValueError, "link must be 'wlan' or 'ppp', not 'carrier-pigeon'", board_link,
           {"link": "carrier-pigeon"})
