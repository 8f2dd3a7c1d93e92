"""Fixtures for end-to-end tests: real processes on 127.0.0.1 only. The helpers are in
e2e_harness.py (a module name of its own, so these tests run in one pytest session with
tests/rest and tests/platform).

- `platform`: the reference platform shared by the session; `own_platform(extra_args)`: one of
  the test's own (to stop, restart or start with other options), on a fixed port.
- `ntp`: a local NTP responder (tools/ntp_responder.py) for the session; none is an error.
- `sim_device(platform, config=..., ...)`: a device provisioned on the platform and started as
  the unix build running python/main.py, with a fresh data folder (e2e_harness.SimDevice)."""

import os
import secrets

import pytest

from e2e_harness import OPERATOR_TOKEN, SimDevice, base_config, sim
from e2e_harness import ntp, platform  # noqa: F401 (session fixtures, shared with tests/mqtt)


@pytest.fixture
def own_platform(tmp_path):
    made = []

    def make(extra_args=()):
        d = tmp_path / ("platform%d" % len(made))
        d.mkdir()
        p = sim.Platform(d, OPERATOR_TOKEN, extra_args=extra_args).start()
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


@pytest.fixture
def sim_device(tmp_path, ntp):
    if not os.path.exists(sim.MICROPYTHON):
        pytest.fail("no unix build at %s (make unix)" % sim.MICROPYTHON)
    made = []

    def make(platform, config=None, desired=None, start=True, **settings):
        cloud = platform.provision(base_config(ntp) if config is None else config,
                                   desired=desired)
        work = tmp_path / ("device%d" % len(made))
        work.mkdir()
        s = {"wifi_ssid": "e2e-ap", "wifi_password": "wifi-" + secrets.token_hex(8),
             "device_id": cloud.device_id, "device_key": cloud.key,
             "service_discovery_url": platform.url + "/v1/devices/register",
             "relay_pins": {"r1": 2, "r2": 3}, "log_level": "debug",
             "ntp_servers": ["127.0.0.1:%d" % ntp] if ntp else [],
             "rest_port": sim.free_port()}
        s.update(settings)
        dev = SimDevice(str(work), platform, cloud, s)
        made.append(dev)
        if start:
            dev.start()
        return dev
    yield make
    for dev in made:
        dev.kill()
