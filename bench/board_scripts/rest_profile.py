# Where the time of a REST request goes inside the device process, step by step, with no
# sockets (bench/rest_load.py): micropython rest_profile.py SETTINGS.json; prints one line
# "PROFILE {json}".
import gc, json, sys, time
import asyncio
from microdot import Microdot
from microdot.microdot import AsyncBytesIO
from iotlib import atomic_file, logger, rbac, rest_api, strict_json
from iotlib.jwt_validator import JWTValidator, bearer_token, check_tenancy
from iotlib.prometheus import Registry
from iotlib.rate_limiter import ApiRateLimiter
from iotlib.relay_gpio_manager import RelayGPIOManager
import hashlib

with open(sys.argv[1]) as f:
    s = json.load(f)
N, REPS = s["n"], s["reps"]
d = s["data_dir"]
atomic_file.makedirs(d + "/log")
logger.setup(path=d + "/log/device.log", audit_path=d + "/log/audit.log", level="info",
             echo=False)
cfg, j, tok = s["device"], s["jwt"], s["token"]
relays = RelayGPIOManager(d, persist_min_ms=1000)
relays.start(cfg)
validator = JWTValidator(j["key"], j["issuer"], j["audience"], time.time, 30)
limiter = ApiRateLimiter.from_config(cfg["rate_limits"])
ident = (s["tenant"], s["namespace"])
app = rest_api.create_app(relays, validator, limiter, lambda: ident, lambda: (True, []),
                          counters=lambda: {}, roles=rbac.roles_from_config(None),
                          registry=Registry())
api = app.api
bare = Microdot()


@bare.route("/", methods=["GET", "POST"])
async def index(req):
    return "Hello, world!"


class Writer:
    async def awrite(self, b):
        pass

    async def aclose(self):
        pass

    def get_extra_info(self, k):
        return ("127.0.0.1", 40000)


res = []


def best(run):
    b = None
    for r in range(REPS):
        gc.collect()
        t = run()
        b = t if b is None or t < b else b
    return b


def timed(key, fn, n=N):
    def run():
        t0 = time.ticks_us()
        for i in range(n):
            fn()
        return time.ticks_diff(time.ticks_us(), t0) / n
    res.append((key, best(run)))


async def atimed(key, make, n=N):
    async def run():
        t0 = time.ticks_us()
        for i in range(n):
            await make(i)
        return time.ticks_diff(time.ticks_us(), t0) / n
    b = None
    for r in range(REPS):
        gc.collect()
        t = await run()
        b = t if b is None or t < b else b
    res.append((key, b))


auth = "Bearer " + tok
claims = validator.validate(tok)
hdr = "Host: 127.0.0.1\r\n"
ahdr = hdr + "Authorization: %s\r\n" % auth


def req(method, path, h, body=None):
    if body is None:
        return ("%s %s HTTP/1.1\r\n%s\r\n" % (method, path, h)).encode()
    return ("%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (method, path, h, len(body), body)).encode()


BODIES = s["bodies"]
W = Writer()


def through(a, raws):
    return lambda i: a.handle_request(AsyncBytesIO(raws[i % len(raws)]), W)


async def nothing():
    return 1


async def main():
    await atimed("req_bare_get", through(bare, [req("GET", "/", hdr)]))
    await atimed("req_bare_get_auth", through(bare, [req("GET", "/", ahdr)]))
    await atimed("req_bare_post", through(bare, [req("POST", "/", hdr, b) for b in BODIES]))
    await atimed("req_api_health", through(app, [req("GET", "/health", hdr)]))
    await atimed("req_api_get_one", through(app, [req("GET", "/gpio/r1", ahdr)]))
    await atimed("req_api_get", through(app, [req("GET", "/gpio", ahdr)]))
    await atimed("req_api_post", through(app, [req("POST", "/gpio/r1", ahdr, b)
                                               for b in BODIES]))
    await atimed("await_plain", lambda i: nothing())
    await atimed("await_wait_for", lambda i: asyncio.wait_for(nothing(), 10))

asyncio.run(main())

now = [0]


def lim_addr():
    now[0] += 1
    limiter.check_address("127.0.0.1", now[0], read=True)


signing = tok.rsplit(".", 1)[0].encode()
timed("limit_address", lim_addr)
timed("bearer", lambda: bearer_token(auth))
timed("jwt_validate", lambda: validator.validate(tok))
timed("sha256_x2", lambda: hashlib.sha256(hashlib.sha256(b"i" * 64 + signing).digest()).digest())
timed("tenancy", lambda: check_tenancy(claims, ident[0], ident[1]))
timed("limit_subject", lambda: limiter.check_subject("bench", now[0], read=True, role="operator"))
timed("rbac", lambda: rbac.denial(claims, rbac.SWITCH, "r1", api.roles))
timed("list_relays", lambda: api.list_relays(None, claims))
doc = api.list_relays(None, claims)
timed("dumps_list", lambda: json.dumps(doc))
timed("strict_json", lambda: strict_json.check(BODIES[0], 4))
timed("loads_body", lambda: json.loads(BODIES[0]))
k = [0]


def switch():
    k[0] ^= 1
    relays.set("r1", bool(k[0]), "127.0.0.1", "bench")


timed("relay_set_audit", switch)
timed("audit_line", lambda: logger.audit("relay", relay="r1", old=False, new=True,
                                         subject="bench", source="127.0.0.1"))
timed("relay_doc", lambda: json.dumps(api.relay_doc("r1")))
timed("metrics_observe", lambda: api.requests.observe("/gpio", 200, 1))
print("PROFILE " + json.dumps(dict(res)))
