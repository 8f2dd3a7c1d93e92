# iotlib.auth_manager: the registration proof and the URL it is sent to.
from check import eq
from iotlib import auth_manager as am


async def platform_on_a_free_port(handle):
    # -> (server, port): a stand-in platform on 127.0.0.1; no getsockname() here, so random
    # high ports until one binds
    import os
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio
    for _ in range(50):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 20000
        try:
            return await asyncio.start_server(handle, "127.0.0.1", port), port
        except OSError:
            continue
    raise OSError("no free port")


def test_hmac_sha256_rfc4231():
    from binascii import hexlify
    eq(hexlify(am.hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
       b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "case 2")
    eq(hexlify(am.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")),
       b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", "case 6: long key")


def test_proof_is_the_platform_formula():
    # hmac.new(b"k" * 16, b"pico-1|1700000000|abcdefgh", hashlib.sha256).hexdigest() on CPython
    eq(am.proof("k" * 16, "pico-1", 1700000000, "abcdefgh"),
       "fd4844f8a04b9e7e6c64e25e6e3e4e79fa623f1c310cdcee4cc1b7c408375c82", "proof")


def test_register_url():
    eq(am.register_url("http://h:8080"), "http://h:8080/v1/devices/register", "base")
    eq(am.register_url("http://h:8080/"), "http://h:8080/v1/devices/register", "base slash")
    eq(am.register_url("http://h/v1/devices/register"), "http://h/v1/devices/register", "full")
    eq(am.register_url("https://h/api/devices"), "https://h/api/devices/register", "seed style")


def test_failed_registration_backs_off_for_every_caller():
    # a platform answering 503: the config, state, heartbeat and alarm tasks all ask for
    # headers; after one failed attempt none of them tries again before the backoff ends
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio
    import time
    from check import true

    posts = []

    async def handle(reader, writer):
        head = b""
        while b"\r\n\r\n" not in head:
            d = await reader.read(512)
            if not d:
                break
            head += d
        posts.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server, port = await platform_on_a_free_port(handle)
        a = am.AuthManager("pico-b", "k" * 32, "http://127.0.0.1:%d/v1/devices/register" % port)
        a._backoff = 200
        errors = []
        for _ in range(6):
            try:
                await a.headers()
            except am.AuthError as e:
                errors.append(str(e))
        eq(len(posts), 1, "one attempt for six callers")
        true(errors[0].startswith("registration refused: 503"), errors[0])
        true(all(e.startswith("not registered (next attempt in") for e in errors[1:]), errors)
        t0 = time.ticks_ms()
        while len(posts) < 2 and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            try:
                await a.headers()
            except am.AuthError:
                pass
            await asyncio.sleep_ms(20)
        eq(len(posts), 2, "tried again once the backoff ended")
        true(a._backoff == 800, "the backoff doubled twice: %d" % a._backoff)
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_service_urls_are_as_strict_as_the_platform_url():
    from check import raises
    am._check_services({"config": "https://p.example/v1/config",
                        "heartbeat": "http://127.0.0.1:8080/v1/heartbeat"})
    raises(ValueError, "service 'heartbeat' URL 'http://p.example/v1/heartbeat': plain http is "
           "allowed only to loopback (127.0.0.0/8, ::1, localhost); use https://", am._check_services,
           {"config": "https://p.example/v1/config",
            "heartbeat": "http://p.example/v1/heartbeat"})
    raises(ValueError, "registration answer: services is not an object", am._check_services,
           ["https://p/x"])
    raises(ValueError, "service 'state' URL 'ftp://p/state': scheme must be https (or http to "
           "loopback)",
           am._check_services, {"state": "ftp://p/state"})


def test_first_registration_waits_for_the_clock_on_a_board():
    # the controller gives a board's AuthManager clock_set, set at the first time sync: no
    # registration (a TLS handshake bound to fail on "not yet valid") before it, or before
    # CLOCK_WAIT_MS when no time server answers
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio
    import time
    from check import true

    posts = []

    async def handle(reader, writer):
        posts.append(time.ticks_ms())
        await reader.read(512)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def attempt(a):
        try:
            await a.headers()
        except am.AuthError:
            pass

    async def main():
        server, port = await platform_on_a_free_port(handle)
        url = "http://127.0.0.1:%d/v1/devices/register" % port
        a = am.AuthManager("pico-c", "k" * 32, url)
        a.clock_set = asyncio.Event()
        task = asyncio.create_task(attempt(a))
        await asyncio.sleep_ms(300)
        eq(posts, [], "nothing sent before the clock is set")
        t_set = time.ticks_ms()
        a.clock_set.set()
        await task
        eq(len(posts), 1, "registered once the clock was set")
        true(time.ticks_diff(posts[0], t_set) < 200, "at once")
        # no time server: the wait is bounded
        b = am.AuthManager("pico-d", "k" * 32, url)
        b.clock_set = asyncio.Event()
        wait0, am.CLOCK_WAIT_MS = am.CLOCK_WAIT_MS, 150
        try:
            t0 = time.ticks_ms()
            await attempt(b)
        finally:
            am.CLOCK_WAIT_MS = wait0
        eq(len(posts), 2, "tried after the wait")
        true(time.ticks_diff(posts[1], t0) >= 150, "not before CLOCK_WAIT_MS")
        server.close()
        await server.wait_closed()

    asyncio.run(main())
