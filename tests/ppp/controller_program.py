"""The whole RelaysController on the PPP board, with its platform: what
tests/ppp/test_controller_on_chip.py and bench/controller_on_chip.py run.

ChipController.start() makes a local CA (the platform's certificate names 10.0.2.2, the address
the device reaches the host by), an NTP responder and the reference platform over https on the
host's 127.0.0.1, and provisions a device. The board is then powered on as a provisioned board
is: the PPP firmware with a littlefs image in its flash holding /device.json ("link": "ppp")
and /ca.pem, as `mpremote cp` would leave them (tools/littlefs_image.py). The frozen main.py
starts the controller at boot; it keeps its data in /data on the board's own flash filesystem
(the emulator programs and erases flash: tests/hil/flash_writes.mjs). The device REST API
serves TLS on port 443 with a certificate from the same CA (/rest.pem, /rest.key), as a board
ships, and plain HTTP on port 80 for the probes only; both are forwarded to host ports
(rest_port, plain_port), and `client_tls` is the host's context that trusts the CA."""

import json
import secrets
import ssl
import sys
from pathlib import Path

from link import PPPBoard
from rest_program import free_port, request
from slirp import HOST

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent.parent / "tools"))
from e2e_harness import OPERATOR_TOKEN, base_config, sim  # noqa: E402
import littlefs_image  # noqa: E402
from local_ca import LocalCA  # noqa: E402
from reference_platform.process import trust_ca  # noqa: E402

ISSUER = "relays-platform"
RELAY_PIN = 2
STORAGE_BYTES = 848 * 1024  # boards/RELAYS_PICO_PPP/mpconfigboard.h


def chip_config(ntp_port, **over):
    cfg = base_config(
        relays={"r1": {"pin": RELAY_PIN}}, heartbeat_period_s=10, state_period_s=10,
        config_poll_period_s=30, ntp_servers=["%s:%d" % (HOST, ntp_port)],
        # the emulated chip runs slower than wall time (about 0.45x when busy), so its clock
        # falls behind the host's between syncs: resync often, and allow for the lag in the
        # tokens' times
        ntp_period_s=30,
        api={"jwt": {"key": secrets.token_hex(32), "issuer": ISSUER, "audience": "chip-devices",
                     "leeway_s": 120}})
    cfg.update(over)
    return cfg


class ChipController:
    def __init__(self, uf2, work):
        self.uf2 = uf2
        self.work = Path(work)
        self.board = self.platform = self.ntp = None
        self.text = ""

    def start(self, **config_over):
        ca = LocalCA(str(self.work / "tls"))
        platform_tls = ca.issue("platform", hosts=(HOST, "127.0.0.1"))
        trust_ca(ca.cert_path)
        self.ntp = sim.NtpResponder(self.work).start()
        if self.ntp is None:
            raise RuntimeError("no NTP responder: tools/ntp_responder.py did not start")
        self.ntp_port = self.ntp.port
        self.platform = sim.Platform(self.work, OPERATOR_TOKEN, tls=platform_tls).start()
        self.cloud = self.platform.provision(chip_config(self.ntp_port, **config_over))
        rest_cert, rest_key = ca.issue("device", hosts=("127.0.0.1",))
        self.client_tls = ssl.create_default_context(cafile=ca.cert_path)
        self.rest_port, self.plain_port = free_port(), free_port()
        opts = {"link": "ppp", "ppp_uart": 0, "ppp_baud": 921600,
                "device_id": self.cloud.device_id, "device_key": self.cloud.key,
                "service_discovery_url": "https://%s:%d/v1/devices/register" % (
                    HOST, self.platform.port),
                "relay_pins": {"r1": RELAY_PIN}, "ca_cert": "/ca.pem",
                "rest_tls_cert": "/rest.pem", "rest_tls_key": "/rest.key",
                "tenant": self.cloud.tenant, "namespace": self.cloud.namespace,
                # a board starts with its RTC in 2021 and cannot check the platform's
                # certificate before a time sync: the NTP server comes with the provisioning,
                # not only with the config it has yet to fetch (no pool.ntp.org here)
                "ntp_servers": ["%s:%d" % (HOST, self.ntp_port)]}
        uf2 = self.work / "firmware-provisioned.uf2"
        littlefs_image.build(uf2, {"device.json": json.dumps(opts).encode(),
                                   "ca.pem": Path(ca.cert_path).read_bytes(),
                                   "rest.pem": Path(rest_cert).read_bytes(),
                                   "rest.key": Path(rest_key).read_bytes()},
                             firmware=self.uf2, storage_bytes=STORAGE_BYTES)
        b = self.board = PPPBoard(uf2, log=self.work / "emulator.log")
        b.slirp.add_hostfwd(self.rest_port, 443)
        b.slirp.add_hostfwd(self.plain_port, 80)
        self.text = ""
        b.start()  # from power-on: main.py brings PPP up itself
        return self

    def close(self):
        if self.board is not None:
            self.board.close()
        if self.platform is not None:
            self.platform.stop()
        if self.ntp is not None:
            self.ntp.stop()

    # ---- what the controller printed: its JSON log lines ----

    def output(self):
        with self.board.lock:
            self.text += self.board.emu.call("read")["data"]
        return self.text.replace("\r\n", "\n")

    def lines(self):
        out = []
        for ln in self.output().split("\n"):
            if ln.startswith("{"):
                try:
                    out.append(json.loads(ln))
                except ValueError:
                    pass
        return out

    def printed(self, prefix):
        return [ln for ln in self.output().split("\n") if ln.startswith(prefix)]

    def stopped(self):
        # the controller returned (or never started) and left the board at its prompt
        return ">>> " in self.output()

    def logged(self, msg, **fields):
        return [r for r in self.lines() if r.get("msg") == msg
                and all(r.get(k) == v for k, v in fields.items())]

    def wait_log(self, msg, timeout_s, **fields):
        self.board.wait_for(lambda: self.stopped() or self.logged(msg, **fields), timeout_s,
                            "log line %r" % msg)
        assert not self.stopped(), "the controller stopped:\n" + self.text[-3000:]
        return self.logged(msg, **fields)

    def request(self, method, path, body=None, token=None):
        # one request to the REST API over TLS -> (status, JSON body or None)
        return request(self.rest_port, method, path, body, token, tls=self.client_tls)

    def pin(self, pin=RELAY_PIN):
        return self.board.call("pins")["pins"][pin]
