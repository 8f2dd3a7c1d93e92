"""GET /metrics read by prometheus_client's text parser, with every value checked against the
requests this module made to a fresh device (and the figures it fed the simulated
controller)."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rest_harness import DeviceApiServer, NAMESPACE, TENANT, token

OP = token("alice", "operator")
VIEW = token("scraper", "viewer")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FIGURES = {"reconnects": 3, "heartbeats_missed": 2, "alarms_buffered": 4, "alarms_sent": 7,
           "alarms_dropped": 1}


def scrape(api, tok=VIEW, tenant=TENANT, namespace=NAMESPACE):
    a = api.get("/metrics", tok)
    assert a.status == 200 and a.headers["Content-Type"] == CONTENT_TYPE
    fams = list(text_string_to_metric_families(a.text))
    assert len({f.name for f in fams}) == len(fams)  # one family per name
    out = {}
    for f in fams:
        for s in f.samples:
            labels = dict(s.labels)
            # tenant and namespace on every sample
            assert labels.pop("tenant") == tenant and labels.pop("namespace") == namespace, s
            key = (s.name, tuple(sorted(labels.items())))
            assert key not in out, key
            out[key] = s.value
    return out, {f.name: f.type for f in fams}


def value(m, name, **labels):
    return m[(name, tuple(sorted(labels.items())))]


def series(m, name):
    return {k[1]: v for k, v in m.items() if k[0] == name}


@pytest.fixture(scope="module")
def acted(tmp_path_factory):
    api = DeviceApiServer(tmp_path_factory.mktemp("metrics"), figures=FIGURES).start()
    try:
        def post(path, body, status, tok=OP, **kw):
            a = api.request("POST", path, json_body=body, token=tok, **kw)
            assert a.status == status, a

        post("/gpio/r1", {"state": "HIGH"}, 200)
        post("/gpio/r1", {"state": "LOW"}, 200)
        post("/gpio/r2", {"state": "HIGH"}, 200)
        post("/gpio/slow", {"state": "HIGH"}, 200)
        post("/gpio/slow", {"state": "LOW"}, 409)                  # interval
        post("/gpio/fwd", {"state": "HIGH"}, 200)
        post("/gpio/rev", {"state": "HIGH"}, 202)                  # change-over
        api.wait_board(lambda b: b["states"]["rev"], "rev on after the dead time")
        post("/gpio", {"relays": {"fwd": "HIGH"}}, 409)            # interlock
        for _ in range(3):
            assert api.get("/gpio", OP).status == 200
        for _ in range(2):
            assert api.get("/gpio/r1", "garbage").status == 401
        post("/gpio/r1", {"state": "HIGH"}, 403, VIEW)
        assert api.get("/nope").status == 404
        assert api.request("POST", "/gpio/r1", raw=b"x", token=OP).status == 400
        assert api.get("/health").status == 200
        assert api.get("/health").status == 200
        assert api.get("/ready").status == 200
        yield api
    finally:
        api.stop()


def test_families_and_types(acted):
    m, types = scrape(acted)
    assert types == {
        "http_request_duration_seconds": "histogram", "api_refusals": "counter",
        "relay_state": "gauge", "relay_switches": "counter", "relay_rejections": "counter",
        "relay_deferred": "counter", "watchdog_feeds": "counter", "heap_free_bytes": "gauge",
        "uptime_seconds": "gauge", "wifi_reconnects": "counter", "heartbeats_missed": "counter",
        "alarms_buffered": "gauge", "alarms_sent": "counter", "alarms_dropped": "counter"}


def test_values_match_the_actions(acted):
    m, _ = scrape(acted)
    assert series(m, "relay_state") == {
        (("relay", "r1"),): 0, (("relay", "r2"),): 1, (("relay", "slow"),): 1,
        (("relay", "fwd"),): 0, (("relay", "rev"),): 1}
    assert series(m, "relay_switches_total") == {
        (("relay", "r1"),): 2, (("relay", "r2"),): 1, (("relay", "slow"),): 1,
        (("relay", "fwd"),): 2, (("relay", "rev"),): 1}
    assert value(m, "relay_rejections_total", reason="interval") == 1
    assert value(m, "relay_rejections_total", reason="interlock") == 1
    assert value(m, "relay_deferred_total") == 1
    assert value(m, "watchdog_feeds_total") == 0
    assert series(m, "api_refusals_total") == {
        (("error", "interval"),): 1, (("error", "interlock"),): 1, (("error", "malformed"),): 2,
        (("error", "forbidden"),): 1, (("error", "not_found"),): 1, (("error", "bad_json"),): 1}
    assert value(m, "wifi_reconnects_total") == 3
    assert value(m, "heartbeats_missed_total") == 2
    assert value(m, "alarms_buffered") == 4
    assert value(m, "alarms_sent_total") == 7
    assert value(m, "alarms_dropped_total") == 1
    assert 10000 < value(m, "heap_free_bytes")
    assert 0 <= value(m, "uptime_seconds") < 60  # a fresh process


def test_request_counts_by_route_template_and_status(acted):
    m, _ = scrape(acted)
    counts = {dict(k)["route"] + " " + dict(k)["status"]: v
              for k, v in series(m, "http_request_duration_seconds_count").items()}
    # this scrape is counted once it is answered: the earlier test's scrapes are in
    assert counts.pop("/metrics 200") >= 1
    assert counts == {
        "/gpio/<relay> 200": 5, "/gpio/<relay> 202": 1, "/gpio/<relay> 409": 1,
        "/gpio 409": 1, "/gpio 200": 3, "/gpio/<relay> 401": 2, "/gpio/<relay> 403": 1,
        "/gpio/<relay> 400": 1, "unmatched 404": 1, "/health 200": 2, "/ready 200": 1}


def test_histograms_are_consistent(acted):
    m, _ = scrape(acted)
    buckets = {}
    for (name, labels), v in m.items():
        if name == "http_request_duration_seconds_bucket":
            d = dict(labels)
            le = float(d.pop("le"))
            buckets.setdefault(tuple(sorted(d.items())), []).append((le, v))
    assert buckets
    for key, bs in buckets.items():
        bs.sort()
        counts = [v for _, v in bs]
        assert counts == sorted(counts), key            # cumulative
        assert bs[-1][0] == float("inf")
        assert bs[-1][1] == m[("http_request_duration_seconds_count", key)]
        total = m[("http_request_duration_seconds_sum", key)]
        assert 0 <= total <= 5 * bs[-1][1], key         # no request took 5 s here


def test_counters_only_grow_and_figures_follow(acted):
    m1, _ = scrape(acted)
    acted.sim(figures=dict(FIGURES, reconnects=5, alarms_buffered=0))
    m2, _ = scrape(acted)
    assert value(m2, "wifi_reconnects_total") == 5
    assert value(m2, "alarms_buffered") == 0          # a gauge goes down
    assert value(m2, "http_request_duration_seconds_count", route="/metrics", status="200") == \
        value(m1, "http_request_duration_seconds_count", route="/metrics", status="200") + 1
    for key, v in m1.items():
        if key[0].endswith("_total") or key[0].endswith("_count") or key[0].endswith("_bucket"):
            assert m2[key] >= v, key
    # the source restarted from 0 (its manager was rebuilt): the counter still only grows
    acted.sim(figures=dict(FIGURES, reconnects=1))
    m3, _ = scrape(acted)
    assert value(m3, "wifi_reconnects_total") == 6


def test_tenant_labels_follow_the_device(acted):
    acted.sim(tenant="acme-2", namespace="plant-z")
    try:
        scrape(acted, token("scraper", "viewer", tenant="acme-2", namespace="plant-z"),
               "acme-2", "plant-z")
    finally:
        acted.sim(tenant=TENANT, namespace=NAMESPACE)
    scrape(acted)
