# GET an https URL through iotlib.http_client with a TLS context that trusts the CA given
# (DER file) or nothing; prints the status and body, or the HTTPError.
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import tls

from iotlib import http_client

url, ca = sys.argv[1], sys.argv[2]
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
if ca != "-":
    with open(ca, "rb") as f:
        ctx.load_verify_locations(f.read())
http_client.set_tls_context(ctx)


async def main():
    try:
        r = await http_client.request("GET", url, timeout_ms=5000)
        print("%d %s" % (r.status, r.body.decode()))
    except http_client.HTTPError as e:
        print("HTTPError %s" % e)

asyncio.run(main())
