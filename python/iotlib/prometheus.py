# Prometheus text exposition, format 0.0.4, for GET /metrics. Counters, gauges
# and histograms with labels; render() yields one series at a time so a scrape
# never holds the whole page in RAM.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# request latency buckets in ms (rendered in seconds)
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_INF = float("inf")
_HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def escape_label(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(v):
    t = type(v)
    if t is int:
        return str(v)
    if t is bool:
        return "1" if v else "0"
    if v != v:
        return "NaN"
    if v == _INF:
        return "+Inf"
    if v == -_INF:
        return "-Inf"
    return repr(float(v))


def _format_scaled(v, scale, digits):
    # v / scale, exact for ints: 5 ms -> "0.005", not a rounded float
    if scale == 1 or type(v) is not int:
        return format_value(v / scale if scale != 1 else v)
    q, r = divmod(abs(v), scale)
    frac = ("%0" + str(digits) + "d") % r
    frac = frac.rstrip("0") or "0"
    return "%s%d.%s" % ("-" if v < 0 else "", q, frac)


def _check_name(name, what, first_colon=True):
    ok = isinstance(name, str) and name != ""
    if ok:
        for i, c in enumerate(name):
            if not ("a" <= c <= "z" or "A" <= c <= "Z" or c == "_" or (c == ":" and first_colon)
                    or (i > 0 and "0" <= c <= "9")):
                ok = False
                break
    if not ok:
        raise ValueError("bad %s name %r" % (what, name))


def _label_names(names, reserved=()):
    names = tuple(names)
    for n in names:
        _check_name(n, "label", False)
        if n.startswith("__") or n in reserved:
            raise ValueError("label name %r is reserved" % n)
    if len(set(names)) != len(names):
        raise ValueError("label names repeat: %r" % (names,))
    return names


class _Family:
    kind = None

    def __init__(self, registry, name, help_text, labels):
        self._reg = registry
        self.name = name
        self.help = help_text
        self.labels = labels
        self._series = {}   # label values tuple -> value (or histogram counts)
        if not labels:
            self._series[()] = self._zero()

    def _zero(self):
        return 0

    def _key(self, values):
        if type(values) is not tuple:
            values = tuple(values)
        if len(values) != len(self.labels):
            raise ValueError("%s takes %d label values, got %d" % (self.name, len(self.labels), len(values)))
        for v in values:
            if type(v) is not str:  # 200 and "200" must be one series
                return tuple(str(x) for x in values)
        return values

    def _slot(self, values):
        # the key of an existing series or a new one; None when the series cap is hit
        key = self._key(values)
        if key not in self._series:
            if len(self._series) >= self._reg.max_series:
                self._reg.dropped += 1
                return None
            self._series[key] = self._zero()
        return key

    def _label_text(self, key, extra=""):
        parts = [self._reg._const] if self._reg._const else []
        for n, v in zip(self.labels, key):
            parts.append('%s="%s"' % (n, escape_label(v)))
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def _lines(self, key, value):
        return "%s%s %s\n" % (self.name, self._label_text(key), format_value(value))

    def render(self):
        yield "# HELP %s %s\n# TYPE %s %s\n" % (self.name, escape_help(self.help), self.name, self.kind)
        for key in sorted(self._series):
            lines = self._lines(key, self._series[key])
            if type(lines) is list:  # a histogram: line by line, no 1.5 KB block needed
                for line in lines:
                    yield line
            else:
                yield lines


class Counter(_Family):
    kind = "counter"

    def inc(self, labels=(), n=1):
        if n < 0:
            raise ValueError("a counter only goes up")
        key = self._slot(labels)
        if key is not None:
            self._series[key] += n

    def value(self, labels=()):
        return self._series.get(self._key(labels), 0)


class Gauge(Counter):
    kind = "gauge"

    def inc(self, labels=(), n=1):
        key = self._slot(labels)
        if key is not None:
            self._series[key] += n

    def dec(self, labels=(), n=1):
        self.inc(labels, -n)

    def set(self, value, labels=()):
        key = self._slot(labels)
        if key is not None:
            self._series[key] = value


class Histogram(_Family):
    # buckets and observed values are in units of 1/scale (scale a power of ten),
    # so latency can stay in integer ms and render in seconds
    kind = "histogram"

    def __init__(self, registry, name, help_text, labels, buckets, scale=1):
        b = tuple(buckets)
        if not b:
            raise ValueError("%s: no buckets" % name)
        for i in range(1, len(b)):
            if not b[i - 1] < b[i]:
                raise ValueError("%s: buckets must increase" % name)
        if b[-1] == _INF:
            b = b[:-1]  # +Inf is always there
        digits = len(str(scale)) - 1
        if type(scale) is not int or scale < 1 or str(scale) != "1" + "0" * digits:
            raise ValueError("%s: scale must be a power of ten" % name)
        self.buckets = b
        self.scale = scale
        self._digits = digits
        _Family.__init__(self, registry, name, help_text, labels)

    def _zero(self):
        return [0] * (len(self.buckets) + 2)  # per-bucket counts, +Inf count, sum

    def observe(self, value, labels=()):
        key = self._slot(labels)
        if key is None:
            return
        s = self._series[key]
        b = self.buckets
        i = 0
        n = len(b)
        while i < n and value > b[i]:
            i += 1
        s[i] += 1
        s[-1] += value

    def count(self, labels=()):
        s = self._series.get(self._key(labels))
        return sum(s[:-1]) if s else 0

    def _lines(self, key, s):
        out = []
        name = self.name
        total = 0
        for i, le in enumerate(self.buckets):
            total += s[i]
            le_text = 'le="%s"' % _format_scaled(le, self.scale, self._digits)
            out.append("%s_bucket%s %d\n" % (name, self._label_text(key, le_text), total))
        total += s[-2]
        out.append('%s_bucket%s %d\n' % (name, self._label_text(key, 'le="+Inf"'), total))
        labels = self._label_text(key)
        out.append("%s_sum%s %s\n" % (name, labels, _format_scaled(s[-1], self.scale, self._digits)))
        out.append("%s_count%s %d\n" % (name, labels, total))
        return out


class Registry:
    # const_labels: ((name, value), ...) put on every sample, e.g. tenant and namespace
    def __init__(self, const_labels=(), max_series=64):
        self.max_series = max_series
        self.dropped = 0   # label sets refused by the max_series cap
        self._families = []
        self._names = {}   # every sample name in use -> its family
        self._hooks = []
        self._const = ""
        self._const_names = ()
        self.set_const_labels(const_labels)

    def set_const_labels(self, pairs):
        pairs = tuple(pairs)
        names = _label_names((p[0] for p in pairs), ("le",))
        for f in self._families:
            for n in f.labels:
                if n in names:
                    raise ValueError("label %r is already a label of %s" % (n, f.name))
        self._const_names = names
        self._const = ",".join('%s="%s"' % (n, escape_label(str(v))) for n, v in pairs)

    def _add(self, cls, name, help_text, labels, *args):
        _check_name(name, "metric")
        reserved = self._const_names + (("le",) if cls is Histogram else ())
        labels = _label_names(labels, reserved)
        f = self._names.get(name)
        if f is not None:
            if type(f) is cls and f.name == name and f.labels == labels:
                return f  # one family per name: the same declaration gets the same object
            raise ValueError("metric name %r is already used by %s" % (name, f.name))
        sample_names = [name + s for s in _HIST_SUFFIXES] if cls is Histogram else [name]
        for s in sample_names:
            if s in self._names:
                raise ValueError("metric name %r is already used by %s" % (s, self._names[s].name))
        f = cls(self, name, help_text, labels, *args)
        self._families.append(f)
        self._names[name] = f
        for s in sample_names:
            self._names[s] = f
        return f

    def counter(self, name, help_text, labels=()):
        return self._add(Counter, name, help_text, labels)

    def gauge(self, name, help_text, labels=()):
        return self._add(Gauge, name, help_text, labels)

    def histogram(self, name, help_text, labels=(), buckets=LATENCY_BUCKETS_MS, scale=1):
        return self._add(Histogram, name, help_text, labels, buckets, scale)

    def on_collect(self, fn):
        # fn() runs before each render: the place to set gauges such as heap free
        self._hooks.append(fn)

    def render(self):
        for fn in self._hooks:
            fn()
        for f in self._families:
            for chunk in f.render():
                yield chunk

    def text(self):
        return "".join(self.render())


class RequestMetrics:
    # request latency by route template (not the raw path: bounded label values)
    # and status; the histogram's _count is the request count
    def __init__(self, registry, name="http_request_duration_seconds", buckets_ms=LATENCY_BUCKETS_MS):
        self.histogram = registry.histogram(
            name, "Time to answer a request, by route and status.", ("route", "status"),
            buckets_ms, 1000)

    def observe(self, route, status, ms):
        # ms: time.ticks_diff(time.ticks_ms(), start)
        self.histogram.observe(ms, (route, str(status)))
