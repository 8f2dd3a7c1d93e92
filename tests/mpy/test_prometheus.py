# iotlib.prometheus: the exact text of the 0.0.4 exposition (tests/rest parses
# the same output with prometheus_client on CPython).
from check import eq, raises, true
from iotlib import prometheus as pm
from iotlib.prometheus import Registry, RequestMetrics


def test_counter_and_gauge_text():
    r = Registry()
    c = r.counter("relay_switches_total", "Relay switches.", ("relay",))
    g = r.gauge("heap_free_bytes", "Free heap.")
    c.inc(("relay1",))
    c.inc(("relay1",), 2)
    c.inc(("relay0",))
    g.set(1234)
    eq(r.text(),
       "# HELP relay_switches_total Relay switches.\n"
       "# TYPE relay_switches_total counter\n"
       'relay_switches_total{relay="relay0"} 1\n'
       'relay_switches_total{relay="relay1"} 3\n'
       "# HELP heap_free_bytes Free heap.\n"
       "# TYPE heap_free_bytes gauge\n"
       "heap_free_bytes 1234\n", "text")
    eq(c.value(("relay1",)), 3, "value")
    eq(c.value(("relay9",)), 0, "absent series")


def test_unlabelled_series_start_at_zero():
    r = Registry()
    r.counter("reconnects_total", "WLAN reconnects.")
    eq(r.text().split("\n")[2], "reconnects_total 0", "zero sample")
    r.counter("by_reason_total", "x", ("reason",))
    samples = [ln for ln in r.text().split("\n") if ln and not ln.startswith("#")]
    eq(samples, ["reconnects_total 0"], "a labelled family has no sample until used")


def test_label_escaping():
    r = Registry()
    c = r.counter("odd_total", "Odd labels.", ("v",))
    c.inc(('back\\slash "quoted"\nnewline',))
    eq(r.text().split("\n")[2], 'odd_total{v="back\\\\slash \\"quoted\\"\\nnewline"} 1', "escaped")
    eq(pm.escape_label('a"b'), 'a\\"b', "quote")


def test_help_escaping():
    r = Registry()
    r.gauge("g", 'line one\nback\\slash "quotes stay"')
    eq(r.text().split("\n")[0], '# HELP g line one\\nback\\\\slash "quotes stay"', "help")


def test_histogram_text():
    r = Registry()
    h = r.histogram("op_seconds", "Op time.", ("op",), (0.5, 1, 2.5))
    for v in (0.1, 0.5, 0.7, 3, 100):
        h.observe(v, ("a",))
    eq(r.text(),
       "# HELP op_seconds Op time.\n"
       "# TYPE op_seconds histogram\n"
       'op_seconds_bucket{op="a",le="0.5"} 2\n'
       'op_seconds_bucket{op="a",le="1"} 3\n'
       'op_seconds_bucket{op="a",le="2.5"} 3\n'
       'op_seconds_bucket{op="a",le="+Inf"} 5\n'
       'op_seconds_sum{op="a"} 104.3\n'
       'op_seconds_count{op="a"} 5\n', "histogram")
    eq(h.count(("a",)), 5, "count")


def test_histogram_in_ms_renders_seconds():
    r = Registry()
    h = r.histogram("lat_seconds", "Latency.", (), (5, 10, 250, 1000, 2500), scale=1000)
    for ms in (3, 5, 6, 999, 4000):
        h.observe(ms)
    eq(r.text().split("\n")[2:9],
       ['lat_seconds_bucket{le="0.005"} 2', 'lat_seconds_bucket{le="0.01"} 3',
        'lat_seconds_bucket{le="0.25"} 3', 'lat_seconds_bucket{le="1.0"} 4',
        'lat_seconds_bucket{le="2.5"} 4', 'lat_seconds_bucket{le="+Inf"} 5',
        "lat_seconds_sum 5.013"], "seconds from integer ms")


def test_request_metrics():
    r = Registry((("tenant", "acme"), ("namespace", "lab")))
    req = RequestMetrics(r)
    req.observe("/gpio/<relay>", 200, 12)
    req.observe("/gpio/<relay>", 200, 40)
    req.observe("/gpio/<relay>", "200", 3)   # one series whatever the status type
    req.observe("/gpio", 401, 1)
    text = r.text()
    true('http_request_duration_seconds_count{tenant="acme",namespace="lab",route="/gpio/<relay>",status="200"} 3\n'
         in text, "count with const labels first")
    true('http_request_duration_seconds_sum{tenant="acme",namespace="lab",route="/gpio/<relay>",status="200"} 0.055\n'
         in text, "sum in seconds")
    true('http_request_duration_seconds_bucket{tenant="acme",namespace="lab",route="/gpio",status="401",le="0.005"} 1\n'
         in text, "bucket")
    eq(text.count("# TYPE"), 1, "one family")
    eq(req.histogram.count(("/gpio/<relay>", "200")), 3, "count")


def test_const_labels_change():
    r = Registry()
    g = r.gauge("up", "Up.")
    g.set(1)
    eq(r.text().split("\n")[2], "up 1", "none yet")
    r.set_const_labels((("tenant", 'ac"me'),))
    eq(r.text().split("\n")[2], 'up{tenant="ac\\"me"} 1', "after registration")


def test_values():
    eq(pm.format_value(3), "3", "int")
    eq(pm.format_value(True), "1", "bool")
    eq(pm.format_value(2.5), "2.5", "float")
    eq(pm.format_value(float("inf")), "+Inf", "inf")
    eq(pm.format_value(float("-inf")), "-Inf", "-inf")
    eq(pm.format_value(float("nan")), "NaN", "nan")
    eq(pm.format_value(2 ** 40), "1099511627776", "big int")


def test_gauge_ops():
    r = Registry()
    g = r.gauge("alarms_buffered", "Alarms waiting.", ("kind",))
    g.inc(("x",), 5)
    g.dec(("x",), 2)
    g.set(-1.5, ("y",))
    eq(g.value(("x",)), 3, "inc/dec")
    true('alarms_buffered{kind="y"} -1.5\n' in r.text(), "negative float")


def test_counter_never_down():
    r = Registry()
    c = r.counter("c_total", "x")
    raises(ValueError, "a counter only goes up", c.inc, (), -1)


def test_one_family_per_name():
    r = Registry()
    a = r.counter("x_total", "x", ("k",))
    eq(r.counter("x_total", "again", ("k",)) is a, True, "same declaration, same family")
    raises(ValueError, "metric name 'x_total' is already used by x_total", r.gauge, "x_total", "x", ("k",))
    raises(ValueError, "metric name 'x_total' is already used by x_total", r.counter, "x_total", "x", ("j",))
    r.histogram("h", "h")
    raises(ValueError, "metric name 'h_count' is already used by h", r.gauge, "h_count", "x")
    r.gauge("g_sum", "x")
    raises(ValueError, "metric name 'g_sum' is already used by g_sum", r.histogram, "g", "x")


def test_bad_names():
    r = Registry()
    for bad in ("", "9lives", "a-b", "a b", "é", None):
        raises(ValueError, "bad metric name %r" % (bad,), r.gauge, bad, "x")
    raises(ValueError, "bad label name 'a:b'", r.gauge, "g1", "x", ("a:b",))
    raises(ValueError, "label name '__x' is reserved", r.gauge, "g2", "x", ("__x",))
    raises(ValueError, "label name 'le' is reserved", r.histogram, "h1", "x", ("le",))
    raises(ValueError, "label names repeat: ('a', 'a')", r.gauge, "g3", "x", ("a", "a"))
    r2 = Registry((("tenant", "t"),))
    raises(ValueError, "label name 'tenant' is reserved", r2.gauge, "g", "x", ("tenant",))
    r2.gauge("g4", "x", ("route",))
    raises(ValueError, "label 'route' is already a label of g4", r2.set_const_labels, (("route", "x"),))
    raises(ValueError, "label name 'le' is reserved", Registry, (("le", "1"),))


def test_bad_histograms():
    r = Registry()
    raises(ValueError, "h: buckets must increase", r.histogram, "h", "x", (), (1, 1))
    raises(ValueError, "h: no buckets", r.histogram, "h", "x", (), ())
    raises(ValueError, "h: scale must be a power of ten", r.histogram, "h", "x", (), (1,), 60)
    r.histogram("h", "x", (), (1, float("inf")))
    eq(r.text().count('le="+Inf"'), 1, "+Inf given once")


def test_label_count():
    r = Registry()
    c = r.counter("c_total", "x", ("a", "b"))
    raises(ValueError, "c_total takes 2 label values, got 1", c.inc, ("x",))


def test_series_cap():
    # a label value from the outside (a raw path, say) cannot grow RAM without bound
    r = Registry(max_series=4)
    c = r.counter("paths_total", "x", ("path",))
    for i in range(100):
        c.inc(("/p%d" % i,))
    eq(r.text().count("paths_total{"), 4, "capped")
    eq(r.dropped, 96, "dropped counted")
    c.inc(("/p0",))
    eq(c.value(("/p0",)), 2, "existing series still count")


def test_collect_hook_and_streaming():
    r = Registry()
    g = r.gauge("uptime_seconds", "Uptime.")
    calls = []
    r.on_collect(lambda: (calls.append(1), g.set(len(calls))))
    h = r.histogram("h", "x", ("k",), (1,))
    for k in ("a", "b", "c"):
        h.observe(0, (k,))
    chunks = list(r.render())
    eq(len(calls), 1, "hook ran once")
    true("uptime_seconds 1\n" in "".join(chunks), "hook value rendered")
    # a chunk per family header, per gauge series and per histogram line (1 bucket, +Inf,
    # _sum, _count): no large block needed on a fragmented heap
    eq(len(chunks), 2 + 1 + 3 * 4, "a chunk per family header, series and histogram line")
    true(max(len(x) for x in chunks) < 200, "small chunks")
    eq(pm.CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8", "content type")
