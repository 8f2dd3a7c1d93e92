"""The device REST API (iotlib.rest_api with the real JWTValidator, RBAC, rate limiter and
RelayGPIOManager on the relaygpio C module) served by the PPP board on the emulated RP2040,
reached from the host through the forwarded port. The board-side program is tests/rest's
device_api_server.py as it is, listening on the PPP address, with its data on a RAM LittleFS
(the emulated flash takes no writes). Tokens are HS256, made on the host with the device's key
(tests/rest/rest_harness.token), and one minted by the reference platform (a real process on
127.0.0.1) with the key of the device's config; the host hands that key to the board's
validator (the controller would fetch it with the config), through the program's control port."""

import sys
import time
from pathlib import Path

import pytest

from conftest import UF2
from link import OPEN_PPP, WAIT_UP, BoardCode, PPPBoard
from rest_program import board_program, concurrent, free_port, request, rh



@pytest.fixture(scope="module")
def rest_board(tmp_path_factory):
    if not UF2.exists():
        pytest.fail(f"no firmware at {UF2}: build it with `make firmware BOARD=RELAYS_PICO_PPP`")
    b = PPPBoard(UF2, log=tmp_path_factory.mktemp("ppp") / "emulator.log")
    try:
        b.emu.prompt()
        assert b.emu.exec(OPEN_PPP).strip() == "connecting"
        b.start()
        b.wait_for(lambda: b.peer.ip_up, 60, "PPP up")
        assert BoardCode(b, WAIT_UP).result(60)[0].strip() == "True"
        port, ctl = free_port(), free_port()
        with b.lock:
            b.slirp.add_hostfwd(port, 80)
            b.slirp.add_hostfwd(ctl, 8080)
        settings = {"port": 80, "control_port": 8080, "data_dir": "/ram/d", "device": rh.DEVICE,
                    "jwt": {"key": rh.KEY.decode(), "issuer": rh.ISSUER, "audience": rh.AUDIENCE},
                    "tenant": rh.TENANT, "namespace": rh.NAMESPACE}
        server = BoardCode(b, board_program(settings))
        b.wait_for(lambda: server.done() or "serving on" in server.text, 300, "the REST API")
        assert "serving on" in server.text, server.text[-1500:]
        # the listener opens just after the line is printed: bounded retries
        for _ in range(50):
            try:
                status, _ = request(port, "GET", "/health", timeout=10)
                if status == 200:
                    break
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.2)
        b.rest_port = port
        b.ctl_port = ctl
        b.server = server
        yield b
    finally:
        b.close()


def gp(b, pin):
    return b.call("pins")["pins"][pin]


def test_token_switches_relay_and_emulated_gpio_follows(rest_board):
    b = rest_board
    op = rh.token()
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "HIGH"}, op)
    assert status == 200, body
    b.wait_for(lambda: gp(b, 2) == 1, 30, "GP2 high")
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "LOW"}, op)
    assert status == 200, body
    b.wait_for(lambda: gp(b, 2) == 0, 30, "GP2 low")


def test_bad_token_refused_relay_unchanged(rest_board):
    b = rest_board
    before = (gp(b, 2), gp(b, 3))
    log0 = len(b.call("log", pins=[2, 3])["log"])
    forged = rh.token(key=b"another-key-0123456789abcdef-0123")
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "TOGGLE"}, forged)
    assert status == 401 and body["error"], body
    status, body = request(b.rest_port, "POST", "/gpio/r2", {"state": "HIGH"}, None)
    assert status == 401, body
    assert (gp(b, 2), gp(b, 3)) == before
    assert len(b.call("log", pins=[2, 3])["log"]) == log0  # no pin moved, not even briefly


def test_four_concurrent_clients_served(rest_board):
    b = rest_board
    tok = rh.token()
    status, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "HIGH"}, tok)
    assert status == 200, body
    results = concurrent(4, 3, lambda: request(b.rest_port, "GET", "/gpio/r1", None, tok))
    assert len(results) == 12
    assert all(st == 200 and body["state"] == "HIGH" for st, body in results), results
    assert gp(b, 2) == 1


def test_platform_minted_token_switches_relay(rest_board, tmp_path):
    import secrets

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
    from e2e_harness import OPERATOR_TOKEN, sim

    b = rest_board
    # the config carries the key in hex (the controller unhexlifies it); printable bytes let the
    # control port's JSON carry the same key to the validator
    raw = "platform-key-" + secrets.token_hex(12)
    key = raw.encode().hex()
    platform = sim.Platform(tmp_path, OPERATOR_TOKEN).start()
    try:
        cloud = platform.provision({"relays": rh.DEVICE["relays"],
                                    "api": {"jwt": {"key": key, "issuer": rh.ISSUER,
                                                    "audience": rh.AUDIENCE}}})
        r = platform.op("POST", cloud.op_path("api-tokens"), {"role": "operator"})
        assert r.status == 201, r
        minted = r.json()["token"]
    finally:
        platform.stop()
    # the config's key and the device's tenancy, as the controller would apply them
    st, body = request(b.ctl_port, "POST", "/sim", {"jwt_key": raw, "tenant": cloud.tenant,
                                                   "namespace": cloud.namespace})
    assert st == 200, body
    try:
        level = 1 - gp(b, 2)
        st, body = request(b.rest_port, "POST", "/gpio/r1",
                           {"state": "HIGH" if level else "LOW"}, minted)
        assert st == 200, body
        b.wait_for(lambda: gp(b, 2) == level, 30, "GP2 switched by the platform's token")
        # the test's own tokens (the old key) are refused from now on, the pin untouched
        st, body = request(b.rest_port, "POST", "/gpio/r1", {"state": "TOGGLE"}, rh.token())
        assert st == 401, body
        assert gp(b, 2) == level
    finally:
        request(b.ctl_port, "POST", "/sim", {"jwt_key": rh.KEY.decode(), "tenant": rh.TENANT,
                                            "namespace": rh.NAMESPACE})
