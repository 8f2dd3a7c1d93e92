"""REST on the MicroPython unix build over loopback (127.0.0.1 only): requests/s and p50/p99
latency of the device API (tests/rest/device_api_server.py: python/iotlib/rest_api.py on
microdot with JWT auth, RBAC, rate limiting and metrics on, relays on the simulated
relaygpio board) against a bare microdot hello-world (bench/board_scripts/hello_microdot.py) in the same
run; the time from a POST sent to the relay pin changed; the peak RSS of the API process;
and, inside the device process, what each step of a request costs.

    .cache/venv/bin/python bench/rest_load.py [--smoke] [--client auto|wrk|python]
"""

import argparse
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import artifacts
from artifacts import BENCH, CACHE, PYTHON_SRC, ROOT, UNIX_BIN, need
from report import bar_chart, table, write

sys.path.insert(0, str(ROOT))
from reference_platform.process import free_port, stop_process  # noqa: E402
from reference_platform.security import sign_hs256  # noqa: E402

MICRODOT = Path(os.environ.get("BENCH_MICRODOT", CACHE / "microdot" / "2.7.0"))
LAUNCHER = ROOT / "tests" / "rest" / "device_api_server.py"
HELLO = BENCH / "board_scripts" / "hello_microdot.py"

GOAL = 0.60             # the full stack keeps at least this share of bare microdot's requests/s
CONNECTIONS = 4
RATE = 100_000          # writes/s per address and per subject (reads get 4x): never reached
KEY = "bench-rest-key-0123456789abcdef0123"
ISSUER, AUDIENCE = "https://platform.bench", "device-bench"
TENANT, NAMESPACE, SUBJECT, ROLE = "bench", "lab", "bench-client", "operator"
RELAYS = 8              # r1..r8 on GPIO 2..9, no minimum switch interval, no interlock
SWITCHED, SWITCHED_PIN = "r1", "2"
BODIES = ('{"state": "HIGH"}', '{"state": "LOW"}')

# key, label, server, method, path, token, alternating bodies
CASES = [
    ("bare_get", "bare microdot: GET /", "hello", "GET", "/", False, False),
    ("api_get", "device API: GET /gpio", "api", "GET", "/gpio", True, False),
    ("bare_post", "bare microdot: POST / (same body)", "hello", "POST", "/", False, True),
    ("api_post", f"device API: POST /gpio/{SWITCHED}", "api", "POST", f"/gpio/{SWITCHED}",
     True, True),
    ("api_health", "device API: GET /health (no token)", "api", "GET", "/health", False, False),
    ("api_get_one", f"device API: GET /gpio/{SWITCHED}", "api", "GET", f"/gpio/{SWITCHED}",
     True, False),
]
GOALS = [("api_get", "bare_get"), ("api_post", "bare_post")]
# on the wire, one check added per row: (case, what it adds over the row before)
LADDER = [("bare_get", "microdot, hello-world"),
          ("api_health", "API app: bounded reader, request timeout, address limit, metrics"),
          ("api_get_one", "+ Authorization header, JWT, tenancy, subject limit, RBAC"),
          ("api_get", "+ 8 relays listed (RBAC per relay, bigger JSON)"),
          ("bare_post", "bare microdot, POST with a body"),
          ("api_post", "full POST: token, RBAC, body checks, switch, audit line")]


# ---- token and settings ----

def make_token(lifetime_s=3600):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "tenant": TENANT,
              "namespace": NAMESPACE, "role": ROLE, "iat": now, "exp": now + lifetime_s}
    return sign_hs256(KEY.encode(), claims)


def device_config():
    return {"relays": {f"r{i}": {"pin": i + 1} for i in range(1, RELAYS + 1)},
            "rate_limits": {"default": {"requests": RATE, "window_s": 1}}}


def settings(port, control_port, data_dir):
    return {"port": port, "control_port": control_port, "data_dir": str(data_dir),
            "device": device_config(),
            "jwt": {"key": KEY, "issuer": ISSUER, "audience": AUDIENCE},
            "tenant": TENANT, "namespace": NAMESPACE, "synced": True, "missing": []}


def mp_env():
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(PYTHON_SRC), str(MICRODOT), ".frozen"])
    return env


# ---- HTTP over raw sockets (microdot answers HTTP/1.0 and closes) ----

def raw_request(method, path, token=None, body=None):
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        h.append("Authorization: Bearer " + token)
    if body is not None:
        h += ["Content-Type: application/json", f"Content-Length: {len(body.encode())}"]
    return ("\r\n".join(h) + "\r\n\r\n" + (body or "")).encode()


def exchange(port, data, timeout=5):
    """Sends one request, reads the answer to EOF -> (status, body, t_sent, t_answered)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        t0 = time.perf_counter()
        s.sendall(data)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
        t1 = time.perf_counter()
    out = b"".join(chunks)
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(None, 2)[1]) if out.startswith(b"HTTP/") else None
    return status, body, t0, t1


# ---- the servers ----

class Server:
    def __init__(self, name, cmd, log_path, port):
        self.name, self.port = name, port
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=mp_env())

    def wait_ready(self, port, probe, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            try:
                if exchange(port, probe, 2)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.output()}")
            time.sleep(0.05)

    def memory(self):
        """VmHWM (peak RSS) and VmRSS in kB, from /proc/<pid>/status."""
        out = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0])
        except OSError:
            pass
        return out

    def output(self):
        self.log.flush()
        return Path(self.log_path).read_text(errors="replace")[-2000:]

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.log.close()


# ---- load generators: one slice of a case -> {requests, duration_us, errors, hist} ----

WRK_LUA = """
local bodies = {%(bodies)s}
local n = 0
wrk.method = "%(method)s"
%(headers)s
if #bodies > 0 then
  request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, bodies[(n - 1) %% #bodies + 1])
  end
end
done = function(summary, latency, requests)
  -- 1000 evenly spaced quantiles: slices of a case merge as a pooled sample
  local q = {}
  if summary.requests > 0 then
    for i = 0, 999 do q[#q + 1] = latency:percentile((i + 0.5) / 10) end
  end
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "max_us": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"quantiles": [%%s]}\\n', summary.requests, summary.duration, latency.max, e.connect,
    e.read, e.write, e.status, e.timeout, table.concat(q, ",")))
end
"""


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_slice(case, port, token, seconds, conns, tmp):
    key, _, _, method, path, auth, alternate = case
    headers = []
    if auth:
        headers.append(f'wrk.headers["Authorization"] = {lua_str("Bearer " + token)}')
    if alternate:
        headers.append('wrk.headers["Content-Type"] = "application/json"')
    script = Path(tmp) / f"{key}.lua"
    script.write_text(WRK_LUA % {"bodies": ", ".join(lua_str(b) for b in BODIES)
                                 if alternate else "",
                                 "method": method, "headers": "\n".join(headers)})
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "2s", "-s", str(script),
           f"http://127.0.0.1:{port}{path}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            d = json.loads(line[7:])
            q = d.pop("quantiles")
            d["hist"] = {}
            for us in q:
                d["hist"][int(us)] = d["hist"].get(int(us), 0) + d["requests"] / len(q)
            return d
    raise RuntimeError(f"wrk gave no result: {r.stdout[-500:]} {r.stderr[-500:]}")


def python_slice(case, port, token, seconds, conns, tmp):
    # one connection per request, as microdot closes each; bounded by time
    _, _, _, method, path, auth, alternate = case
    tok = token if auth else None
    raws = ([raw_request(method, path, tok, b) for b in BODIES] if alternate
            else [raw_request(method, path, tok)])
    counter = itertools.count()
    lock = threading.Lock()
    hist, errors = {}, {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    t_start = time.perf_counter()
    end = t_start + seconds

    def worker():
        mine = {}
        while time.perf_counter() < end:
            data = raws[next(counter) % len(raws)]
            try:
                st, _, t0, t1 = exchange(port, data, 2)
            except socket.timeout:
                with lock:
                    errors["timeout"] += 1
                continue
            except OSError:
                with lock:
                    errors["read"] += 1
                continue
            us = int((t1 - t0) * 1e6)
            mine[us] = mine.get(us, 0) + 1
            if st is None or not 200 <= st < 400:
                with lock:
                    errors["status"] += 1
        with lock:
            for u, c in mine.items():
                hist[u] = hist.get(u, 0) + c

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    duration = time.perf_counter() - t_start
    return {"requests": sum(hist.values()), "duration_us": int(duration * 1e6),
            "max_us": max(hist, default=0), "errors": errors, "hist": hist}


def percentile(hist, p):
    total = sum(hist.values())
    if not total:
        return None
    want, seen = p / 100 * total, 0
    for us in sorted(hist):
        seen += hist[us]
        if seen >= want:
            return us
    return max(hist)


def merge(slices):
    hist, errors = {}, {}
    for s in slices:
        for u, c in s["hist"].items():
            hist[u] = hist.get(u, 0) + c
        for k, v in s["errors"].items():
            errors[k] = errors.get(k, 0) + v
    n = sum(s["requests"] for s in slices)
    dur = sum(s["duration_us"] for s in slices) / 1e6
    lat_n = sum(hist.values())
    return {"requests": n, "seconds": dur, "rps": n / dur if dur else None,
            "us_per_request": dur * 1e6 / n if n else None,
            "p50_ms": percentile(hist, 50) / 1000 if lat_n else None,
            "p99_ms": percentile(hist, 99) / 1000 if lat_n else None,
            "max_ms": max(s["max_us"] for s in slices) / 1000 if lat_n else None,
            "errors": errors, "slices_rps": [s["requests"] * 1e6 / s["duration_us"]
                                             for s in slices if s["duration_us"]]}


# ---- send -> pin changed ----

def pin_latency(api_port, control_port, token, switches, limit_s):
    """Sequential POSTs (HIGH, LOW, ...) on r1 while a poller reads the pin level through
    the launcher's window (GET /board on the control port) back to back. For each POST:
    sent -> answer; sent -> first window answer showing the new level; the earlier of the
    two bounds sent -> pin changed (the relay switches before the answer is written, and a
    window answer showing the new level was read after the change). Every window read sent
    after a POST's answer (and answered before the next POST) must show the new level."""
    polls = []              # (t_sent, t_answered, level)
    stop = threading.Event()
    board = raw_request("GET", "/board")
    errors = []

    def poller():
        while not stop.is_set():
            try:
                st, body, t0, t1 = exchange(control_port, board, 2)
                polls.append((t0, t1, json.loads(body)["pins"][SWITCHED_PIN]))
            except (OSError, ValueError, KeyError) as e:
                errors.append(repr(e))
                time.sleep(0.01)

    def seen_since(t, level=None):
        return [p for p in polls[-50:] if p[0] > t and (level is None or p[2] == level)]

    before = json.loads(exchange(control_port, board)[1])["switches"][0]
    th = threading.Thread(target=poller, daemon=True)
    th.start()
    posts = []
    deadline = time.monotonic() + limit_s
    try:
        level = None
        while level is None and time.monotonic() < deadline:
            level = polls[-1][2] if polls else None
            time.sleep(0.001)
        for k in range(switches):
            if time.monotonic() > deadline:
                break
            # the level is settled and the window has shown it twice since the last answer
            t = posts[-1][1] if posts else 0
            while len(seen_since(t, level)) < 2 and time.monotonic() < deadline:
                time.sleep(0.0005)
            new = 0 if level else 1
            st, _, t0, t1 = exchange(api_port, raw_request(
                "POST", f"/gpio/{SWITCHED}", token, BODIES[0 if new else 1]))
            if st != 200:
                raise RuntimeError(f"POST /gpio/{SWITCHED} answered {st} during the pin test")
            posts.append((t0, t1, new))
            while not seen_since(t0, new) and time.monotonic() < deadline:
                time.sleep(0.0002)
            level = new
        t_end = time.perf_counter()
        while not seen_since(t_end) and time.monotonic() < deadline + 2:
            time.sleep(0.001)
    finally:
        stop.set()
        th.join(5)
    after = json.loads(exchange(control_port, board)[1])["switches"][0]

    answer, report, upper, late = [], [], [], 0
    polls.sort()
    for i, (t0, t1, new) in enumerate(posts):
        nxt = posts[i + 1][0] if i + 1 < len(posts) else float("inf")
        first_new = next((p for p in polls if p[1] > t0 and p[2] == new), None)
        if first_new is None:
            continue
        answer.append(t1 - t0)
        report.append(first_new[1] - t0)
        upper.append(min(t1, first_new[1]) - t0)
        # read after the answer, answered before the next POST was sent
        late += sum(1 for p in polls if p[0] > t1 and p[1] < nxt and p[2] != new)
    rt = [p[1] - p[0] for p in polls]

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else None

    return {"switches": len(posts), "observed": len(report),
            "switch_count_delta": after - before, "window_reads": len(polls),
            "window_errors": errors[:5], "old_level_after_answer": late,
            "answer_ms": {"p50": pct(answer, 50), "p99": pct(answer, 99)},
            "window_reports_ms": {"p50": pct(report, 50), "p99": pct(report, 99)},
            "changed_by_ms": {"p50": pct(upper, 50), "p99": pct(upper, 99)},
            "window_round_trip_ms": {"p50": pct(rt, 50), "p99": pct(rt, 99)}}


# ---- where the time goes, inside the device process (no sockets) ----

PROFILE_MPY = BENCH / "board_scripts" / "rest_profile.py"

# key, label, part of GET /gpio, part of POST /gpio/r1
STEPS = [
    ("limit_address", "rate limit, by address", True, True),
    ("bearer", "Authorization header -> token", True, True),
    ("jwt_validate", "JWT validate: b64url, 2 JSON parses, HMAC-SHA256, claims", True, True),
    ("sha256_x2", "  of which: the two SHA-256 passes (C)", True, True),
    ("tenancy", "tenancy check", True, True),
    ("limit_subject", "rate limit, by token subject", True, True),
    ("rbac", "RBAC decision (once per relay for GET /gpio)", True, True),
    ("list_relays", "GET /gpio: 8 relay documents", True, False),
    ("dumps_list", "GET /gpio: json.dumps of the list", True, False),
    ("strict_json", "POST: strict JSON check of the body", False, True),
    ("loads_body", "POST: json.loads of the body", False, True),
    ("relay_set_audit", "POST: relay switch, audit line included", False, True),
    ("audit_line", "  of which: the audit line (file append)", False, True),
    ("relay_doc", "POST: answer document + json.dumps", False, True),
    ("metrics_observe", "metrics: request histogram observe", True, True),
]
# what could go from a request, and the profile figures it would save (bench/README.md)
REMEDIES = [
    ("cache of verified tokens (time claims still checked)", ("jwt_validate",),
     ("api_get", "api_post")),
    ("GET /gpio JSON kept until a relay changes", ("list_relays", "dumps_list"), ("api_get",)),
    ("audit lines buffered, not appended one by one", ("audit_line",), ("api_post",)),
    ("no asyncio.wait_for task per request", ("await_wait_for",), ("api_get", "api_post")),
]
WHOLE = [
    ("req_bare_get", "bare microdot GET /"),
    ("req_bare_get_auth", "bare microdot GET / with the Authorization header"),
    ("req_bare_post", "bare microdot POST / with the body"),
    ("req_api_health", "device API GET /health"),
    ("req_api_get_one", f"device API GET /gpio/{SWITCHED}"),
    ("req_api_get", "device API GET /gpio"),
    ("req_api_post", f"device API POST /gpio/{SWITCHED}"),
]


def profile(token, tmp, smoke):
    path = Path(tmp) / "profile.json"
    path.write_text(json.dumps({
        "n": 50 if smoke else 200, "reps": 2 if smoke else 11,
        "data_dir": str(Path(tmp) / "profile-data"), "device": device_config(),
        "jwt": {"key": KEY, "issuer": ISSUER, "audience": AUDIENCE}, "token": token,
        "tenant": TENANT, "namespace": NAMESPACE, "bodies": list(BODIES)}))
    r = subprocess.run([str(UNIX_BIN), str(PROFILE_MPY), str(path)], cwd=ROOT, env=mp_env(),
                       capture_output=True, text=True, timeout=300)
    for line in r.stdout.splitlines():
        if line.startswith("PROFILE "):
            return json.loads(line[8:])
    raise RuntimeError(f"profile run failed: {r.stdout[-800:]} {r.stderr[-800:]}")


# ---- main ----

def pick_client(name):
    if name == "auto":
        name = "wrk" if shutil.which("wrk") else "python"
    if name == "wrk" and not shutil.which("wrk"):
        raise artifacts.Missing("wrk is not installed (Debian package wrk)")
    return name, wrk_slice if name == "wrk" else python_slice


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="about 1 s per case")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                    help="load generator (auto: wrk when installed)")
    ap.add_argument("--connections", type=int, default=CONNECTIONS)
    args = ap.parse_args(argv)
    need(UNIX_BIN, "unix")
    need(MICRODOT / "microdot" / "__init__.py", "deps")
    need(LAUNCHER, "(a checkout with tests/rest)")
    client, run_slice = pick_client(args.client)
    slices, slice_s = (1, 1) if args.smoke else (5, 1)
    conns = args.connections
    token = make_token()
    print(f"client: {client}, {conns} connections, {slices} x {slice_s} s per case "
          "(slices of the cases interleaved)", flush=True)

    with tempfile.TemporaryDirectory(prefix="rest_load-") as tmp:
        tmp = Path(tmp)
        hello_port, api_port, ctl_port = free_port(), free_port(), free_port()
        spath = tmp / "settings.json"
        spath.write_text(json.dumps(settings(api_port, ctl_port, tmp / "data")))
        servers = {}
        try:
            servers["hello"] = Server("hello_microdot",
                                      [str(UNIX_BIN), str(HELLO), str(hello_port)],
                                      tmp / "hello.log", hello_port)
            servers["api"] = Server("device API", [str(UNIX_BIN), str(LAUNCHER), str(spath)],
                                    tmp / "api.log", api_port)
            servers["hello"].wait_ready(hello_port, raw_request("GET", "/"))
            servers["api"].wait_ready(ctl_port, raw_request("GET", "/board"))
            ports = {"hello": hello_port, "api": api_port}

            # warm-up, and a check that every case answers 200 before it is timed
            for key, label, srv, method, path, auth, alternate in CASES:
                for i in range(20):
                    body = BODIES[i % 2] if alternate else None
                    st = exchange(ports[srv], raw_request(method, path, token if auth else None,
                                                          body))[0]
                    if st != 200:
                        raise RuntimeError(f"{label} answered {st}, not 200")

            raw = {c[0]: [] for c in CASES}
            for _ in range(slices):
                for case in CASES:
                    raw[case[0]].append(run_slice(case, ports[case[2]], token, slice_s,
                                                  conns, tmp))
            mem_load = {k: s.memory() for k, s in servers.items()}
            print("load done; send -> pin changed ...", flush=True)
            pins = pin_latency(api_port, ctl_port, token, 20 if args.smoke else 200,
                               10 if args.smoke else 30)
            mem = {k: s.memory() for k, s in servers.items()}
        except Exception:
            for s in servers.values():
                print(f"--- {s.name} log:\n{s.output()}", file=sys.stderr)
            raise
        finally:
            for s in servers.values():
                s.stop()
        print("where the time goes (in the device process) ...", flush=True)
        prof = profile(token, tmp, args.smoke)

    res = {}
    for key, label, srv, method, path, auth, alternate in CASES:
        res[key] = {"label": label, "server": srv, "method": method, "path": path,
                    "token": auth, **merge(raw[key])}
    base = {"GET": res["bare_get"]["rps"], "POST": res["bare_post"]["rps"]}
    rows = []
    for key, r in res.items():
        r["vs_bare"] = r["rps"] / base[r["method"]] if r["rps"] and base[r["method"]] else None
        e = r["errors"]
        rows.append([r["label"], r["requests"], r["rps"], f"{100 * r['vs_bare']:.0f}%",
                     r["p50_ms"], r["p99_ms"], r["us_per_request"], e.get("status", 0),
                     sum(v for k, v in e.items() if k != "status")])
    tables = [table(f"REST over loopback, unix port: {client}, {conns} connections, "
                    f"{slices * slice_s} s per case",
                    ["case", "requests", "req/s", "vs bare (same method)", "p50 ms", "p99 ms",
                     "us per request", "non-2xx", "socket errors"], rows)]

    goals, grows = {}, []
    for key, bkey in GOALS:
        ratio = res[key]["vs_bare"]
        met = ratio is not None and ratio >= GOAL
        need_us = res[bkey]["us_per_request"] / GOAL
        # the same ratio round by round (a slice of each, back to back): the spread
        rounds = [a / b for a, b in zip(res[key]["slices_rps"], res[bkey]["slices_rps"])]
        goals[key] = {"goal": f">= {GOAL:.0%} of {res[bkey]['label']}", "ratio": ratio,
                      "rounds": rounds, "met": met,
                      "us_per_request": res[key]["us_per_request"], "budget_us": need_us,
                      "to_cut_us": max(0.0, res[key]["us_per_request"] - need_us)}
        spread = (f" (rounds {100 * min(rounds):.0f}-{100 * max(rounds):.0f}%)"
                  if len(rounds) > 1 else "")
        grows.append([f"{res[key]['label']}: >= {GOAL:.0%} of bare microdot's req/s",
                      f"{100 * ratio:.0f}%{spread}", "met" if met else "MISSED"])
    tables.append(table("Goal", ["goal", "figure", "result"], grows))

    lrows, prev = [], None
    for key, what in LADDER:
        us = res[key]["us_per_request"]
        first = key.startswith("bare")
        lrows.append([res[key]["label"], what, us, None if first or prev is None else us - prev])
        prev = us
    tables.append(table("On the wire, check by check (server time per request = 1 / req/s)",
                        ["case", "adds", "us per request", "added us"], lrows))

    p = pins
    prow = [["POST sent -> answer received", p["answer_ms"]["p50"], p["answer_ms"]["p99"]],
            ["POST sent -> window first shows the new level", p["window_reports_ms"]["p50"],
             p["window_reports_ms"]["p99"]],
            ["POST sent -> pin changed, upper bound (earlier of the two)",
             p["changed_by_ms"]["p50"], p["changed_by_ms"]["p99"]],
            ["window round trip (GET /board)", p["window_round_trip_ms"]["p50"],
             p["window_round_trip_ms"]["p99"]]]
    tables.append(table(f"Send -> pin changed: {p['switches']} POSTs one at a time, "
                        "the window polled back to back", ["measure", "p50 ms", "p99 ms"], prow))
    pin_note = (f"{p['observed']}/{p['switches']} switches seen in the window; relay switch "
                f"count +{p['switch_count_delta']}; window reads sent after an answer that "
                f"still showed the old level: {p['old_level_after_answer']} (the pin has "
                "changed before the POST answers)")
    print(pin_note + "\n")

    mrows = [[f"{'device API' if k == 'api' else 'bare microdot'} process",
              m.get("VmHWM"), mem_load[k].get("VmRSS"), m.get("VmRSS")] for k, m in mem.items()]
    tables.append(table("Memory of the unix processes (kB, /proc/<pid>/status)",
                        ["process", "peak RSS (VmHWM)", "RSS after load", "RSS at the end"],
                        mrows))

    srows = [[label, prof.get(k), "yes" if g else "", "yes" if po else ""]
             for k, label, g, po in STEPS]
    tables.append(table("Where the time goes: one step, in the device process, no sockets "
                        f"(best of runs)", ["step", "us per call", "in GET /gpio",
                                            f"in POST /gpio/{SWITCHED}"], srows))
    wrows = [[label, prof.get(k)] for k, label in WHOLE]
    wrows.append(["asyncio.wait_for around a request (API's timeout), cost",
                  prof["await_wait_for"] - prof["await_plain"]])
    tables.append(table("Whole requests through handle_request, no sockets",
                        ["request", "us per request"], wrows))

    notes = [
        f"Rate limits set to {RATE:,} writes/s and {4 * RATE:,} reads/s per address and per "
        "token subject, far above what the bench sends (no 429): the bench measures the cost "
        "of the checks, not the limiter refusing.",
        f"{RELAYS} relays, none with a minimum switch interval or interlock (no 409); POSTs "
        f"alternate HIGH/LOW on {SWITCHED}; the token is a valid HS256 JWT with role {ROLE}.",
        "microdot answers HTTP/1.0 and closes: every request opens a connection. Latency is "
        "from the request written to the answer read, connect not included; req/s includes "
        "the connects.",
        "Send -> pin changed: the relay switches inside the POST handler, before the answer "
        "is written; the window (launcher's control port, same process and event loop) is "
        "polled back to back by a second client: 'window first shows' is one window round "
        "trip coarse; the upper bound is the earlier of it and the answer.",
    ]
    if client == "python":
        notes.append("wrk is not installed: the CPython client (threads) may cap the bare "
                     "baseline and so flatter the ratio; install wrk for the reference figures.")
    for key, g in goals.items():
        if not g["met"]:
            cuts = [(label, sum(prof[k] for k in keys)) for label, keys, cases in REMEDIES
                    if key in cases]
            g["remedies_us"] = dict(cuts)
            notes.append(f"{res[key]['label']}: {g['us_per_request']:.0f} us per request now, "
                         f"{GOAL:.0%} of bare needs <= {g['budget_us']:.0f} us: "
                         f"{g['to_cut_us']:.0f} us to cut. In-process cost of what could go: "
                         + "; ".join(f"{label} ~{us:.0f} us" for label, us in cuts)
                         + f" (sum ~{sum(us for _, us in cuts):.0f} us; on the wire the "
                         "savings differ, see bench/README.md).")
    for n in notes:
        print("- " + n)

    write("rest_load", {
        "smoke": args.smoke, "client": client, "connections": conns, "slices": slices,
        "slice_s": slice_s, "unix": str(UNIX_BIN), "microdot": str(MICRODOT),
        "device": device_config(), "results": res, "goals": goals, "pin_latency": pins,
        "memory_kb": {"after_load": mem_load, "end": mem}, "profile_us": prof,
        "notes": notes}, tables + ["\n".join("- " + n for n in notes) + "\n"])
    bar_chart("rest_load", "REST over loopback, unix port: requests/s", "requests / s",
              [r["label"] for r in res.values()], {"req/s": [r["rps"] for r in res.values()]},
              lines=[(GOAL * base["GET"], f"{GOAL:.0%} of bare GET /"),
                     (GOAL * base["POST"], f"{GOAL:.0%} of bare POST /")])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except artifacts.Missing as e:
        print(f"rest_load: {e}", file=sys.stderr)
        sys.exit(2)
