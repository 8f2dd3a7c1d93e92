"""A revoked device-API token, end to end: the operator revokes it on the platform, the
revocation list reaches the device in its next config version (api.revoked), and the device
refuses that token with 401 revoked while another token of the same key still switches."""

import os

import pytest

from e2e_harness import base_config, sim, wait_for

ISSUER = "https://platform.e2e/relays"


def test_revoked_token_is_refused_by_the_device(platform, sim_device, ntp):
    if not ntp:
        pytest.fail("no NTP responder: the device clock cannot be synced")
    cfg = base_config(ntp)
    cfg["api"] = {"jwt": {"key": os.urandom(32).hex(), "issuer": ISSUER,
                          "audience": "e2e-devices"}}
    dev = sim_device(platform, config=cfg)
    url = "http://127.0.0.1:%d" % dev.settings["rest_port"]
    dev.wait_status(lambda s: s["ready"] and s["config_version"] >= 1, "ready", timeout=30)

    stolen, kept = dev.cloud.mint_api_token(), dev.cloud.mint_api_token()

    def switch(token, state):
        try:
            return sim.http("POST", url + "/gpio/r1", {"state": state}, token=token["token"])
        except OSError:
            return None

    r = wait_for(lambda: switch(stolen, "HIGH"), 15, "the device REST API")
    assert r.status == 200, r
    r = platform.op("POST", dev.cloud.op_path("api-tokens/revoke"), {"jti": stolen["jti"]})
    assert r.status == 200 and r.json()["config_version"] == 2, r
    dev.wait_status(lambda s: s["config_version"] == 2, "the config with api.revoked applied")
    r = switch(stolen, "LOW")
    assert r.status == 401, r
    assert r.json() == {"error": "revoked", "message": "the token has been revoked",
                        "field": "jti"}, r.json()
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert dev.status()["relays"]["r1"] is True, "the revoked token moved a relay"
    r = switch(kept, "LOW")
    assert r.status == 200 and r.json()["state"] == "LOW", r
