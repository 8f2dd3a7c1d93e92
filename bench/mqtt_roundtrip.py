"""MQTT on the MicroPython unix build, over loopback (127.0.0.1 only): the round trip from a
command published by a client (paho-mqtt, QoS 1, as Home Assistant sends it) to the relay's
state published back by the device, p50/p99 over N commands, on the plain listener and over
TLS with a client certificate; and the heap the MQTT feature takes on the device (gc.mem_free
before and after importing the frozen modules, then connected with discovery and states sent).

The device is the real one: python/main.py on the unix build with its config from the reference
platform, mosquitto from Debian with its own config (tests/mqtt/mqtt_harness.py).

    .cache/venv/bin/python bench/mqtt_roundtrip.py [--smoke] [--count N]
"""

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from artifacts import ROOT, UNIX_BIN, need, unix_env
from report import table, write

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "mqtt"))
import mqtt_harness as mh  # noqa: E402
from e2e_harness import OPERATOR_TOKEN, SimDevice  # noqa: E402

COUNT = 200
RELAY, PIN = "r1", "2"

# runs on the unix build: the MQTT feature's heap, frozen modules as on the board
HEAP_SCRIPT = r"""
import gc, sys, json
import asyncio
gc.collect()
from iotlib import logger
from iotlib.relay_gpio_manager import RelayGPIOManager
logger.setup(echo=False)
host, port, user, password, data = sys.argv[1:6]
port = int(port)
cfg = {"relays": {"r%d" % i: {"pin": i + 1} for i in range(1, 9)},
       "inputs": {"door": {"pin": 20}}, "restore_policy": "off",
       "mqtt": {"host": host, "port": port, "username": user, "password": password}}
relays = RelayGPIOManager(data)
relays.start(cfg)
class Conf:
    config = cfg
class Ctl:
    device_id = "bench-heap"
    data_dir = data
    firmware_version = "0.1.0"
    config = Conf()
    alarm_listeners = []
ctl = Ctl()
ctl.relays = relays
gc.collect()
f0 = gc.mem_free()
from iotlib import mqtt_client, mqtt_bridge
gc.collect()
f1 = gc.mem_free()
b = mqtt_bridge.MqttBridge(ctl)
async def main():
    t = asyncio.create_task(b.run())
    for _ in range(500):
        await asyncio.sleep_ms(10)
        if b.client is not None and not b.announce_due and not b.pending:
            break
    await asyncio.sleep_ms(200)
    gc.collect()
    f2 = gc.mem_free()
    t.cancel()
    return f2
f2 = asyncio.run(main())
print("HEAP " + json.dumps({"import": f0 - f1, "connected": f0 - f2, "free_after": f2,
                            "connects": b.connects}))
"""


def device(platform, broker, certs, passwords, ntp_dir, work, tls):
    mqtt = mh.mqtt_block(broker, passwords)
    if tls:
        mqtt = {"host": "127.0.0.1", "port": broker.tls_port, "tls": True,
                "ca_cert": certs.ca_pem, "client_cert": certs.client_pem,
                "client_key": certs.client_key_pem, "keepalive_s": 30}
    cfg = {"relays": {"r1": {"pin": 2}, "r2": {"pin": 3}}, "restore_policy": "off",
           "heartbeat_period_s": 30, "state_period_s": 60, "config_poll_period_s": 300,
           "log_level": "warning", "ntp_servers": [],
           "rate_limits": {"default": {"requests": 10000, "window_s": 1}}, "mqtt": mqtt}
    cloud = platform.provision(cfg)
    s = {"wifi_ssid": "bench-ap", "wifi_password": "wifi-" + secrets.token_hex(8),
         "device_id": cloud.device_id, "device_key": cloud.key,
         "service_discovery_url": platform.url + "/v1/devices/register",
         "relay_pins": {"r1": 2, "r2": 3}, "log_level": "warning", "ntp_servers": [],
         "rest_port": mh.sim.free_port()}
    work.mkdir()
    return SimDevice(str(work), platform, cloud, s).start()


def round_trips(dev, watcher, count):
    base = "relays/%s/relay/%s" % (dev.cloud.device_id, RELAY)
    watcher.wait("relays/%s/availability" % dev.cloud.device_id, "online", 60)
    watcher.wait(base + "/state", "OFF", 30)
    out = []
    for i in range(count):
        want = "ON" if i % 2 == 0 else "OFF"
        mark = watcher.mark()
        t0 = time.monotonic()
        watcher.publish(base + "/set", want)
        got = watcher.wait(base + "/state", want, 10, since=mark)
        out.append((got[0][3] - t0) * 1000)
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def heap(broker, passwords, tmp):
    data = tmp / "heapdata"
    data.mkdir()
    script = tmp / "mqtt_heap.py"
    script.write_text(HEAP_SCRIPT)
    out = subprocess.run([str(UNIX_BIN), str(script), "127.0.0.1", str(broker.port),
                          mh.DEVICE_USER, passwords[mh.DEVICE_USER], str(data)],
                         env=unix_env(), cwd=str(ROOT), capture_output=True, text=True,
                         timeout=60)
    for line in out.stdout.splitlines():
        if line.startswith("HEAP "):
            return json.loads(line[5:])
    raise RuntimeError("heap script failed: " + out.stdout + out.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="20 commands per mode")
    ap.add_argument("--count", type=int, default=None)
    args = ap.parse_args(argv)
    need(UNIX_BIN, "unix")
    count = args.count or (20 if args.smoke else COUNT)
    results = {}
    with tempfile.TemporaryDirectory(prefix="mqtt_roundtrip-") as tmp:
        tmp = Path(tmp)
        (tmp / "certs").mkdir()
        (tmp / "broker").mkdir()
        certs = mh.Certs(str(tmp / "certs"))
        passwords = {mh.DEVICE_USER: "dev-" + secrets.token_hex(8),
                     mh.WATCHER_USER: "ha-" + secrets.token_hex(8)}
        broker = mh.Broker(tmp / "broker", certs, passwords).start()
        (tmp / "platform").mkdir()
        platform = mh.sim.Platform(tmp / "platform", OPERATOR_TOKEN).start()
        watcher = mh.Watcher(broker, passwords[mh.WATCHER_USER]).start()
        devs = []
        try:
            for mode, tls in (("plain", False), ("tls", True)):
                dev = device(platform, broker, certs, passwords, tmp, tmp / ("dev-" + mode), tls)
                devs.append(dev)
                ms = round_trips(dev, watcher, count)
                results[mode] = {"count": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
                                 "mean_ms": statistics.mean(ms), "max_ms": max(ms)}
                dev.kill()
            results["heap"] = heap(broker, passwords, tmp)
        finally:
            for d in devs:
                d.kill()
            watcher.stop()
            platform.stop()
            broker.stop()
    rows = [(m, r["count"], r["p50_ms"], r["p99_ms"], r["mean_ms"], r["max_ms"])
            for m, r in results.items() if m != "heap"]
    t1 = table("MQTT round trip: command published -> state published (ms, unix build, loopback)",
               ["listener", "commands", "p50", "p99", "mean", "max"], rows)
    h = results["heap"]
    t2 = table("Heap of the MQTT feature (gc.mem_free after gc.collect, frozen modules, 8 relays"
               " + 1 input)", ["what", "bytes"],
               [("import mqtt_client + mqtt_bridge", h["import"]),
                ("connected: bridge, client, discovery and states sent", h["connected"])])
    write("mqtt_roundtrip", results, [t1, t2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
