"""End-to-end helpers: the reference platform as a real process on 127.0.0.1 (restartable on
the same port and database, so a device's service URLs and token survive an outage), operator
calls, and device provisioning."""

import os
import secrets
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (ROOT, os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import release as release_tool  # noqa: E402  (tools/release.py)
from reference_platform.process import (  # noqa: E402,F401
    OperatorDevice, PlatformProcess, Reply, free_port, http)

OPERATOR_TOKEN = "e2e-operator-" + "t" * 20
HTTPResult = Reply


class PlatformProc(PlatformProcess):
    """python -m reference_platform on a fixed loopback port; stop() and start() keep the data."""

    def __init__(self, workdir, port=None, extra_args=()):
        super().__init__(workdir, OPERATOR_TOKEN, port=port or free_port(),
                         extra_args=extra_args)

    def provision(self, config=None, prefix="e2e"):
        """A new tenant/namespace/device (with a config when given) -> DeviceCreds."""
        tenant = "%s-%s" % (prefix, secrets.token_hex(3))
        for path, name in (("/v1/operator/tenants", tenant),
                           ("/v1/operator/tenants/%s/namespaces" % tenant, "lab")):
            r = self.op("POST", path, json_body={"name": name})
            assert r.status == 201, r
        dev = DeviceCreds(self, tenant, "lab", "pico-" + secrets.token_hex(4),
                          secrets.token_hex(16))
        r = self.op("POST", dev.op_path()[:-(len(dev.device_id) + 1)],
                    json_body={"device_id": dev.device_id, "device_key": dev.key})
        assert r.status == 201, r
        if config is not None:
            r = self.op("PUT", dev.op_path("config"), json_body=config)
            assert r.status == 200, r
        return dev


class DeviceCreds(OperatorDevice):
    """A provisioned device; publish() posts an OTA image and its signed release
    (tools/release.py's sign()) to its namespace."""

    def publish(self, image, release):
        path = "/v1/operator/tenants/%s/namespaces/%s/ota?%s" % (
            self.tenant, self.namespace, release_tool.upload_query(release))
        return self.platform.op("POST", path, data=image)
