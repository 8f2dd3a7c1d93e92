"""Helpers for end-to-end tests (fixtures in conftest.py): real processes on 127.0.0.1 only.

- `SimDevice`: a device provisioned on the platform and started as the unix build running
  python/main.py (sources from python/ ahead of the frozen copies), with a fresh data folder.
  It is restarted when it exits with the reset code, like a board rebooting. The handle reads
  the device's log lines, its board view (status.json: relays, pin levels, counters), drops and
  restores its WiFi, and lists the secrets it must never log.

Every wait is bounded; helpers raise AssertionError naming what did not happen."""

import glob
import json
import os
import secrets
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import simulation as sim  # noqa: E402
from simulation import RESET_EXIT_CODE, wait_for  # noqa: E402,F401

OPERATOR_TOKEN = "e2e-operator-" + secrets.token_hex(12)


def base_config(ntp_port=None, **over):
    cfg = {
        "relays": {"r1": {"pin": 2, "min_interval_ms": 100},
                   "r2": {"pin": 3, "active_low": True}},
        "heartbeat_period_s": 1,
        "heartbeat_max_missed": 30,
        "state_period_s": 1,
        "config_poll_period_s": 2,
        "log_level": "debug",
        "ntp_servers": ["127.0.0.1:%d" % ntp_port] if ntp_port else [],
    }
    cfg.update(over)
    return cfg


class SimDevice:
    """A provisioned, running simulated device and its view from the platform (`.cloud`)."""

    def __init__(self, workdir, platform, cloud, settings):
        self.platform = platform
        self.cloud = cloud
        self.proc = sim.Device(workdir, settings)
        self.data_dir = self.proc.data_dir
        self.settings = settings

    # ---- process ----

    def start(self):
        self.proc.start()
        return self

    def stop(self):
        return self.proc.stop()

    def kill(self):
        self.proc.kill()

    @property
    def exits(self):
        return self.proc.exits

    @property
    def rest_url(self):
        """The device REST API (127.0.0.1 and the port given in the settings)."""
        return "http://127.0.0.1:%d" % self.settings["rest_port"]

    # ---- board view and controls ----

    def status(self, timeout=2):
        """The device's status file. The device rewrites it in place, so a read can meet it
        missing or half-written: read again, bounded (None only after timeout s)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.proc.status()
            if st is not None or time.monotonic() > deadline:
                return st
            time.sleep(0.02)

    def wait_status(self, predicate, what, timeout=15):
        def check():
            st = self.status()
            return st if st is not None and predicate(st) else None
        return wait_for(check, timeout, what)

    def wifi(self, up):
        self.proc.wifi(up)

    def pins(self):
        return {int(k): v for k, v in (self.status() or {}).get("pins", {}).items()}

    # ---- logs ----

    def log_files(self):
        d = os.path.join(self.data_dir, "log")
        return sorted(glob.glob(os.path.join(d, "*.log*"))) + [self.proc.stdout_path]

    def raw_lines(self):
        out = []
        for path in self.log_files():
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    out += [(path, line.rstrip("\n")) for line in f]
            except OSError:
                pass
        return out

    def records(self, path_filter=None):
        """Parsed records of the device log files (stdout excluded: it repeats them)."""
        recs = []
        for path, line in self.raw_lines():
            if path == self.proc.stdout_path or (path_filter and path_filter not in path):
                continue
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
        return recs

    def find(self, msg, **fields):
        return [r for r in self.records()
                if r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items())]

    def wait_log(self, msg, timeout=15, **fields):
        return wait_for(lambda: self.find(msg, **fields), timeout,
                        "log line %r %r" % (msg, fields))

    def secrets(self):
        s = [self.settings["device_key"], self.settings["wifi_password"], OPERATOR_TOKEN]
        key_file = os.path.join(self.data_dir, "device_key")
        if os.path.exists(key_file):
            with open(key_file) as f:
                s.append(f.read().strip())
        try:  # the REST API key of the config in force
            with open(os.path.join(self.data_dir, "config.json")) as f:
                s.append(json.load(f)["config"]["api"]["jwt"]["key"])
        except (OSError, ValueError, KeyError):
            pass
        return s


# ---- session fixtures shared by tests/e2e and tests/mqtt (imported by their conftest.py) ----

@pytest.fixture(scope="session")
def ntp(tmp_path_factory):
    work = tmp_path_factory.mktemp("ntp")
    responder = sim.NtpResponder(work).start()
    if responder is None:
        # the device would run with no clock sync and its time checks would be left out
        pytest.fail("no NTP responder: tools/ntp_responder.py did not start (see %s/ntp.log)"
                    % work)
    yield responder.port
    responder.stop()


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    p = sim.Platform(tmp_path_factory.mktemp("platform"), OPERATOR_TOKEN).start()
    yield p
    p.stop()
