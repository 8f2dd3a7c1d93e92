"""Fixtures for the MQTT tests: mosquitto, the reference platform and the device (unix build)
as real processes on 127.0.0.1; helpers in mqtt_harness.py.

- `broker`: a fresh mosquitto (plain + TLS listeners) per test; `watcher`: a paho client on it.
- `mqtt_device(mqtt=..., config=...)`: a device provisioned on the platform with a config whose
  `mqtt` block points at the broker, started as python/main.py on the unix build."""

import os
import secrets

import pytest

from mqtt_harness import DEVICE_USER, WATCHER_USER, Broker, Certs, Watcher, mqtt_block, sim
from e2e_harness import SimDevice, base_config
from e2e_harness import ntp, platform  # noqa: F401 (session fixtures)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def passwords():
    return {DEVICE_USER: "dev-" + secrets.token_hex(8), WATCHER_USER: "ha-" + secrets.token_hex(8)}


@pytest.fixture
def broker(tmp_path, certs, passwords):
    d = tmp_path / "broker"
    d.mkdir()
    b = Broker(d, certs, passwords).start()
    yield b
    b.stop()


@pytest.fixture
def watcher(broker, passwords):
    w = Watcher(broker, passwords[WATCHER_USER]).start()
    yield w
    w.stop()


@pytest.fixture
def mqtt_device(tmp_path, ntp, platform, broker, passwords):
    if not os.path.exists(sim.MICROPYTHON):
        raise AssertionError("no unix build at %s (make unix)" % sim.MICROPYTHON)
    made = []

    def make(mqtt=None, config=None, start=True, device_id=None):
        cfg = config or base_config(ntp, inputs={"door": {"pin": 10}})
        cfg["mqtt"] = mqtt or mqtt_block(broker, passwords)
        cloud = platform.provision(cfg, device_id=device_id)
        work = tmp_path / ("device%d" % len(made))
        work.mkdir()
        s = {"wifi_ssid": "mqtt-ap", "wifi_password": "wifi-" + secrets.token_hex(8),
             "device_id": cloud.device_id, "device_key": cloud.key,
             "service_discovery_url": platform.url + "/v1/devices/register",
             "relay_pins": {"r1": 2, "r2": 3}, "log_level": "debug",
             "ntp_servers": ["127.0.0.1:%d" % ntp] if ntp else [],
             "rest_port": sim.free_port()}
        dev = SimDevice(str(work), platform, cloud, s)
        dev.config = cfg
        made.append(dev)
        if start:
            dev.start()
        return dev
    yield make
    for dev in made:
        dev.kill()
