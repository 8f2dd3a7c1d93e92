"""Time sync, alarms and OTA end to end: the reference platform, the NTP responder and the
MicroPython unix build running scenario scripts, all real processes on 127.0.0.1. A small
proxy between device and platform drops an answer, alters image bytes in transit or rewrites
the OTA offer (a compromised platform or path: relabelled, another tenant's, replayed, a
foreign image URL)."""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from platform_proc import ROOT, PlatformProc, free_port, release_tool

MPY = os.path.join(ROOT, ".cache", "build", "unix", "micropython")
SCENARIOS = os.path.join(ROOT, "tests", "e2e", "scenarios")
MPY_PATH = "%s:%s:.frozen" % (SCENARIOS, os.path.join(ROOT, "python"))
RESET_EXIT = 3

pytestmark = pytest.mark.skipif(not os.path.exists(MPY), reason="no unix build (make unix)")


# ---- processes ----

class Scenario:
    """One run of a scenario script on the unix build, with its settings file and output."""

    def __init__(self, tmp_path, name, settings):
        self.ctrl_dir = str(tmp_path)
        settings = dict(settings, ctrl_dir=self.ctrl_dir)
        self.settings_path = os.path.join(self.ctrl_dir,
                                          "%s-%d.json" % (name, time.monotonic_ns()))
        with open(self.settings_path, "w") as f:
            json.dump(settings, f)
        self.args = [MPY, os.path.join(SCENARIOS, name + "_scenario.py"), self.settings_path]
        self.env = dict(os.environ, MICROPYPATH=MPY_PATH)
        self.proc = None
        self.out = ""

    def run(self, timeout=30):
        p = subprocess.run(self.args, cwd=ROOT, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        self.out = p.stdout + p.stderr
        return p.returncode

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        return self

    def wait(self, timeout=30):
        try:
            self.out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, _ = self.proc.communicate()
            raise
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def mark(self, name):
        with open(os.path.join(self.ctrl_dir, name), "w") as f:
            f.write("1")

    def wait_mark(self, name, timeout=20):
        path = os.path.join(self.ctrl_dir, name)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.proc is not None and self.proc.poll() is not None:
                self.wait()
                raise AssertionError("scenario ended before %s:\n%s" % (name, self.out))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("no %s within %d s:\n%s" % (name, timeout, self.out))
            time.sleep(0.02)

    def results(self):
        out = {}
        for line in self.out.splitlines():
            if line.startswith("RESULT "):
                doc = json.loads(line[7:])
                out[doc["event"]] = doc
        return out


class NTPResponder:
    def __init__(self, offset_s, lifetime_s=60, hostile=None):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tools", "ntp_responder.py"), "--port", "0",
             "--offset", str(offset_s), "--lifetime", str(lifetime_s)]
            + (["--hostile", hostile] if hostile else []),
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"ntp responder listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        self.server = "127.0.0.1:" + m.group(1)

    def stop(self):
        self.proc.terminate()
        tail = self.proc.communicate(timeout=10)[0]
        m = re.search(r"answered (\d+) ignored (\d+)", tail)
        return int(m.group(1)) if m else None


class FaultProxy:
    """HTTP/1.1 proxy for one-request connections (the device sends Connection: close).

    drop_answer(prefix): forward the next request whose path starts with prefix, then close
    the client's connection without the answer (the platform did the work; the device cannot
    know). tamper(prefix): flip one byte in the body of answers to such requests."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.requests = []        # (method, path, status or None)
        self.dropped = []
        self._drop = None
        self._tamper = None
        self._rewrite = None
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def drop_answer(self, prefix):
        with self._lock:
            self._drop = prefix

    def tamper(self, prefix):
        with self._lock:
            self._tamper = prefix

    def rewrite(self, prefix, fn=None):
        """Answers to requests whose path starts with prefix get body fn(body) (JSON: a dict
        in, a dict out): a compromised platform or someone on the path."""
        with self._lock:
            self._rewrite = (prefix, fn) if fn else None

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        need = int(m.group(1)) if m else 0
        while len(body) < need:
            chunk = conn.recv(4096)
            if not chunk:
                break
            body += chunk
        return head, body

    def _handle(self, conn):
        conn.settimeout(10)
        try:
            req = self._read_request(conn)
            if req is None:
                return
            head, body = req
            method, path = head.split(b" ")[:2]
            method, path = method.decode(), path.decode()
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            except OSError:
                self.requests.append((method, path, None))
                return  # platform down: the device sees the connection close
            with up:
                up.sendall(head + b"\r\n\r\n" + body)
                answer = b""
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
            self.requests.append((method, path, status))
            with self._lock:
                if self._drop and path.startswith(self._drop):
                    self._drop = None
                    self.dropped.append((method, path, status))
                    return
                tamper = self._tamper and path.startswith(self._tamper)
                rewrite = self._rewrite if self._rewrite and path.startswith(self._rewrite[0]) \
                    else None
            if rewrite:
                h, sep, b = answer.partition(b"\r\n\r\n")
                b = json.dumps(rewrite[1](json.loads(b))).encode()
                h = re.sub(rb"(?i)content-length: *\d+", b"content-length: %d" % len(b), h)
                answer = h + sep + b
            if tamper:
                h, sep, b = answer.partition(b"\r\n\r\n")
                if b:
                    b = bytearray(b)
                    b[len(b) // 2] ^= 0x01
                    answer = h + sep + bytes(b)
            conn.sendall(answer)
        finally:
            conn.close()


# ---- fixtures ----

@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = PlatformProc(tmp_path_factory.mktemp("platform")).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def proxy(platform):
    px = FaultProxy(platform.port)
    yield px
    px.close()


def device_settings(dev, url, **extra):
    return dict(extra, device_id=dev.device_id, device_key=dev.key, platform_url=url)


CONFIG = {"relays": {"relay1": {"pin": 2}, "relay2": {"pin": 3}}}


# ---- time sync ----

def test_time_sync_against_local_responder(platform, tmp_path):
    ntp = NTPResponder(offset_s=1234.5)
    dead = "127.0.0.1:%d" % free_port(socket.SOCK_DGRAM)
    dev = platform.provision(dict(CONFIG, ntp_servers=[dead, ntp.server]))
    sc = Scenario(tmp_path, "timesync", device_settings(dev, platform.url))
    try:
        rc = sc.run()
    finally:
        answered = ntp.stop()
    assert rc == 0, sc.out
    r = sc.results()["timesync"]
    print("time sync: offset %d ms, delay %d ms, %s answered %s request(s)" % (
        r["offset_ms"], r["delay_ms"], r["server"], answered))
    assert r["servers"] == [dead, ntp.server]
    assert r["synced"] and r["ready"] and r["server"] == ntp.server, sc.out
    assert r["failures"] == 1  # the dead server, then the responder
    assert abs(r["offset_ms"] - 1234500) < 100, r
    assert abs(r["before_ms"]) < 100 and abs(r["applied_ms"] - 1234500) < 100, r
    assert abs(r["now"] - (time.time() + 1234.5)) < 3
    assert answered == 1


def test_forged_time_does_not_revive_an_expired_token(platform, tmp_path):
    # each hostile mode of tools/ntp_responder.py against the device's strict SNTP client
    honest = NTPResponder(offset_s=0)
    hostile = {m: NTPResponder(offset_s=0, hostile=m) for m in
               ("back-30-days", "wrong-origin", "kod", "unsynced", "client-mode")}
    dev = platform.provision(CONFIG)
    sc = Scenario(tmp_path, "timesync_attack", device_settings(
        dev, platform.url, honest=honest.server,
        hostile=[[m, r.server] for m, r in hostile.items()]))
    try:
        rc = sc.run()
    finally:
        honest.stop()
        answered = {m: r.stop() for m, r in hostile.items()}
    assert rc == 0, sc.out
    res = sc.results()
    assert res["honest"]["synced"] and res["honest"]["token"] == "expired", res["honest"]
    for m in hostile:
        print("forged time %s: %s" % (m, res[m]))
        assert not res[m]["applied"] and res[m]["moved_ms"] == 0, (m, res[m])
        assert res[m]["token"] == "expired", (m, res[m])
        assert answered[m] >= 1, m
    # the 30-day step was a well-formed answer: refused by the step bound (the platform's
    # time, the second source, disagrees), the others by the packet checks
    assert res["back-30-days"]["steps_refused"] == 1
    assert res["client-mode"]["steps_refused"] == 1  # the ones after it: no further step
    # after a reboot the saved floor refuses it again, and tokens stay expired
    assert not res["reboot"]["applied"] and res["reboot"]["token"] == "expired", res["reboot"]
    assert abs(res["reboot"]["floor_s"] - time.time()) < 3600 + 60


# ---- alarms ----

def test_alarms_dedup_buffer_recover_no_duplicates(platform, proxy, tmp_path):
    dev = platform.provision(CONFIG)
    sc = Scenario(tmp_path, "alarms", device_settings(dev, proxy.url)).start()
    try:
        sc.wait_mark("phase1.done")
        online = dev.alarms()
        assert online["sensor.flaky"]["count"] == 5
        assert online["sensor.flaky"]["message"] == "reading out of range (4)"
        assert online["relay.fault"]["count"] == 1
        exc = [k for k in online if k.startswith("exc.RuntimeError@alarms_scenario.py:")]
        assert len(exc) == 1 and "relay worker crashed" in online[exc[0]]["message"]
        assert online[exc[0]]["severity"] == "critical"

        platform.stop()
        sc.mark("platform.down")
        sc.wait_mark("phase2.done")
        platform.start()
        sc.mark("platform.up")
        sc.wait_mark("phase3.done")
        recovered = dev.alarms()

        proxy.drop_answer("/v1/alarms")
        sc.mark("proxy.armed")
        assert sc.wait(timeout=20) == 0, sc.out
    finally:
        sc.kill()
    res = sc.results()
    on, off, back, lost = res["online"], res["offline"], res["recovered"], res["lost_answer"]
    print("alarms online: raised %d sent %d; offline: buffered %d dropped %d failures %d; "
          "after recovery: sent %d buffered %d; lost answer: sent %d failures %d" % (
              on["alarms_raised"], on["alarms_sent"], off["alarms_buffered"],
              off["alarms_dropped"], off["alarm_send_failures"], back["alarms_sent"],
              back["alarms_buffered"], lost["alarms_sent"], lost["alarm_send_failures"]))
    assert on["delivered"] and on["alarms_raised"] == 7 and on["alarms_sent"] == 3
    # 12 distinct keys and one repeated key while down, buffer of 8: the 5 oldest dropped;
    # the first retried batch carries a summary of the drops (the ninth entry)
    assert off["alarms_buffered"] == 9 and off["alarms_dropped"] == 5, off
    assert off["pending"] == [["offline.k%02d" % i, 1] for i in range(5, 12)] + \
        [["sensor.flaky", 3], ["alarms.dropped", 5]]
    assert off["alarm_send_failures"] >= 2 and off["alarms_sent"] == 3
    assert back["delivered"] and back["alarms_buffered"] == 0 and back["alarms_dropped"] == 5
    # the server holds exactly what was raised, less what was dropped, each once
    for i in range(12):
        key = "offline.k%02d" % i
        assert (key in recovered) == (i >= 5), key
        if i >= 5:
            assert recovered[key]["count"] == 1
    assert recovered["sensor.flaky"]["count"] == 8
    assert recovered["alarms.dropped"]["count"] == 5
    assert "5 alarm(s) dropped" in recovered["alarms.dropped"]["message"]
    raised = back["alarms_raised"]
    on_server = sum(a["count"] for k, a in recovered.items() if k != "alarms.dropped")
    assert on_server == raised - back["alarms_dropped"] == 17
    # an answer lost after the platform merged the batch: the retry is acknowledged, not merged
    assert lost["delivered"] and len(proxy.dropped) == 1 and proxy.dropped[0][2] == 200
    assert lost["alarm_send_failures"] > back["alarm_send_failures"]
    final = dev.alarms()
    assert final["relay.stuck"]["count"] == 2
    assert sum(a["count"] for k, a in final.items() if k != "alarms.dropped") == 19


# ---- OTA ----

class OTADevice:
    """A provisioned device whose state folder survives its boots (scenario runs). Its tenant
    has a release key (the owner's, made here as tools/release.py would); the device trusts it."""

    def __init__(self, platform, proxy, tmp_path, key=None):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        self.dev = platform.provision(CONFIG)
        self.key = key or Ed25519PrivateKey.generate()
        pub = release_tool.public_raw(self.key).hex()
        platform.add_release_key(self.dev.tenant, pub)
        self.tmp_path = tmp_path
        self.state_dir = str(tmp_path / "device")
        os.mkdir(self.state_dir)
        self.key_file = str(tmp_path / "ota_public_key.hex")
        with open(self.key_file, "w") as f:  # provisioning: the only key the device trusts
            f.write(pub + "\n")
        self.url = proxy.url
        self.boots = []

    def release(self, img, version, counter=1, **scope):
        return release_tool.sign(self.key, release_tool.release_manifest(
            img, version, counter, ["RPI_PICO_W"], **scope))

    def publish(self, img, version, counter=1, **scope):
        r = self.dev.publish(img, self.release(img, version, counter, **scope))
        assert r.status == 201, r
        return r.json()

    def boot(self, mode="normal"):
        sc = Scenario(self.tmp_path, "ota", device_settings(
            self.dev, self.url, state_dir=self.state_dir, public_key_file=self.key_file,
            mode=mode))
        rc = sc.run()
        res = sc.results()
        self.boots.append((rc, res))
        assert rc in (0, 1, RESET_EXIT), sc.out
        return rc, res.get("boot"), sc.out

    def app_version(self):
        with open(os.path.join(self.state_dir, "app_version")) as f:
            return f.read().strip()

    def state(self):
        with open(os.path.join(self.state_dir, "ota", "state.json")) as f:
            return json.load(f)

    def staged(self):
        return sorted(n for n in os.listdir(os.path.join(self.state_dir, "ota"))
                      if n.startswith("image"))


def image(version, size=20000):
    seed = hashlib.sha256(version.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def image_requests(proxy, since):
    return [r for r in proxy.requests[since:] if r[1].startswith("/v1/ota/images/")]


def test_ota_accepted_and_confirmed(platform, proxy, tmp_path):
    d = OTADevice(platform, proxy, tmp_path)
    img = image("1.1.0")
    d.publish(img, "1.1.0", counter=5, tenant=d.dev.tenant)
    seen = len(proxy.requests)
    rc, b, out = d.boot()
    assert rc == RESET_EXIT and b["check"] == "applied" and b["boot"] == "none", out
    ranges = image_requests(proxy, seen)
    assert len(ranges) == 5 and all(r[2] == 206 for r in ranges)  # 20000 bytes in 4 KiB
    assert d.app_version() == "1.1.0"
    with open(os.path.join(d.state_dir, "app_version.img"), "rb") as f:
        assert f.read() == img
    assert d.state()["pending"]["version"] == "1.1.0"
    assert b["floor"] == 0  # raised only once the new version confirms
    print("OTA: Ed25519 verify of the release manifest took %s ms on the unix build"
          % b["verify_ms"])
    rc, b, out = d.boot()
    assert rc == 0 and b["boot"] == "trial" and b["version"] == "1.1.0", out
    assert b["check"] == "up_to_date" and b["flushed"] and b["floor"] == 5
    st = d.state()
    assert st["pending"] is None and st["confirmed"] == "1.1.0"
    alarms = d.dev.alarms()
    assert alarms["ota.confirmed"]["severity"] == "info"
    assert "1.1.0 confirmed" in alarms["ota.confirmed"]["message"]


def test_ota_relabelled_offer_refused_before_download(platform, proxy, tmp_path):
    # a compromised platform (or the path) changes the version in the offered manifest
    d = OTADevice(platform, proxy, tmp_path)
    d.publish(image("1.3.0"), "1.3.0")

    def relabel(offer):
        offer["manifest"] = offer["manifest"].replace('"1.3.0"', '"99.0.0"')
        return offer
    proxy.rewrite("/v1/ota", relabel)
    seen = len(proxy.requests)
    try:
        rc, b, out = d.boot()
    finally:
        proxy.rewrite(None)
    assert rc == 0 and b["check"] == "refused", out
    assert image_requests(proxy, seen) == []  # refused before any download
    assert not os.path.exists(os.path.join(d.state_dir, "app_version"))
    a = d.dev.alarms()["ota.bad_signature"]
    assert "does not verify" in a["message"]


def test_ota_attack_other_tenants_image_as_99(platform, proxy, tmp_path):
    # Before: tenant A's image offered to tenant B's device as "99.0.0" was applied. Now:
    # with B's own key, A's signature does not verify; with a vendor key both trust, A's
    # manifest is scoped to A. Either way nothing is downloaded.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    vendor = Ed25519PrivateKey.generate()
    os.mkdir(tmp_path / "a")
    a = OTADevice(platform, proxy, tmp_path / "a", key=vendor)
    a_img = image("99.0.0")
    a_offer = {}
    a_rel = a.publish(a_img, "99.0.0", tenant=a.dev.tenant)
    a_offer.update(manifest=a_rel["manifest"], signature=a_rel["signature"])
    for tag, key, alarm in (("own-key", None, "ota.bad_signature"),
                            ("vendor-key", vendor, "ota.wrong_scope")):
        os.mkdir(tmp_path / tag)
        b = OTADevice(platform, proxy, tmp_path / tag, key=key)
        b.publish(image("1.0.1"), "1.0.1")  # B has its own release on offer

        def swap(offer):
            offer.update(a_offer)
            return offer
        proxy.rewrite("/v1/ota", swap)
        seen = len(proxy.requests)
        try:
            rc, res, out = b.boot()
        finally:
            proxy.rewrite(None)
        assert rc == 0 and res["check"] == "refused", (tag, out)
        assert image_requests(proxy, seen) == [], tag
        assert not os.path.exists(os.path.join(b.state_dir, "app_version")), tag
        alarms = b.dev.alarms()
        assert alarm in alarms, (tag, alarms)
        if alarm == "ota.wrong_scope":
            assert "signed for tenant %r" % a.dev.tenant in alarms[alarm]["message"]


def test_ota_attack_replay_of_an_old_image(platform, proxy, tmp_path):
    # Before: any old signed image could be offered as "newer". Now the version is signed,
    # and a build below the anti-rollback floor is refused even with a newer version.
    d = OTADevice(platform, proxy, tmp_path)
    old = d.publish(image("1.1.0"), "1.1.0", counter=2)
    d.publish(image("1.2.0"), "1.2.0", counter=3)
    rc, b, out = d.boot()
    assert rc == RESET_EXIT and b["check"] == "applied", out
    rc, b, out = d.boot()
    assert b["boot"] == "trial" and b["floor"] == 3, out

    def replay(offer):
        offer.update(manifest=old["manifest"], signature=old["signature"],
                     url=offer["url"].rsplit("/", 1)[0] + "/" + old["image_id"])
        return offer
    proxy.rewrite("/v1/ota", replay)
    seen = len(proxy.requests)
    try:
        rc, b, out = d.boot()
    finally:
        proxy.rewrite(None)
    assert rc == 0 and b["check"] == "refused" and image_requests(proxy, seen) == [], out
    assert "1.1.0 is not above the running 1.2.0" in d.dev.alarms()["ota.not_newer"]["message"]
    # a newer version number on a build below the floor (a withdrawn line)
    d.publish(image("1.3.0"), "1.3.0", counter=2)
    seen = len(proxy.requests)
    rc, b, out = d.boot()
    assert rc == 0 and b["check"] == "refused" and image_requests(proxy, seen) == [], out
    assert "counter 2 is below the floor 3" in \
        d.dev.alarms()["ota.counter_below_floor"]["message"]
    assert d.app_version() == "1.2.0"


def test_ota_attack_token_to_a_foreign_host(platform, proxy, tmp_path):
    # Before: the device sent its bearer token to whatever host the offer's url named. Now
    # an image URL on another origin is refused and nothing reaches that host.
    seen_by_foreign = []
    foreign = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    foreign.bind(("127.0.0.1", 0))
    foreign.listen(4)
    foreign.settimeout(0.2)
    stop = []

    def serve():
        while not stop:
            try:
                c, _ = foreign.accept()
            except OSError:
                continue
            c.settimeout(2)
            try:
                seen_by_foreign.append(c.recv(4096))
            except OSError:
                seen_by_foreign.append(b"")
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    d = OTADevice(platform, proxy, tmp_path)
    d.publish(image("1.6.0"), "1.6.0")
    port = foreign.getsockname()[1]

    def redirect(offer):
        offer["url"] = "http://127.0.0.1:%d/v1/ota/images/x" % port
        return offer
    proxy.rewrite("/v1/ota", redirect)
    try:
        rc, b, out = d.boot()
    finally:
        proxy.rewrite(None)
        stop.append(1)
        t.join(timeout=5)
        foreign.close()
    assert rc == 0 and b["check"] == "refused", out
    assert seen_by_foreign == []  # no connection at all, so no token
    a = d.dev.alarms()["ota.foreign_url"]
    assert "127.0.0.1:%d" % port in a["message"]


def test_ota_rejected_when_altered_in_transit(platform, proxy, tmp_path):
    d = OTADevice(platform, proxy, tmp_path)
    d.publish(image("1.4.0"), "1.4.0")
    proxy.tamper("/v1/ota/images/")
    try:
        rc, b, out = d.boot()
    finally:
        proxy.tamper(None)
    assert rc == 0 and b["check"] == "refused", out
    assert not os.path.exists(os.path.join(d.state_dir, "app_version"))
    assert d.staged() == []
    assert "ota.bad_hash" in d.dev.alarms()


def test_ota_rolled_back_when_never_confirmed(platform, proxy, tmp_path):
    d = OTADevice(platform, proxy, tmp_path)
    d.publish(image("1.5.0"), "1.5.0", counter=4)
    rc, b, out = d.boot()
    assert rc == RESET_EXIT and b["check"] == "applied", out
    for n in (1, 2):  # max_boots=2: the new version dies before confirming, twice
        rc, b, out = d.boot(mode="crash")
        assert rc == 1 and b["boot"] == "trial" and b["version"] == "1.5.0", out
        assert d.state()["pending"]["boots"] == n
    rc, b, out = d.boot(mode="crash")
    assert rc == RESET_EXIT and b is None, out  # rolled back and reset before anything else
    assert d.app_version() == "1.0.0"
    rc, b, out = d.boot()
    assert rc == 0 and b["boot"] == "none" and b["version"] == "1.0.0", out
    assert b["check"] == "skipped" and b["flushed"]  # the failed version is not retried
    assert b["floor"] == 0  # the unconfirmed counter 4 never raised the floor
    st = d.state()
    assert st["bad"] == ["1.5.0"] and st["pending"] is None
    a = d.dev.alarms()["ota.rolled_back"]
    assert "1.5.0 did not confirm within 2 boots; rolled back to 1.0.0" in a["message"]
