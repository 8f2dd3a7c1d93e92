# iotlib.http_client against a real asyncio server on 127.0.0.1 in the same process.
import json

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from check import eq, true
from iotlib import http_client

ANSWERS = {
    "/json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
             b"X-Mixed-Case: v\r\n\r\n{\"a\": [1]}\n",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer: x\r\n\r\n",
    "/close": b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    "/304": b"HTTP/1.1 304 Not Modified\r\nETag: \"cfg-3\"\r\n\r\n",
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "/big": b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n",
    "/garbage": b"SMTP ready\r\n\r\n",
    "/short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    "/longline": b"HTTP/1.1 200 OK\r\nX: " + b"y" * 5000 + b"\r\n\r\n",
    "/silent": None,
    "/negchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n-fa0\r\n"
                 + b"x" * 3000,
    "/cl-sign": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "/headers": b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 41 + b"\r\n",
}
seen = []


async def handle(reader, writer):
    head = b""
    while b"\r\n\r\n" not in head:
        d = await reader.read(256)
        if not d:
            break
        head += d
    line = head.split(b"\r\n")[0].decode()
    path = line.split(" ")[1]
    hdrs = head.split(b"\r\n\r\n")[0]
    body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
    for h in hdrs.split(b"\r\n")[1:]:
        if h.lower().startswith(b"content-length:"):
            n = int(h.split(b":")[1])
            while len(body) < n:
                body += await reader.read(n - len(body))
    seen.append((line, hdrs, body))
    if path == "/echo":
        out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    else:
        out = ANSWERS.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    if out is None:
        await asyncio.sleep_ms(2000)
    else:
        writer.write(out)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def with_server(fn):
    # MicroPython's sockets have no getsockname(): try random high ports until one binds
    import os

    async def main():
        for _ in range(50):
            port = 20000 + int.from_bytes(os.urandom(2), "big") % 20000
            try:
                srv = await asyncio.start_server(handle, "127.0.0.1", port)
                break
            except OSError:
                continue
        try:
            return await fn("http://127.0.0.1:%d" % port)
        finally:
            srv.close()
            await srv.wait_closed()
    return asyncio.run(main())


def fails(coro_fn, text):
    async def run(base):
        try:
            await coro_fn(base)
        except http_client.HTTPError as e:
            true(isinstance(e, OSError), "HTTPError is an OSError")
            true(text in str(e), "message %r lacks %r" % (str(e), text))
            return
        raise AssertionError("no HTTPError")
    with_server(run)


def test_content_length_json_and_headers():
    async def run(base):
        r = await http_client.request("GET", base + "/json", headers={"X-Req": "1"})
        eq(r.status, 200, "status")
        eq(r.json(), {"a": [1]}, "json")
        eq(r.headers["x-mixed-case"], "v", "lower-case header names")
    with_server(run)
    true(b"X-Req: 1" in seen[-1][1], "request header sent")
    true(b"Host: 127.0.0.1:" in seen[-1][1], "Host header")


def test_json_body_sent_with_content_type():
    async def run(base):
        r = await http_client.request("PUT", base + "/echo", body={"k": [1, 2]})
        eq(json.loads(r.body), {"k": [1, 2]}, "echo")
    with_server(run)
    true(b"Content-Type: application/json" in seen[-1][1], "content type")


def test_chunked_with_extension_and_trailer():
    async def run(base):
        r = await http_client.request("GET", base + "/chunked")
        eq(r.body, b"abcdefg", "chunked body")
    with_server(run)


def test_read_to_close_304_and_1xx():
    async def run(base):
        eq((await http_client.request("GET", base + "/close")).body, b"until the end", "close")
        r = await http_client.request("GET", base + "/304")
        eq((r.status, r.body, r.headers["etag"]), (304, b"", '"cfg-3"'), "304")
        r = await http_client.request("POST", base + "/continue", body=b"x")
        eq((r.status, r.body), (201, b"ok"), "after 100")
    with_server(run)


def test_errors_are_clear():
    fails(lambda b: http_client.request("GET", b + "/silent", timeout_ms=300), "within 300 ms")
    fails(lambda b: http_client.request("GET", b + "/big"), "exceeds")
    fails(lambda b: http_client.request("GET", b + "/garbage"), "malformed status line")
    fails(lambda b: http_client.request("GET", b + "/short"), "closed before")
    fails(lambda b: http_client.request("GET", b + "/longline"), "longer than")
    fails(lambda b: http_client.request("GET", "http://127.0.0.1:1/"), "ECONNREFUSED")
    fails(lambda b: http_client.request("GET", "ftp://x/"), "unsupported URL")


def test_sizes_are_digits_only_and_counts_bounded():
    fails(lambda b: http_client.request("GET", b + "/negchunk"), "bad chunk size '-fa0'")
    fails(lambda b: http_client.request("GET", b + "/cl-sign"), "bad Content-Length '+5'")
    fails(lambda b: http_client.request("GET", b + "/headers"), "more than 40 response headers")
    for bad in ("", "-1", " 1 2", "1_0", "0x1", "123456789", "g"):
        try:
            http_client._digits(bad, 16, 8, "chunk size")
        except http_client.HTTPError as e:
            true("chunk size" in str(e), str(e))
            continue
        raise AssertionError("accepted chunk size %r" % bad)
    eq(http_client._digits(b" fFfF ", 16, 8, "chunk size"), 0xffff, "hex either case")


def test_link_check_fails_fast():
    http_client.set_link_check(lambda: False)
    try:
        fails(lambda b: http_client.request("GET", b + "/json"), "no network link")
    finally:
        http_client.set_link_check(None)


def test_split_url():
    eq(http_client.split_url("http://h/p?q=1"), ("http", "h", 80, "/p?q=1"), "default port")
    eq(http_client.split_url("https://h:8443"), ("https", "h", 8443, "/"), "https")
    eq(http_client.split_url("http://[::1]:81/x"), ("http", "::1", 81, "/x"), "ipv6")
