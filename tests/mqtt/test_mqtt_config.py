"""The config's mqtt block: the device's check (iotlib/config_schema.py on the unix build) and the
platform's JSON Schema + cross rules (reference_platform/validation.py) give the same verdict and
name the same field on valid blocks and single-fault variants; secrets stay out of messages."""

import copy
import json
import os
import subprocess

from mqtt_harness import ROOT, sim
from reference_platform.validation import check_config

SCRIPT = os.path.join(ROOT, "tests", "e2e", "device_scripts", "config_check.py")
PEM = "-----BEGIN CERTIFICATE-----\n" + "A" * 64 + "\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\n" + "s3cr3t" * 12 + "\n-----END PRIVATE KEY-----\n"
FULL = {"enabled": True, "host": "broker.lan", "port": 8883, "tls": True, "ca_cert": PEM,
        "client_cert": PEM, "client_key": KEY, "username": "pico", "password": "hunter2-secret",
        "client_id": "pico-1", "topic_prefix": "site/relays", "discovery_prefix": "homeassistant",
        "discovery": True, "command_role": "switcher", "keepalive_s": 30}


def base(mqtt):
    return {"relays": {"a": {"pin": 2}},
            "api": {"roles": {"switcher": {"permissions": ["relays:write"]}}}, "mqtt": mqtt}


def variants():
    out = [("minimal", base({"host": "10.0.0.5"})), ("full", base(FULL)),
           ("disabled", base({"host": "h", "enabled": False})),
           ("plain with password", base({"host": "h", "username": "u", "password": "p"}))]

    def v(label, fn):
        m = copy.deepcopy(FULL)
        fn(m)
        out.append((label, base(m)))

    v("no host", lambda m: m.pop("host"))
    v("host with port", lambda m: m.update(host="h:1883"))
    v("host empty", lambda m: m.update(host=""))
    v("host leading dash", lambda m: m.update(host="-h"))
    for port in (0, 65536, "1883", True):
        v("port %r" % (port,), lambda m, port=port: m.update(port=port))
    v("tls int", lambda m: m.update(tls=1))
    v("tls without ca", lambda m: m.pop("ca_cert"))
    v("ca not pem", lambda m: m.update(ca_cert="MIIB" * 10))
    v("ca too long", lambda m: m.update(ca_cert="-----BEGIN " + "A" * 8200))
    v("cert without key", lambda m: m.pop("client_key"))
    v("key without cert", lambda m: m.pop("client_cert"))
    v("cert without tls", lambda m: m.update(tls=False))
    v("key not pem", lambda m: m.update(client_key="s3cr3t-key-material-" * 3))
    v("password without user", lambda m: m.pop("username"))
    v("password empty", lambda m: m.update(password=""))
    v("password long", lambda m: m.update(password="p" * 129))
    v("username long", lambda m: m.update(username="u" * 65))
    v("client id bad", lambda m: m.update(client_id="a b"))
    v("prefix wildcard", lambda m: m.update(topic_prefix="a/+"))
    v("prefix hash", lambda m: m.update(topic_prefix="a/#"))
    v("prefix trailing slash", lambda m: m.update(topic_prefix="a/"))
    v("discovery prefix empty", lambda m: m.update(discovery_prefix=""))
    v("discovery str", lambda m: m.update(discovery="yes"))
    v("unknown role", lambda m: m.update(command_role="ghost"))
    v("role bad name", lambda m: m.update(command_role="Admin"))
    v("keepalive small", lambda m: m.update(keepalive_s=9))
    v("keepalive big", lambda m: m.update(keepalive_s=3601))
    v("extra field", lambda m: m.update(qos=2))
    out.append(("not object", base([])))
    out.append(("built-in role", base({"host": "h", "command_role": "viewer"})))
    return out


def test_device_and_platform_agree_on_the_mqtt_block(tmp_path):
    cases = variants()
    path = tmp_path / "configs.json"
    path.write_text(json.dumps([c for _, c in cases]))
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % os.path.join(ROOT, "python"))
    out = subprocess.run([sim.MICROPYTHON, SCRIPT, str(path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    device = json.loads(out.stdout)
    valid = {"minimal", "full", "disabled", "plain with password", "built-in role"}
    for (label, cfg), dev in zip(cases, device):
        plat = check_config(cfg)
        assert (dev is None) == (label in valid), (label, dev)
        assert (plat is None) == (label in valid), (label, plat)
        if dev is not None:
            assert dev[0] == plat[0], (label, dev, plat)
            assert dev[0] == "mqtt" or dev[0].startswith("mqtt."), (label, dev)
            # secrets are never repeated in an error message
            m = cfg["mqtt"]
            for k in ("password", "client_key"):
                if isinstance(m, dict) and isinstance(m.get(k), str) and m[k]:
                    assert m[k] not in dev[1] and m[k] not in plat[1], (label, k)
    print("\n[mqtt config parity] %d configs, %d invalid, same verdict and field on both sides"
          % (len(cases), sum(d is not None for d in device)))
