# GET each path of a base URL through iotlib.http_client; one JSON line per path:
# {"path", "status" or "error", "body_len", "received" (bytes this request read from the socket)}.
# A MemoryError or any other exception is printed as such, so the test sees it.
import json
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from iotlib import http_client

base = sys.argv[1]


async def one(path):
    before = http_client.received
    out = {"path": path}
    try:
        r = await http_client.request("GET", base + path, timeout_ms=5000)
        out["status"] = r.status
        out["body_len"] = len(r.body)
    except http_client.HTTPError as e:
        out["error"] = str(e)
    except Exception as e:
        out["crash"] = "%s: %s" % (type(e).__name__, e)
    out["received"] = http_client.received - before
    print(json.dumps(out))


async def main():
    for path in sys.argv[2:]:
        await one(path)

asyncio.run(main())
