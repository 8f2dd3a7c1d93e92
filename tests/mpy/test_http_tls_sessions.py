# iotlib.http_client's https sessions: one at a time, and the heap block held for mbedtls's
# input buffer is given back for each session and taken again after it. The network exchange
# itself is replaced by a coroutine the test controls (the TLS handshake is not under test
# here: tests/e2e/test_http_tls.py and tests/ppp/test_controller_on_chip.py run it for real).
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from check import eq, true
from iotlib import http_client

_real_exchange = http_client._exchange


class FakeNetwork:
    """Stands in for the connection: each exchange waits until the test releases it."""

    def __init__(self):
        self.running = []     # urls of exchanges in progress
        self.started = []     # (url, reserve held when it started)
        self.gates = {}

    async def exchange(self, method, scheme, host, port, path, body, headers, max_body, what):
        self.running.append(path)
        self.started.append((path, http_client._reserve is not None))
        gate = self.gates.setdefault(path, asyncio.Event())
        try:
            await gate.wait()
            if path.endswith("/fail"):
                raise http_client.HTTPError("%s: connection reset" % what)
            return http_client.Response(200, "OK", {}, b"{}")
        finally:
            self.running.remove(path)

    def release(self, path):
        self.gates.setdefault(path, asyncio.Event()).set()


def with_fake(fn):
    net = FakeNetwork()
    http_client._exchange = net.exchange
    try:
        return asyncio.run(fn(net))
    finally:
        http_client._exchange = _real_exchange
        http_client.reserve_tls_heap(0)


async def settle():
    for _ in range(5):
        await asyncio.sleep_ms(0)


def test_https_sessions_run_one_at_a_time():
    async def run(net):
        waits0 = http_client.tls_waits
        a = asyncio.create_task(http_client.request("GET", "https://p:8443/a"))
        b = asyncio.create_task(http_client.request("GET", "https://p:8443/b"))
        c = asyncio.create_task(http_client.request("GET", "http://p:8080/c"))
        await settle()
        eq(sorted(net.running), ["/a", "/c"], "b waits for a; plain http does not wait")
        eq(http_client.tls_waits - waits0, 1, "one https exchange waited")
        net.release("/a")
        await settle()
        eq(sorted(net.running), ["/b", "/c"], "b runs once a has ended")
        net.release("/b")
        net.release("/c")
        got = []
        for t in (a, b, c):
            got.append((await t).status)
        eq(got, [200, 200, 200], "all answered")
    with_fake(run)


def test_waiting_counts_against_the_timeout():
    async def run(net):
        a = asyncio.create_task(http_client.request("GET", "https://p/a", timeout_ms=5000))
        await settle()
        try:
            await http_client.request("GET", "https://p/b", timeout_ms=50)
            true(False, "no timeout")
        except http_client.HTTPError as e:
            true("no complete response within 50 ms" in str(e), str(e))
        eq(net.running, ["/a"], "b never started")
        net.release("/a")
        eq((await a).status, 200, "a unaffected")
    with_fake(run)


def test_reserve_is_free_during_a_session_and_held_after():
    async def run(net):
        http_client.reserve_tls_heap(8192)
        eq(len(http_client._reserve), 8192, "held at start-up")
        t = asyncio.create_task(http_client.request("GET", "https://p/a"))
        await settle()
        eq(net.started, [("/a", False)], "given back before the session began")
        net.release("/a")
        await t
        eq(len(http_client._reserve), 8192, "held again after it")
        t = asyncio.create_task(http_client.request("GET", "https://p/fail"))
        await settle()
        net.release("/fail")
        try:
            await t
            true(False, "no error")
        except http_client.HTTPError as e:
            true("connection reset" in str(e), str(e))
        eq(len(http_client._reserve), 8192, "held again after a failed session too")
        t = asyncio.create_task(http_client.request("GET", "http://p/plain"))
        await settle()
        eq(net.started[-1], ("/plain", True), "plain http leaves the block alone")
        net.release("/plain")
        await t
    with_fake(run)


def test_no_reserve_unless_asked():
    async def run(net):
        http_client.reserve_tls_heap(0)
        t = asyncio.create_task(http_client.request("GET", "https://p/a"))
        await settle()
        net.release("/a")
        await t
        true(http_client._reserve is None, "nothing held on the unix port's default")
    with_fake(run)
