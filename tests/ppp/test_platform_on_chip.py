"""The application's platform client on the chip: iotlib.auth_manager registers with the
reference platform (a real process on the host's 127.0.0.1, reached through libslirp as
10.0.2.2), fetches its config and sends heartbeats with the token, over plain HTTP (the
controller itself insists on https off loopback, which is why it is not started here). The
platform then stops and comes back on the same port: while it is gone a heartbeat fails with an
OSError (no crash, no hang), and after it the next one is answered."""

import sys
from pathlib import Path

from link import BoardCode
from slirp import HOST

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
from e2e_harness import OPERATOR_TOKEN, base_config, sim  # noqa: E402

# REPL globals persist between the phases
SETUP = """
import asyncio, json
from iotlib.auth_manager import AuthManager
a = AuthManager(%r, %r, "http://%s:%d/v1/devices/register", timeout_ms=20000)
seq = [0]

async def beat():
    seq[0] += 1
    try:
        r = await a.request("POST", "heartbeat", body={"seq": seq[0], "uptime_s": seq[0]},
                            timeout_ms=20000)
        return r.status
    except OSError as e:
        return "OSError"

async def first():
    await a.register()
    print("registered", a.tenant, a.namespace)
    r = await a.request("GET", "config", timeout_ms=20000)
    print("config", r.status, json.dumps(r.json()))
    print("beat", await beat())

asyncio.run(first())
"""
BEAT = "print('beat', asyncio.run(beat()))\n"


def said(out):
    # the program's own lines, without the app's JSON log lines
    return [ln for ln in out.strip().splitlines() if not ln.startswith("{")]


def test_register_config_heartbeat_outage(online, tmp_path):
    b = online
    platform = sim.Platform(tmp_path, OPERATOR_TOKEN).start()
    try:
        cloud = platform.provision(base_config())
        out, err = BoardCode(b, SETUP % (cloud.device_id, cloud.key, HOST, platform.port)).result(300)
        assert err == "", err
        lines = said(out)
        assert lines[0] == "registered %s %s" % (cloud.tenant, cloud.namespace)
        assert lines[1].startswith("config 200 ")
        assert '"relays"' in lines[1] and '"heartbeat_period_s": 1' in lines[1]
        assert lines[2] == "beat 200"
        assert cloud.get()["device"].get("last_heartbeat_at")  # the platform recorded it

        platform.stop()
        out, err = BoardCode(b, BEAT).result(300)
        assert (said(out), err) == (["beat OSError"], "")

        platform.start()
        out, err = BoardCode(b, BEAT).result(300)
        assert (said(out), err) == (["beat 200"], "")
    finally:
        platform.stop()
