# Small collaborators for the manager tests: an HTTP transport whose answers a test
# scripts, a fixed-token auth, a logger that keeps its lines, a scratch folder.
# They stand in for the manager's neighbours only, never for the manager under test.
import json
import os

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio


class Resp:
    def __init__(self, status, body=b"", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {}

    def json(self):
        return json.loads(self.body)


class ScriptedHTTP:
    """request() answers with handler(method, url, body, headers): a Resp, or raises."""

    def __init__(self, handler):
        self.handler = handler
        self.calls = []

    async def request(self, method, url, body=None, headers=None, timeout_ms=5000):
        self.calls.append((method, url, body, dict(headers or {})))
        await asyncio.sleep_ms(0)
        return self.handler(method, url, body, headers or {})


class FixedAuth:
    def __init__(self, token="tok"):
        self.token = token

    async def headers(self):
        return {"Authorization": "Bearer " + self.token}


class ListLog:
    def __init__(self):
        self.lines = []

    def _add(self, level, msg, fields):
        self.lines.append((level, msg, fields))

    def debug(self, msg, **kw):
        self._add("debug", msg, kw)

    def info(self, msg, **kw):
        self._add("info", msg, kw)

    def warning(self, msg, **kw):
        self._add("warning", msg, kw)

    def error(self, msg, **kw):
        self._add("error", msg, kw)


def scratch_dir(tag):
    path = "/tmp/mpy-%s-%s" % (tag, "".join("%02x" % b for b in os.urandom(4)))
    os.mkdir(path)
    return path


def rm_tree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            rm_tree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def run(coro):
    return asyncio.run(coro)
