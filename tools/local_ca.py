"""A local certificate authority for the simulation and the tests (host side, CPython).

MicroPython's `tls` module cannot generate keys, so the device's key and certificate are made
here at provisioning time, like the platform's: ECDSA P-256 (the cheapest handshake for the
RP2040's mbedtls), valid for 127.0.0.1, ::1 and localhost.

    ca = LocalCA(folder)          # creates ca.pem / ca.key once, reuses them after
    cert, key = ca.issue("device", hosts=("127.0.0.1", "localhost"))
    python3 tools/local_ca.py FOLDER NAME [HOST...]   # the same from a shell
"""

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
CA_DAYS = 3650
LEAF_DAYS = 397     # the longest lifetime browsers accept for a server certificate


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _write_key(path, key):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def _write_cert(path, cert):
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _san(hosts):
    names = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


class LocalCA:
    def __init__(self, folder, name="RelaysController local CA"):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.cert_path = os.path.join(self.folder, "ca.pem")
        self.key_path = os.path.join(self.folder, "ca.key")
        if not (os.path.exists(self.cert_path) and os.path.exists(self.key_path)):
            self._create(name)
        with open(self.key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(self.cert_path, "rb") as f:
            self.cert = x509.load_pem_x509_certificate(f.read())

    def _create(self, name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        _write_key(self.key_path, key)
        _write_cert(self.cert_path, cert)

    def issue(self, name, hosts=LOOPBACK_HOSTS, days=LEAF_DAYS):
        """(cert.pem path, key path) of a server certificate `name` for `hosts`; reused while it
        names the same hosts and has a day left."""
        cert_path = os.path.join(self.folder, name + ".pem")
        key_path = os.path.join(self.folder, name + ".key")
        if os.path.exists(cert_path) and os.path.exists(key_path):
            with open(cert_path, "rb") as f:
                old = x509.load_pem_x509_certificate(f.read())
            try:
                same = old.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName).value == _san(hosts)
            except x509.ExtensionNotFound:
                same = False
            if same and old.issuer == self.cert.subject and \
                    old.not_valid_after_utc - _now() > datetime.timedelta(days=1):
                return cert_path, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(_san(hosts), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return cert_path, key_path


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print("usage: local_ca.py FOLDER NAME [HOST...]", file=sys.stderr)
        sys.exit(2)
    ca = LocalCA(sys.argv[1])
    print("\n".join((ca.cert_path,) + ca.issue(sys.argv[2], tuple(sys.argv[3:]) or LOOPBACK_HOSTS)))
