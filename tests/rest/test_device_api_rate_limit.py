"""Rate limiting over HTTP, on a device with small limits: writes 5/s (burst 5), reads four
times that. Clients are told apart by their source address (127.0.0.x, all loopback)."""

import threading
import time

import pytest

from rest_harness import DEVICE, TALLY, DeviceApiServer, refused, token

LIMITS = dict(DEVICE, rate_limits={"default": {"requests": 5, "window_s": 1},
                                   "slowrole": {"requests": 2, "window_s": 10}},
              api={"roles": {"slowrole": {"permissions": ["relays:read", "relays:write"]}}})
FLOODER = "127.0.0.2"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    s = DeviceApiServer(tmp_path_factory.mktemp("limits"), device=LIMITS).start()
    yield s
    s.stop()


def switches(api, name="r1"):
    b = api.board()
    return b["switches"][sorted(b["states"]).index(name)]


def test_a_write_flood_empties_only_the_flooders_write_bucket(api):
    t = token("flooder")
    accepted = 0
    for _ in range(10):  # the burst passes, then the bucket is empty
        a = api.request("POST", "/gpio/r1", json_body={"state": "TOGGLE"}, token=t, source=FLOODER)
        if a.status == 429:
            break
        assert a.status == 200, a
        accepted += 1
    assert 5 <= accepted <= 7, accepted
    for _ in range(15):  # the rest of the flood: refused, relays untouched
        a = refused(api, "rate", "POST", "/gpio/r1", 429, "rate_limited", json_body={"state": "TOGGLE"},
                    token=t, source=FLOODER)
        assert a.headers["Retry-After"] == "1"  # 5/s: a token back within the second
    # meanwhile: the flooder still reads, and everyone else reads and writes
    assert api.get("/gpio", t, source=FLOODER).status == 200
    assert api.get("/health", source=FLOODER).status == 200
    other = token("bystander")
    assert api.post("/gpio/r2", {"state": "TOGGLE"}, other).status == 200
    assert api.get("/gpio/r1", other).status == 200
    assert api.get("/health").status == 200


def test_reads_and_health_stay_available_during_a_concurrent_flood(api):
    time.sleep(1.1)  # buckets refill
    t = token("flooder2")
    src = "127.0.0.3"
    statuses = []
    start = switches(api)

    def flood():
        for _ in range(60):
            statuses.append(api.request("POST", "/gpio/r1", json_body={"state": "TOGGLE"},
                                        token=t, source=src).status)

    th = threading.Thread(target=flood)
    th.start()
    reads = []
    other = token("reader")
    try:
        while th.is_alive() and len(reads) < 15:  # within the reader's own burst of 20
            for path, tok in (("/health", None), ("/gpio", other), ("/gpio/r1", other)):
                t0 = time.monotonic()
                reads.append((api.get(path, tok, source="127.0.0.4").status, time.monotonic() - t0))
            time.sleep(0.05)
    finally:
        th.join(30)
    assert not th.is_alive()
    assert len(reads) >= 3 and all(s == 200 for s, _ in reads), reads
    assert max(d for _, d in reads) < 1.0, reads
    ok = statuses.count(200)
    # each refused write left the relay alone: r1 moved exactly once per accepted write
    untouched = switches(api) - start == ok
    for s in statuses:
        if s != 200:
            TALLY.add("rate", s == 429 and untouched, s)
    assert set(statuses) <= {200, 429} and statuses.count(429) >= 40, statuses
    assert untouched


def test_subject_limit_follows_a_token_across_addresses(api):
    time.sleep(1.1)
    t = token("roamer")
    got = []
    for i in range(5):
        got.append(api.request("POST", "/gpio/r2", json_body={"state": "TOGGLE"}, token=t,
                               source="127.0.0.%d" % (10 + i % 2)).status)
    assert got == [200] * 5
    a = refused(api, "rate", "POST", "/gpio/r2", 429, "rate_limited", json_body={"state": "TOGGLE"},
                token=t, source="127.0.0.12")  # a fresh address: the token's bucket is empty
    assert "token" in a.json["message"]


def test_bad_tokens_are_limited_before_they_are_checked(api):
    # a flood of garbage tokens from one address: 401 while the write bucket lasts, then 429
    # (step 1 comes before the token, so no HMAC is spent on the rest)
    src = "127.0.0.20"
    statuses = []
    before = api.relays()
    for _ in range(25):
        a = api.request("POST", "/gpio/r1", json_body={"state": "TOGGLE"}, token="garbage",
                        source=src)
        statuses.append((a.status, a.json["error"]))
        if a.status == 429:
            break
    untouched = api.relays() == before
    for st, err in statuses:
        TALLY.add("rate", untouched and (st, err) in ((401, "malformed"), (429, "rate_limited")), st)
    assert untouched
    assert statuses[:5] == [(401, "malformed")] * 5 and statuses[-1] == (429, "rate_limited"), statuses
    assert len(statuses) <= 7, statuses
    # the address's write bucket is empty whatever the token; its reads are a bucket apart
    refused(api, "rate", "POST", "/gpio/r1", 429, "rate_limited", json_body={"state": "TOGGLE"},
            token=token("good"), source=src)
    assert api.get("/gpio", token("good"), source=src).status == 200


def test_a_read_flood_reaches_health_too(api):
    # probes are rate limited (read class) like everything else
    src = "127.0.0.21"
    n = 0
    while api.get("/health", source=src).status == 200:
        n += 1
        assert n < 100, "no limit on /health"
    assert n >= 20  # the burst, plus what refilled meanwhile
    refused(api, "rate", "GET", "/ready", 429, "rate_limited", source=src)
    assert api.get("/health").status == 200


def test_role_limit_from_config(api):
    t = token("slow-user", "slowrole")
    assert api.post("/gpio/r2", {"state": "TOGGLE"}, t, source="127.0.0.30").status == 200
    assert api.post("/gpio/r2", {"state": "TOGGLE"}, t, source="127.0.0.30").status == 200
    a = refused(api, "rate", "POST", "/gpio/r2", 429, "rate_limited", json_body={"state": "TOGGLE"},
                token=t, source="127.0.0.30")
    assert 4 <= int(a.headers["Retry-After"]) <= 5  # 2 per 10 s: one back in 5 s
    for _ in range(8):  # reads get four times the role's write limit
        assert api.get("/gpio/r2", t, source="127.0.0.30").status == 200


def test_retry_after_is_honest(api):
    time.sleep(1.1)
    t = token("patient")
    src = "127.0.0.40"
    a = None
    for _ in range(10):
        a = api.request("POST", "/gpio/r1", json_body={"state": "TOGGLE"}, token=t, source=src)
        if a.status == 429:
            break
    assert a.status == 429
    time.sleep(int(a.headers["Retry-After"]))
    assert api.post("/gpio/r1", {"state": "TOGGLE"}, t, source=src).status == 200
