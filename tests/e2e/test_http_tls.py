"""iotlib.http_client over TLS on the unix build (mbedtls) against a CPython HTTPS server on
127.0.0.1: the certificate is checked against the CA the device trusts, and a refusal is an
HTTPError that names the mbedtls reason."""

import datetime
import http.server
import ipaddress
import os
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import run_simulation as sim

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
