"""The whole RelaysController on the PPP board in the emulated RP2040, started by the frozen
main.py's run() with the options a /device.json would hold ("link": "ppp"): the NetworkManager
brings PPP up, the controller registers with the reference platform (a real process on the
host's 127.0.0.1, reached through libslirp as 10.0.2.2) over https with a local CA, applies
its config, syncs its clock from tools/ntp_responder.py and heartbeats. A token minted by the
platform switches relay r1 over the device REST API with TLS, as a board ships, and the
emulated GP2 follows; four TLS clients at once are all served (one TLS session at a time, the
others wait accepted: iotlib.tls_listener); plain HTTP serves the probes only; a forged token is
refused with no pin transition; the platform stops and comes back while the relay holds.

Set-up: controller_program.py."""

import pytest

from conftest import UF2
from controller_program import RELAY_PIN, ChipController
from rest_program import concurrent, request
from slirp import HOST
from sse_client import open_event_stream, read_events  # tests/e2e, via controller_program


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    if not UF2.exists():
        pytest.fail(f"no firmware at {UF2}: build it with `make firmware BOARD=RELAYS_PICO_PPP`")
    c = ChipController(UF2, tmp_path_factory.mktemp("controller"))
    try:
        yield c.start()
    finally:
        c.close()


def gp(c):
    return c.pin()


def test_registers_applies_config_syncs_time_and_heartbeats(chip):
    c = chip
    up = c.wait_log("PPP connected", 120)
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
    c.wait_log("REST API listening", 300, port=443, tls=True, plain_port=80)
    tok = c.cloud.mint_api_token(role="operator")["token"]
    status, body = c.request("POST", "/gpio/r1", {"state": "HIGH"}, tok)
    assert status == 200, body
    c.board.wait_for(lambda: gp(c) == 1, 60, "GP2 high")
    status, body = c.request("GET", "/gpio/r1", None, tok)
    assert (status, body["state"]) == (200, "HIGH"), body


def test_four_concurrent_tls_clients_served(chip):
    c = chip
    tok = c.cloud.mint_api_token(role="viewer")["token"]
    want = "HIGH" if gp(c) else "LOW"
    results = concurrent(4, 3, lambda: c.request("GET", "/gpio/r1", None, tok))
    assert len(results) == 12
    assert all(st == 200 and body["state"] == want for st, body in results), results
    assert not c.logged("TLS session failed to start")
    assert "Traceback" not in c.output()


def test_web_page_event_stream_over_tls_makes_way_for_a_switch(chip):
    # the page keeps GET /events open in the one TLS session place; a switch from another
    # client takes the place at once (the stream is closed, the page connects again), GP2
    # follows, and the next stream's hello has the new state
    c = chip
    tok = c.cloud.mint_api_token(role="operator")["token"]
    want = "LOW" if gp(c) else "HIGH"
    with open_event_stream(c.client_tls, c.rest_port, tok) as stream:
        got = read_events(stream, b"event: hello")
        status, body = c.request("POST", "/gpio/r1", {"state": want}, tok)
        assert (status, body["state"]) == (200, want), body
        read_events(stream, None, got)  # closed to make way
    c.board.wait_for(lambda: gp(c) == (want == "HIGH"), 60, "GP2 follows")
    with open_event_stream(c.client_tls, c.rest_port, tok) as stream:
        hello = read_events(stream, b"event: hello")
    assert ('"state": "%s"' % want).encode() in hello.split(b"event: hello", 1)[1], hello[-300:]
    assert not c.logged("TLS session failed to start")


def test_plain_http_serves_the_probes_only(chip):
    c = chip
    tok = c.cloud.mint_api_token(role="operator")["token"]
    before = gp(c)
    assert request(c.plain_port, "GET", "/health")[0] == 200
    status, body = request(c.plain_port, "POST", "/gpio/r1", {"state": "TOGGLE"}, tok)
    assert (status, body["error"]) == (403, "tls_required"), body
    assert gp(c) == before


def test_forged_token_refused_and_pin_untouched(chip):
    c = chip
    before = gp(c)
    log0 = len(c.board.call("log", pins=[RELAY_PIN])["log"])
    forged = c.cloud.mint_api_token(role="operator")["token"].rsplit(".", 1)[0] + ".AAAA"
    status, body = c.request("POST", "/gpio/r1", {"state": "TOGGLE"}, forged)
    assert status == 401 and body["error"], body
    status, body = c.request("POST", "/gpio/r1", {"state": "TOGGLE"}, None)
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
