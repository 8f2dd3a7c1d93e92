# iotlib.rest_api reads a request head itself (faster on the board than microdot's
# Request.create, which it otherwise follows): for every head here, both give the same request,
# or both raise the same error. The client side is a byte buffer.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from check import eq
from microdot import Request
from iotlib import rest_api


class Bytes:
    """A stream reader over fixed bytes (what the client sent)."""

    def __init__(self, data):
        self.data = data

    async def readline(self):
        i = self.data.find(b"\n")
        i = len(self.data) if i < 0 else i + 1
        line, self.data = self.data[:i], self.data[i:]
        return line

    async def readexactly(self, n):
        if len(self.data) < n:
            raise EOFError
        out, self.data = self.data[:n], self.data[n:]
        return out


TOKEN = "eyJhbGciOiJIUzI1NiJ9." + "a" * 180 + ".sig"
HEADS = [
    b"GET /gpio HTTP/1.1\r\nHost: d\r\n\r\n",
    b"POST /gpio/r1 HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer " + TOKEN.encode()
    + b"\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"state\": \"HIGH\"}",
    b"POST /x HTTP/1.1\r\ncontent-LENGTH:   3  \r\n\r\nabcdef",
    b"GET /a?b=c HTTP/1.0\r\nX-Sp:  \t v a l \t \r\nX-Empty:\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo-Colon-Here\r\n\r\n",
    b"GET / HTTP/1.1\r\nName : spaced\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n",
    b"GET /\xc3\xa9 HTTP/1.1\r\nX-Utf8: caf\xc3\xa9\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET /\r\n\r\n",
    b"BREW / HTTP\r\n\r\n",
    b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"y" * (Request.max_readline + 10) + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r\na: 2\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc",
    b"GET / HTTP/1.1\nBare-Lf: yes\n\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
]


async def outcome(fn, data):
    try:
        r = await fn(None, Bytes(data), None, ("127.0.0.1", 1))
    except Exception as e:
        return ("raised", type(e).__name__, str(e))
    if r is None:
        return None
    return (r.method, r.url, r.http_version, sorted(r.headers.items()), r.body,
            r.content_length, r.stream is None)


def test_same_requests_and_errors_as_microdot():
    async def main():
        for head in HEADS:
            eq(await outcome(rest_api._read_request, head),
               await outcome(Request.create, head), repr(head[:60]))
    asyncio.run(main())
