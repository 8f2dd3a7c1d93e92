"""Helpers for the MQTT tests (fixtures in conftest.py): real processes on 127.0.0.1 only.

- `Certs`: a test CA, the broker's certificate (127.0.0.1 and localhost) and a device client
  certificate, made with `cryptography`.
- `Broker`: mosquitto from Debian with its own config file: a plain listener with a password
  file, a TLS listener that requires a client certificate (its CN is the user) and a TLS
  listener with the password file, no
  persistence (so a retained message seen after a restart was published again since).
- `Watcher`: a paho-mqtt client recording every message it sees, with bounded waits."""

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import paho.mqtt.client as paho  # noqa: E402

import simulation as sim  # noqa: E402
from simulation import wait_for  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
DEVICE_USER = "relay-device"
WATCHER_USER = "ha-watcher"


def mqtt_block(broker, passwords, **over):
    """The config's mqtt block for the device on the broker's plain listener."""
    m = {"host": "127.0.0.1", "port": broker.port, "username": DEVICE_USER,
         "password": passwords[DEVICE_USER], "keepalive_s": 10}
    m.update(over)
    return m


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class Certs:
    def __init__(self, folder):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mqtt test CA")])
        self.ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.server_key, self.server = self._leaf(ca_name, "localhost", now, True)
        self.client_key, self.client = self._leaf(ca_name, "cert-device", now, False)
        self.paths = {}
        for name, text in (("ca.pem", _pem(self.ca)), ("server.pem", _pem(self.server)),
                           ("server.key", _key_pem(self.server_key))):
            p = os.path.join(folder, name)
            with open(p, "w") as f:
                f.write(text)
            self.paths[name] = p
        self.ca_pem = _pem(self.ca)
        self.client_pem = _pem(self.client)
        self.client_key_pem = _key_pem(self.client_key)

    def _leaf(self, issuer, cn, now, server):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=7)))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return key, b.sign(self.ca_key, hashes.SHA256())


class Broker:
    """mosquitto on 127.0.0.1: `port` (password file), `tls_port` (TLS, client certificate) and
    `tls_password_port` (TLS, password file)."""

    def __init__(self, folder, certs, passwords):
        self.folder = str(folder)
        self.port = sim.free_port()
        self.tls_port = sim.free_port()
        self.tls_password_port = sim.free_port()
        self.proc = None
        self.log = os.path.join(self.folder, "mosquitto.log")
        pw = os.path.join(self.folder, "passwords")
        open(pw, "w").close()
        for user, password in passwords.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", pw, user, password], check=True,
                           capture_output=True, timeout=30)
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "user root",  # keep the test's own user: files here are private to it
                "persistence false",
                "set_tcp_nodelay true",
                "log_dest file %s" % self.log,
                "log_type all",
                "per_listener_settings true",
                "listener %d 127.0.0.1" % self.port,
                "allow_anonymous false",
                "password_file %s" % pw,
                "listener %d 127.0.0.1" % self.tls_port,
                "allow_anonymous false",
                "cafile %s" % certs.paths["ca.pem"],
                "certfile %s" % certs.paths["server.pem"],
                "keyfile %s" % certs.paths["server.key"],
                "require_certificate true",
                "use_identity_as_username true",
                "listener %d 127.0.0.1" % self.tls_password_port,
                "allow_anonymous false",
                "password_file %s" % pw,
                "cafile %s" % certs.paths["ca.pem"],
                "certfile %s" % certs.paths["server.pem"],
                "keyfile %s" % certs.paths["server.key"],
                ""]))

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        for port in (self.port, self.tls_port, self.tls_password_port):
            wait_for(lambda: self._listening(port), 10, "mosquitto on port %d" % port)
        return self

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


class Watcher:
    """A paho-mqtt client on the plain listener that records (topic, payload, retain)."""

    def __init__(self, broker, password, topics=("#",), name="watcher"):
        self.broker = broker
        self.topics = topics
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="%s-%d" % (name, os.getpid()),
                        protocol=paho.MQTTv311)
        c.username_pw_set(WATCHER_USER, password)
        c.reconnect_delay_set(0.1, 0.5)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = lambda *a: self.connected.clear()
        self.client = c
        self.password = password

    def _on_connect(self, client, userdata, flags, reason, props):
        sock = client.socket()
        if sock is not None:  # paho leaves Nagle on: timings would show 40 ms delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reason == 0:
            for t in self.topics:
                client.subscribe(t, 1)
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload.decode(errors="replace"),
                                  bool(msg.retain), time.monotonic()))

    def start(self):
        self.client.connect("127.0.0.1", self.broker.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise AssertionError("watcher could not connect to mosquitto")
        return self

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()

    def publish(self, topic, payload, retain=False, qos=1):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def seen(self, topic=None, payload=None, since=0):
        with self.lock:
            return [m for m in self.messages[since:]
                    if (topic is None or m[0] == topic) and (payload is None or m[1] == payload)]

    def mark(self):
        with self.lock:
            return len(self.messages)

    def wait(self, topic, payload=None, timeout=20, since=0):
        return wait_for(lambda: self.seen(topic, payload, since), timeout,
                        "MQTT message on %s%s" % (topic, "" if payload is None else
                                                  " = %r" % payload))

    def last(self, topic):
        got = self.seen(topic)
        return got[-1][1] if got else None

    def retained(self, topic, timeout=10):
        """(payload, retain) of what a client subscribing now gets on `topic` (a late Home
        Assistant): only retained messages arrive at once with the retain flag set."""
        late = Watcher(self.broker, self.password, (topic,), name="late").start()
        try:
            got = late.wait(topic, timeout=timeout)
            return got[0][1], got[0][2]
        finally:
            late.stop()
