"""iotlib.prometheus output, made by the MicroPython unix build, read back by the real
prometheus_client text parser; the values must be those of the actions performed."""

import json
import os
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".cache", "build", "unix", "micropython")
SCRIPT = os.path.join(ROOT, "tests", "rest", "prometheus_exposition.py")

ACTIONS = {
    "tenant": "acme",
    "namespace": 'lab "north"',
    "switches": [["relay1", True], ["relay2", True], ["relay1", False], ["relay1", True]],
    "rejections": ["interval", "interlock", "interval"],
    "requests": [
        ["/gpio/<relay>", 200, 4], ["/gpio/<relay>", 200, 12], ["/gpio/<relay>", 200, 260],
        ["/gpio/<relay>", 409, 7], ["/gpio", 200, 30], ["/gpio", 401, 1], ["/metrics", 200, 9000],
    ],
    "odd": ["back\\slash", 'say "hi"', "two\nlines", "back\\slash"],
    "heap": 104857,
    "uptime": 12.5,
}
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def run(cmd, env=None):
    proc = subprocess.run(cmd + [SCRIPT], input=json.dumps(ACTIONS), capture_output=True,
                          text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def text():
    if not os.path.exists(MICROPYTHON):
        pytest.fail("no MicroPython unix build at %s: run `make unix`" % MICROPYTHON)
    env = dict(os.environ, MICROPYPATH=os.path.join(ROOT, "python"))
    return run([MICROPYTHON], env)


@pytest.fixture(scope="module")
def families(text):
    fams = list(text_string_to_metric_families(text))
    return {f.name: f for f in fams}, fams


def samples(fam, name=None):
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("tenant", "namespace"))): s.value
            for s in fam.samples if name is None or s.name == name}


def test_same_text_on_cpython(text):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    assert run([sys.executable], env) == text


def test_one_family_per_name(families):
    by_name, fams = families
    assert len(by_name) == len(fams)
    assert set(by_name) == {"relay_state", "relay_switches", "relay_rejections", "heap_free_bytes",
                            "uptime_seconds", "odd_labels", "http_request_duration_seconds"}


def test_types_and_help(families):
    by_name, _ = families
    assert by_name["relay_switches"].type == "counter"
    assert by_name["relay_state"].type == "gauge"
    assert by_name["http_request_duration_seconds"].type == "histogram"
    assert by_name["odd_labels"].documentation == "Label values that need escaping: \\ and\nnewline."


def test_tenant_and_namespace_on_every_sample(families):
    _, fams = families
    n = 0
    for f in fams:
        for s in f.samples:
            assert s.labels["tenant"] == ACTIONS["tenant"]
            assert s.labels["namespace"] == ACTIONS["namespace"]
            n += 1
    assert n > 40


def test_relay_values(families):
    by_name, _ = families
    want_state, want_switches = {}, {}
    for relay, on in ACTIONS["switches"]:
        want_state[relay] = 1 if on else 0
        want_switches[relay] = want_switches.get(relay, 0) + 1
    assert samples(by_name["relay_state"]) == {(("relay", r),): v for r, v in want_state.items()}
    assert samples(by_name["relay_switches"]) == {(("relay", r),): v for r, v in want_switches.items()}
    assert samples(by_name["relay_rejections"]) == {(("reason", "interval"),): 2, (("reason", "interlock"),): 1}


def test_gauges_set_at_collect(families):
    by_name, _ = families
    assert samples(by_name["heap_free_bytes"]) == {(): ACTIONS["heap"]}
    assert samples(by_name["uptime_seconds"]) == {(): ACTIONS["uptime"]}


def test_escaped_labels_round_trip(families):
    by_name, _ = families
    got = samples(by_name["odd_labels"])
    want = {}
    for v in ACTIONS["odd"]:
        want[(("v", v),)] = want.get((("v", v),), 0) + 1
    assert got == want


def test_latency_histogram(families):
    by_name, _ = families
    fam = by_name["http_request_duration_seconds"]
    series = {}
    for route, status, ms in ACTIONS["requests"]:
        series.setdefault((route, str(status)), []).append(ms)
    counts = samples(fam, "http_request_duration_seconds_count")
    sums = samples(fam, "http_request_duration_seconds_sum")
    buckets = samples(fam, "http_request_duration_seconds_bucket")
    assert len(counts) == len(series)
    for (route, status), values in series.items():
        key = (("route", route), ("status", status))
        assert counts[key] == len(values)
        assert sums[key] == pytest.approx(sum(values) / 1000.0)
        for le in LATENCY_BUCKETS_S:
            bkey = (("le", repr(le)),) + key
            bkey = tuple(sorted(bkey))
            assert buckets[bkey] == sum(1 for v in values if v / 1000.0 <= le), (route, status, le)
        inf = tuple(sorted((("le", "+Inf"),) + key))
        assert buckets[inf] == len(values)


def test_histogram_layout(text):
    # per series: buckets in increasing le, +Inf last, then _sum and _count
    lines = [ln for ln in text.splitlines() if ln.startswith("http_request_duration_seconds")]
    assert len(lines) == 5 * (len(LATENCY_BUCKETS_S) + 3)
    for i in range(0, len(lines), len(LATENCY_BUCKETS_S) + 3):
        block = lines[i:i + len(LATENCY_BUCKETS_S) + 3]
        assert all("_bucket{" in ln for ln in block[:-2])
        assert 'le="+Inf"' in block[-3]
        assert block[-2].startswith("http_request_duration_seconds_sum{")
        assert block[-1].startswith("http_request_duration_seconds_count{")
        counts = [int(ln.rsplit(" ", 1)[1]) for ln in block[:-2]]
        assert counts == sorted(counts)


def test_text_shape(text):
    # HELP and TYPE once each, before the family's samples; a final newline
    assert text.endswith("\n")
    seen = []
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            seen.append(ln.split()[2])
    assert len(seen) == len(set(seen)) == 7
    assert text.count("# HELP ") == 7
