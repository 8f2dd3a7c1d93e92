"""The simulated device and its servers as processes on 127.0.0.1, for `make run`
(tools/run_simulation.py) and tests/e2e: the reference platform, a local NTP responder and the
device (the MicroPython unix build running python/main.py), restarted like a board when it
exits with the reset code."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from reference_platform.process import (  # noqa: E402,F401
    START_TIMEOUT_S, PlatformProcess, free_port, http_json, read_first_line, stop_process,
    trust_ca)

MICROPYTHON = os.path.join(ROOT, ".cache", "build", "unix", "micropython")
MAIN = os.path.join(ROOT, "python", "main.py")
RESET_EXIT_CODE = 75      # python/relays_controller.py: the simulated board was reset


def http(method, url, json_body=None, token=None, timeout=10):
    return http_json(method, url, json_body, token, timeout=timeout)


class Platform(PlatformProcess):
    """python -m reference_platform on a fixed loopback port; stop() then start() keeps the
    database and the port, so a device's service URLs and tokens outlive an outage."""

    def __init__(self, workdir, operator_token, port=None, seed=None, extra_args=(), tls=None):
        super().__init__(workdir, operator_token, port=port or free_port(), seed=seed,
                         extra_args=extra_args, new_session=True, tls=tls)


class NtpResponder:
    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.proc = None
        self.port = None

    def start(self):
        script = os.path.join(ROOT, "tools", "ntp_responder.py")
        if not os.path.exists(script):
            return None
        log = open(os.path.join(self.workdir, "ntp.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, script, "--port", "0"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        m = re.search(rb"127\.0\.0\.1:(\d+)", read_first_line(self.proc, START_TIMEOUT_S))
        if not m:
            self.stop()
            return None
        self.port = int(m.group(1))
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
            self.proc.stdout.close()
            self.proc = None


class Device:
    """The firmware on the unix port: python/main.py with its settings file and data folder.

    The supervisor thread restarts the process when it exits with RESET_EXIT_CODE, as a board
    reboots; every exit is recorded in `exits`. stdout (JSON log lines) is appended to
    `stdout_path` across restarts; on_line(line) sees each line as it arrives."""

    def __init__(self, workdir, settings, dev_path=True, restart_on_reset=True, on_line=None):
        self.workdir = str(workdir)
        self.data_dir = settings.setdefault("data_dir", os.path.join(self.workdir, "data"))
        os.makedirs(os.path.join(self.data_dir, "sim"), exist_ok=True)
        self.settings_path = os.path.join(self.workdir, "device.json")
        self.settings = settings
        self.save_settings()
        self.stdout_path = os.path.join(self.workdir, "device.out")
        path = [".frozen"]
        if dev_path:
            path.insert(0, os.path.join(ROOT, "python"))  # sources before the frozen copies
        self.env = dict(os.environ, MICROPYPATH=":".join(path))
        self.restart_on_reset = restart_on_reset
        self.on_line = on_line
        self.proc = None
        self.exits = []
        self.starts = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = None

    def save_settings(self):
        with open(self.settings_path, "w") as f:
            json.dump(self.settings, f, indent=1)

    def _spawn(self):
        self.proc = subprocess.Popen([MICROPYTHON, MAIN, "--config", self.settings_path],
                                     cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def start(self):
        with self._lock:
            self._stopping = False
            self._spawn()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        return self

    def _supervise(self):
        while True:
            proc = self.proc
            with open(self.stdout_path, "ab") as out:
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    if self.on_line:
                        self.on_line(line.decode(errors="replace").rstrip("\n"))
            code = proc.wait()
            proc.stdout.close()
            with self._lock:
                self.exits.append(code)
                if self._stopping or code != RESET_EXIT_CODE or not self.restart_on_reset:
                    return
                self._spawn()  # the simulated board reboots

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, timeout=10):
        """SIGINT: the device persists its state and exits 0."""
        with self._lock:
            self._stopping = True
            proc = self.proc
        stop_process(proc, signal.SIGINT, timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        return proc.returncode if proc else None

    def kill(self):
        with self._lock:
            self._stopping = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(10)

    # ---- the simulated board's controls and debug view ----

    def wifi(self, up):
        with open(os.path.join(self.data_dir, "sim", "wifi"), "w") as f:
            f.write("up" if up else "down")

    def status(self):
        # the device replaces status.json as atomic_file does (new -> current, current -> .old):
        # between its two renames only the .old copy is whole, so read that one then
        path = os.path.join(self.data_dir, "sim", "status.json")
        for p in (path, path + ".old"):
            try:
                with open(p) as f:
                    return json.load(f)
            except (OSError, ValueError):
                continue
        return None


SIM_ISSUER = "relays-sim-platform"  # iss of the device REST API tokens the platform mints here

SIM_CONFIG = {
    "relays": {
        "pump": {"pin": 2, "min_interval_ms": 500},
        "fan": {"pin": 3, "active_low": True},
        "valve_open": {"pin": 4, "min_interval_ms": 200},
        "valve_close": {"pin": 5, "min_interval_ms": 200},
        "bell": {"pin": 6, "pulse_ms": 1000},
    },
    "interlocks": [{"relays": ["valve_open", "valve_close"], "dead_ms": 300}],
    "restore_policy": "last",
    "heartbeat_period_s": 10,
    "heartbeat_max_missed": 6,
    "state_period_s": 10,
    "config_poll_period_s": 60,
    "log_level": "info",
}


def wait_for(predicate, timeout, what, interval=0.1):
    """predicate() until it returns a truthy value; AssertionError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)
