"""TLS on the unix build (mbedtls). iotlib.http_client against a CPython HTTPS server on
127.0.0.1: the certificate is checked against the CA the device trusts, and a refusal is an
HTTPError that names the mbedtls reason. The device end to end with TLS: the platform over https
with a local CA's certificate, the device REST API over TLS (a CPython client with the CA
switches a relay), plain HTTP limited to the probes on a board, http:// platform URLs refused
unless loopback."""

import datetime
import http.server
import ipaddress
import os
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import simulation as sim
from e2e_harness import OPERATOR_TOKEN, base_config, wait_for
from local_ca import LocalCA
from sse_client import open_event_stream, read_events
from test_rest_e2e import mint

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device_scripts",
                      "https_get.py")


def self_signed(tmp_path, tag):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    paths = {k: str(tmp_path / ("%s.%s" % (tag, k))) for k in ("pem", "der", "key")}
    with open(paths["pem"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["der"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.DER))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"tls": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def https_server(tmp_path):
    cert = self_signed(tmp_path, "server")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert["pem"], cert["key"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], cert
    srv.shutdown()
    srv.server_close()


def get(url, ca):
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % os.path.join(sim.ROOT, "python"))
    out = subprocess.run([sim.MICROPYTHON, SCRIPT, url, ca], cwd=sim.ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip()


def test_https_with_the_trusted_ca(https_server):
    port, cert = https_server
    for host in ("localhost", "127.0.0.1"):
        assert get("https://%s:%d/x" % (host, port), cert["der"]) == '200 {"tls": true}'


def test_https_refused_without_trust(https_server, tmp_path):
    port, _ = https_server
    url = "https://localhost:%d/x" % port
    assert get(url, "-") == "HTTPError GET %s: MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED" % url
    other = self_signed(tmp_path, "other")
    assert get(url, other["der"]) == "HTTPError GET %s: TLS: The certificate is not correctly" \
        " signed by the trusted CA" % url


# ---- the device end to end over TLS ----

ISSUER = "https://platform.e2e/relays"


def api_config(ntp, **api):
    cfg = base_config(ntp)
    cfg["api"] = dict({"jwt": {"key": os.urandom(32).hex(), "issuer": ISSUER,
                               "audience": "e2e-devices"}}, **api)
    return cfg


@pytest.fixture
def local_ca(tmp_path):
    ca = LocalCA(str(tmp_path / "tls"))
    sim.trust_ca(ca.cert_path)   # the test's https calls trust this CA only
    return ca


@pytest.fixture
def tls_platform(tmp_path, local_ca):
    d = tmp_path / "tls-platform"
    d.mkdir()
    p = sim.Platform(d, OPERATOR_TOKEN, tls=local_ca.issue("platform")).start()
    yield p
    p.stop()


def answers(url):
    try:
        return sim.http("GET", url).status in (200, 503)
    except OSError:
        return False


def test_device_api_over_tls_switches_a_relay(tls_platform, local_ca, sim_device, ntp):
    if not ntp:
        pytest.fail("no NTP responder: the device clock cannot be synced")
    assert tls_platform.url.startswith("https://127.0.0.1:")
    cert, key = local_ca.issue("device")
    plain_port = sim.free_port()
    dev = sim_device(tls_platform, config=api_config(ntp), ca_cert=local_ca.cert_path,
                     rest_tls_cert=cert, rest_tls_key=key, rest_plain_port=plain_port,
                     rest_probes_only=True)
    tls_url = "https://127.0.0.1:%d" % dev.settings["rest_port"]
    plain_url = "http://127.0.0.1:%d" % plain_port
    # registered over https with the CA it trusts, config and time: ready
    dev.wait_status(lambda s: s["ready"] and s["config_version"] >= 1,
                    "registered over https, config applied, time synced", timeout=30)
    wait_for(lambda: answers(tls_url + "/health"), 15, "the device REST API over TLS")
    # the handshake: the device's certificate, checked against the CA
    ctx = ssl.create_default_context(cafile=local_ca.cert_path)
    with socket.create_connection(("127.0.0.1", dev.settings["rest_port"]), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            peer = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
            assert peer.subject.rfc4514_string() == "CN=device"
            assert s.version() in ("TLSv1.2", "TLSv1.3")
    # a client that does not trust the CA gets no connection
    with socket.create_connection(("127.0.0.1", dev.settings["rest_port"]), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    tok = mint(dev.cloud)
    r = sim.http("POST", tls_url + "/gpio/r1", {"state": "HIGH"}, token=tok)
    assert r.status == 200 and r.json()["state"] == "HIGH", r
    dev.wait_status(lambda s: s["pins"].get("2") == 1, "pin 2 driven high over TLS")
    # plain HTTP beside it: the probes only, nothing moves
    assert sim.http("GET", plain_url + "/health").status == 200
    assert sim.http("GET", plain_url + "/ready").status == 200
    for method, path, body in (("POST", "/gpio/r1", {"state": "LOW"}), ("GET", "/gpio", None),
                               ("GET", "/gpio/r1", None), ("GET", "/metrics", None)):
        r = sim.http(method, plain_url + path, body, token=tok)
        assert r.status == 403 and r.json()["error"] == "tls_required", (path, r)
    assert dev.status()["relays"]["r1"] is True, "a refused plain request moved a relay"
    # the config may allow more on plain HTTP, explicitly
    cfg = dev.cloud.platform.op("GET", dev.cloud.op_path("config")).json()["config"]
    cfg["api"]["allow_plain_http"] = True
    assert dev.cloud.push_config(cfg).status == 200
    dev.wait_status(lambda s: s["config_version"] == 2, "config version 2 applied")
    r = sim.http("POST", plain_url + "/gpio/r1", {"state": "LOW"}, token=tok)
    assert r.status == 200 and r.json()["state"] == "LOW", r


def ready_tls_device(tls_platform, local_ca, sim_device, ntp):
    # -> (device, its TLS port): a board's REST API (TLS, plain probes only), ready
    if not ntp:
        pytest.fail("no NTP responder: the device clock cannot be synced")
    cert, key = local_ca.issue("device")
    dev = sim_device(tls_platform, config=api_config(ntp), ca_cert=local_ca.cert_path,
                     rest_tls_cert=cert, rest_tls_key=key, rest_probes_only=True)
    port = dev.settings["rest_port"]
    dev.wait_status(lambda s: s["ready"] and s["config_version"] >= 1, "ready", timeout=30)
    wait_for(lambda: answers("https://127.0.0.1:%d/health" % port), 15, "the API over TLS")
    return dev, port


def test_device_api_serves_concurrent_tls_clients_one_session_at_a_time(
        tls_platform, local_ca, sim_device, ntp):
    # http.max_tls_sessions (1 by default): four TLS clients at once are all served, three
    # of them after waiting accepted for their turn, none closed
    dev, port = ready_tls_device(tls_platform, local_ca, sim_device, ntp)
    c0 = dev.status()["counters"]
    tok = mint(dev.cloud)
    ctx = ssl.create_default_context(cafile=local_ca.cert_path)
    # the four TCP connections first: the device accepts them all while none has said hello
    raws = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(4)]
    results = [None] * 4

    def client(i):
        with ctx.wrap_socket(raws[i], server_hostname="127.0.0.1") as s:
            s.sendall(("GET /gpio/r1 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
                       "Authorization: Bearer %s\r\n\r\n" % tok).encode())
            got = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        results[i] = got.split(b"\r\n", 1)[0]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [b"HTTP/1.0 200 OK"] * 4, results
    c1 = dev.wait_status(lambda s: s["counters"]["rest_tls_sessions"] - c0["rest_tls_sessions"]
                         >= 4, "four sessions counted")["counters"]
    got = {k: c1[k] - c0[k] for k in ("rest_tls_waited", "rest_tls_turned_away",
                                        "rest_tls_timed_out", "rest_tls_failed")}
    # (the status file may predate the /health probe's session: sessions are not compared)
    assert got == {"rest_tls_waited": 3, "rest_tls_turned_away": 0, "rest_tls_timed_out": 0,
                   "rest_tls_failed": 0}, got
    # and /metrics carries them
    r = sim.http("GET", "https://127.0.0.1:%d/metrics" % port, token=mint(dev.cloud, role="admin"))
    assert r.status == 200, r
    waits = [ln for ln in r.body.decode().splitlines() if ln.startswith("api_tls_waits_total")]
    assert len(waits) == 1 and float(waits[0].rsplit(" ", 1)[1]) >= 3, waits


def test_an_open_event_stream_over_tls_makes_way_for_other_clients(
        tls_platform, local_ca, sim_device, ntp):
    # the web page keeps GET /events open in the one TLS session place
    # (http.max_tls_sessions, 1): a client that waits for the place gets it at once, the
    # stream is closed (the page connects again), and the next stream's hello has the change
    dev, port = ready_tls_device(tls_platform, local_ca, sim_device, ntp)
    url = "https://127.0.0.1:%d" % port
    ctx = ssl.create_default_context(cafile=local_ca.cert_path)
    tok = mint(dev.cloud)
    assert sim.http("POST", url + "/gpio/r1", {"state": "LOW"}, token=tok).status == 200
    c0 = dev.status()["counters"]
    hellos = []
    for want in ("HIGH", "LOW"):
        with open_event_stream(ctx, port, tok) as stream:
            got = read_events(stream, b"event: hello")
            hellos.append(got)
            r = sim.http("POST", url + "/gpio/r1", {"state": want}, token=tok, timeout=5)
            assert r.status == 200 and r.json()["state"] == want, r
            read_events(stream, None, got)  # the device closed it to make way
    with open_event_stream(ctx, port, tok) as stream:
        hello = read_events(stream, b"event: hello")
    assert b'"state": "LOW"' in hello.split(b"event: hello", 1)[1], hello[-400:]
    assert b'"state": "HIGH"' in hellos[1].split(b"event: hello", 1)[1], hellos[1][-400:]
    c1 = dev.wait_status(lambda s: s["counters"]["rest_tls_streams_closed"] -
                         c0["rest_tls_streams_closed"] >= 2, "two streams closed")["counters"]
    assert c1["rest_tls_failed"] == c0["rest_tls_failed"]


def test_board_without_tls_serves_only_the_probes(platform, sim_device, ntp):
    # a board's rules on the unix build: no certificate, plain HTTP, probes only
    if not ntp:
        pytest.fail("no NTP responder: the device clock cannot be synced")
    dev = sim_device(platform, config=api_config(ntp), rest_probes_only=True)
    url = "http://127.0.0.1:%d" % dev.settings["rest_port"]
    dev.wait_status(lambda s: s["ready"] and s["config_version"] >= 1, "ready", timeout=30)
    wait_for(lambda: answers(url + "/health"), 15, "the device REST API")
    tok = mint(dev.cloud, role="admin")
    for method, path, body in (("POST", "/gpio/r1", {"state": "HIGH"}), ("POST", "/gpio",
                               {"relays": {"r1": "HIGH"}}), ("GET", "/config", None)):
        r = sim.http(method, url + path, body, token=tok)
        assert r.status == 403 and r.json()["error"] == "tls_required", (path, r)
        assert "https" in r.json()["message"]
    assert sim.http("GET", url + "/health").status == 200
    assert dev.status()["relays"] == {"r1": False, "r2": False}


def test_http_platform_url_refused_unless_loopback(tmp_path):
    env = dict(os.environ, MICROPYTHONPATH="")
    for url in ("http://10.0.0.5:8080/v1/devices/register", "http://platform.example/v1",
                "http://127.0.0.1.evil.example/v1", "http://[::2]/v1", "ftp://127.0.0.1/x"):
        data = tmp_path / "data"
        out = subprocess.run([sim.MICROPYTHON, sim.MAIN, "--device-id", "pico-x", "--device-key",
                              "k" * 32, "--platform", url, "--data-dir", str(data)],
                             cwd=sim.ROOT, env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, (url, out.stdout, out.stderr)
        assert url in out.stdout and "https" in out.stdout, out.stdout
        assert not data.exists(), "nothing is written for a refused URL"
