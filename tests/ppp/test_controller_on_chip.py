"""The whole RelaysController on the PPP board in the emulated RP2040, started by the frozen
main.py's run() with the options a /device.json would hold ("link": "ppp"): the NetworkManager
brings PPP up, the controller registers with the reference platform (a real process on the
host's 127.0.0.1, reached through libslirp as 10.0.2.2) over https with a local CA, applies
its config, syncs its clock from tools/ntp_responder.py and heartbeats. A token minted by the
platform switches relay r1 over the device REST API and the emulated GP2 follows; a forged one
is refused with no pin transition; the platform stops and comes back while the relay holds.

The device's data lives on a RAM LittleFS (tests/ppp/rest_program.py). Its REST API is plain
HTTP (api.allow_plain_http): one TLS session at a time is what the heap affords next to the
platform's (iotlib.http_client.reserve_tls_heap)."""

import json
import secrets
import sys
import time
from pathlib import Path

import pytest

from conftest import UF2
from link import BoardCode, PPPBoard
from rest_program import RAM_FS, free_port, request
from slirp import HOST

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))
sys.path.insert(0, str(HERE.parent.parent / "tools"))
from e2e_harness import OPERATOR_TOKEN, base_config, sim  # noqa: E402
from local_ca import LocalCA  # noqa: E402
from reference_platform.process import trust_ca  # noqa: E402

ISSUER = "relays-platform"
RELAY_PIN = 2

START = """
import gc, main
gc.collect()
print('heap before start', gc.mem_free())
main.run(main.board_opts(%r))
"""


class Controller:
    """The controller running on the board, and what it printed (its JSON log lines)."""

    def __init__(self, board, opts):
        self.board = board
        self.code = BoardCode(board, START % (opts,))

    def lines(self):
        self.code.done()
        out = []
        for ln in self.code.text.replace("\r\n", "\n").split("\n"):
            if ln.startswith("{"):
                try:
                    out.append(json.loads(ln))
                except ValueError:
                    pass
        return out

    def logged(self, msg, **fields):
        return [r for r in self.lines() if r.get("msg") == msg
                and all(r.get(k) == v for k, v in fields.items())]

    def wait_log(self, msg, timeout_s, **fields):
        self.board.wait_for(lambda: self.code.done() or self.logged(msg, **fields), timeout_s,
                            "log line %r" % msg)
        assert not self.code.done(), "the controller stopped:\n" + self.code.text[-3000:]
        return self.logged(msg, **fields)


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    if not UF2.exists():
        pytest.fail(f"no firmware at {UF2}: build it with `make firmware BOARD=RELAYS_PICO_PPP`")
    work = tmp_path_factory.mktemp("controller")
    ca = LocalCA(str(work / "tls"))
    # the platform's certificate names the address the device reaches it by
    platform_tls = ca.issue("platform", hosts=(HOST, "127.0.0.1"))
    trust_ca(ca.cert_path)
    ntp = sim.NtpResponder(work).start()
    if ntp is None:
        pytest.fail("no NTP responder: tools/ntp_responder.py did not start")
    platform = sim.Platform(work, OPERATOR_TOKEN, tls=platform_tls).start()
    b = None
    try:
        key = secrets.token_hex(32)
        cloud = platform.provision(base_config(
            relays={"r1": {"pin": RELAY_PIN}}, heartbeat_period_s=10, state_period_s=10,
            config_poll_period_s=30, ntp_servers=["%s:%d" % (HOST, ntp.port)],
            # the emulated chip runs slower than wall time (about 0.45x when busy), so its
            # clock falls behind the host's between syncs: resync often, and allow for the lag
            # in the tokens' times
            ntp_period_s=30,
            api={"jwt": {"key": key, "issuer": ISSUER, "audience": "chip-devices",
                         "leeway_s": 120},
                 "allow_plain_http": True}))
        b = PPPBoard(UF2, log=work / "emulator.log")
        b.emu.prompt()
        t = time.gmtime()
        b.emu.exec(RAM_FS % ((t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min,
                              t.tm_sec, 0),))
        b.emu.exec("f = open('/ram/ca.pem', 'w')\nf.write(%r)\nf.close()"
                   % Path(ca.cert_path).read_text())
        rest_port = free_port()
        b.slirp.add_hostfwd(rest_port, 80)
        b.start()
        opts = {"link": "ppp", "ppp_uart": 0, "ppp_baud": 921600,
                "device_id": cloud.device_id, "device_key": cloud.key,
                "service_discovery_url": "https://%s:%d/v1/devices/register" % (HOST, platform.port),
                "relay_pins": {"r1": RELAY_PIN}, "data_dir": "/ram/d", "ca_cert": "/ram/ca.pem",
                "tenant": cloud.tenant, "namespace": cloud.namespace}
        c = Controller(b, opts)
        c.platform, c.cloud, c.rest_port, c.ntp_port = platform, cloud, rest_port, ntp.port
        yield c
    finally:
        if b is not None:
            b.close()
        platform.stop()
        ntp.stop()


def gp(c, pin=RELAY_PIN):
    return c.board.call("pins")["pins"][pin]


def test_registers_applies_config_syncs_time_and_heartbeats(chip):
    c = chip
    up = c.wait_log("WiFi connected", 120)
    assert up[0]["ip"] == "10.0.2.15"  # the address the host's PPP peer assigned
    reg = c.wait_log("registered", 300)
    assert (reg[0]["tenant"], reg[0]["namespace"]) == (c.cloud.tenant, c.cloud.namespace)
    c.wait_log("config applied", 300, version=1)
    synced = c.wait_log("time synchronised", 300)
    assert synced[0]["server"] == "%s:%d" % (HOST, c.ntp_port)
    c.board.wait_for(lambda: c.cloud.get()["device"].get("last_heartbeat_at"), 300,
                     "a heartbeat the platform recorded")
    assert not c.logged("boot")[1:], "one boot only"


def test_platform_minted_token_switches_relay_and_gpio_follows(chip):
    c = chip
    c.wait_log("REST API listening", 300, port=80)
    tok = c.cloud.mint_api_token(role="operator")["token"]
    status, body = request(c.rest_port, "POST", "/gpio/r1", {"state": "HIGH"}, tok)
    assert status == 200, body
    c.board.wait_for(lambda: gp(c) == 1, 60, "GP2 high")
    status, body = request(c.rest_port, "GET", "/gpio/r1", None, tok)
    assert (status, body["state"]) == (200, "HIGH"), body


def test_forged_token_refused_and_pin_untouched(chip):
    c = chip
    before = gp(c)
    log0 = len(c.board.call("log", pins=[RELAY_PIN])["log"])
    forged = c.cloud.mint_api_token(role="operator")["token"].rsplit(".", 1)[0] + ".AAAA"
    status, body = request(c.rest_port, "POST", "/gpio/r1", {"state": "TOGGLE"}, forged)
    assert status == 401 and body["error"], body
    status, body = request(c.rest_port, "POST", "/gpio/r1", {"state": "TOGGLE"}, None)
    assert status == 401, body
    assert gp(c) == before
    assert len(c.board.call("log", pins=[RELAY_PIN])["log"]) == log0  # not even a glitch


def test_platform_outage_and_return_relay_holds(chip):
    c = chip
    level = gp(c)
    missed0 = len(c.logged("heartbeat missed"))
    c.platform.stop()
    try:
        c.board.wait_for(lambda: len(c.logged("heartbeat missed")) > missed0, 300,
                         "a missed heartbeat while the platform is down")
    finally:
        c.platform.start()
    c.wait_log("heartbeat answered again", 300)
    assert gp(c) == level
    assert not c.logged("boot")[1:], "no reset for an outage"
