"""End-to-end helpers: the reference platform as a real process on 127.0.0.1 (restartable on
the same port and database, so a device's service URLs and token survive an outage), operator
calls, and device provisioning (PlatformProcess.provision)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (ROOT, os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import release as release_tool  # noqa: E402  (tools/release.py)
from reference_platform.process import OperatorDevice, free_port  # noqa: E402,F401
from simulation import Platform  # noqa: E402

OPERATOR_TOKEN = "e2e-operator-" + "t" * 20


class DeviceCreds(OperatorDevice):
    """A provisioned device; publish() posts an OTA image and its signed release
    (tools/release.py's sign()) to its namespace."""

    def publish(self, image, release):
        path = "/v1/operator/tenants/%s/namespaces/%s/ota?%s" % (
            self.tenant, self.namespace, release_tool.upload_query(release))
        return self.platform.op("POST", path, data=image)


class PlatformProc(Platform):
    """python -m reference_platform on a fixed loopback port; stop() and start() keep the data.
    provision() makes DeviceCreds."""

    device_class = DeviceCreds

    def __init__(self, workdir, port=None, extra_args=()):
        super().__init__(workdir, OPERATOR_TOKEN, port=port, extra_args=extra_args)
