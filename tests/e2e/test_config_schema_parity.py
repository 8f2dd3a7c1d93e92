"""The device's hand-written config check (iotlib/config_schema.py, on the unix build) agrees with
the platform's JSON Schema + cross-field check (reference_platform/validation.py) on a corpus of
valid configs and of single-fault variants of them; for a single fault both name the same field."""

import copy
import json
import os
import subprocess

import simulation as sim
from reference_platform.validation import check_config

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device_scripts",
                      "config_check.py")

FULL = {
    "relays": {"pump": {"pin": 2, "active_low": True, "on_at_boot": False, "min_interval_ms": 100,
                        "pulse_ms": 5000},
               "fan": {"pin": 3}, "lamp": {"pin": 28}},
    "restore_policy": "last",
    "interlocks": [{"relays": ["pump", "fan"], "dead_ms": 300}],
    "inputs": {"button": {"pin": 10, "pull": "down", "active_low": False, "debounce_ms": 30}},
    "ntp_servers": ["pool.ntp.org", "10.0.0.1:123"],
    "ntp_period_s": 600,
    "log_level": "warning",
    "log_file": {"max_bytes": 4096, "keep": 2},
    "heartbeat_period_s": 15,
    "heartbeat_max_missed": 4,
    "state_period_s": 30,
    "config_poll_period_s": 120,
    "watchdog": {"stuck_reset": {"enabled": True, "after_missed": 3, "backoff_s": 300,
                                 "max_per_hour": 3}},
    "api": {"roles": {"viewer": {"permissions": ["relays:read"]},
                      "operator": {"permissions": ["relays:read", "relays:write"]}},
            "keys": [{"id": "k1", "role": "viewer", "key_sha256": "a" * 64}],
            "token_ttl_s": 600,
            "jwt": {"key": "0f" * 32, "issuer": "https://platform.test", "audience": "pico-1",
                    "leeway_s": 10}},
    "rate_limits": {"default": {"requests": 10, "window_s": 1},
                    "viewer": {"requests": 100, "window_s": 60}},
}


def variants():
    """(label, config): valid ones, then one fault each."""
    out = [("minimal", {"relays": {"a": {"pin": 0}}}), ("full", FULL)]

    def v(label, fn):
        c = copy.deepcopy(FULL)
        fn(c)
        out.append((label, c))

    v("unknown top", lambda c: c.update(extra=1))
    v("no relays", lambda c: c.pop("relays"))
    v("empty relays", lambda c: c.update(relays={}))
    v("17 relays", lambda c: c.update(relays={"r%d" % i: {"pin": i} for i in range(17)}))
    v("bad relay name", lambda c: c["relays"].update(Bad={"pin": 5}))
    v("digit name", lambda c: c["relays"].update({"1x": {"pin": 5}}))
    v("long name", lambda c: c["relays"].update({"a" * 33: {"pin": 5}}))
    v("relay not object", lambda c: c["relays"].update(x=5))
    v("relay no pin", lambda c: c["relays"]["fan"].pop("pin"))
    v("relay unknown field", lambda c: c["relays"]["fan"].update(colour="red"))
    for pin in (23, 24, 25, 29, 30, -1, "2", True, 2.5):
        v("pin %r" % (pin,), lambda c, pin=pin: c["relays"]["fan"].update(pin=pin))
    v("active_low int", lambda c: c["relays"]["fan"].update(active_low=1))
    v("on_at_boot str", lambda c: c["relays"]["fan"].update(on_at_boot="yes"))
    for ms in (-1, 3600001, "5", 1.5, True):
        v("min_interval %r" % (ms,), lambda c, ms=ms: c["relays"]["fan"].update(min_interval_ms=ms))
    for ms in (0, 86400001):
        v("pulse %r" % ms, lambda c, ms=ms: c["relays"]["fan"].update(pulse_ms=ms))
    v("duplicate pin", lambda c: c["relays"]["lamp"].update(pin=2))
    v("policy", lambda c: c.update(restore_policy="on"))
    v("interlocks not list", lambda c: c.update(interlocks={}))
    v("9 interlocks", lambda c: c.update(interlocks=[{"relays": ["pump", "fan"], "dead_ms": 1}] * 9))
    v("interlock 1 relay", lambda c: c["interlocks"][0].update(relays=["pump"]))
    v("interlock dup", lambda c: c["interlocks"][0].update(relays=["pump", "pump"]))
    v("interlock unknown relay", lambda c: c["interlocks"][0].update(relays=["pump", "ghost"]))
    v("interlock bad name", lambda c: c["interlocks"][0].update(relays=["pump", "Fan"]))
    v("interlock no dead", lambda c: c["interlocks"][0].pop("dead_ms"))
    v("interlock dead", lambda c: c["interlocks"][0].update(dead_ms=60001))
    v("interlock extra", lambda c: c["interlocks"][0].update(x=1))
    v("input pin clash relay", lambda c: c["inputs"]["button"].update(pin=3))
    v("input two same pin", lambda c: c["inputs"].update(other={"pin": 10}))
    v("input pull", lambda c: c["inputs"]["button"].update(pull="sideways"))
    v("input debounce", lambda c: c["inputs"]["button"].update(debounce_ms=10001))
    v("input bad name", lambda c: c["inputs"].update({"Button": {"pin": 11}}))
    v("input no pin", lambda c: c["inputs"]["button"].pop("pin"))
    v("ntp 5 servers", lambda c: c.update(ntp_servers=["a"] * 5))
    v("ntp bad host", lambda c: c.update(ntp_servers=["-bad"]))
    v("ntp bad port", lambda c: c.update(ntp_servers=["host:port"]))
    v("ntp empty", lambda c: c.update(ntp_servers=[""]))
    v("ntp period", lambda c: c.update(ntp_period_s=9))
    v("log level", lambda c: c.update(log_level="trace"))
    v("log file small", lambda c: c["log_file"].update(max_bytes=1023))
    v("log file keep", lambda c: c["log_file"].update(keep=11))
    v("log file extra", lambda c: c["log_file"].update(x=1))
    for k, bad in (("heartbeat_period_s", 0), ("heartbeat_max_missed", 101), ("state_period_s", 3601),
                   ("config_poll_period_s", 86401), ("heartbeat_period_s", "30")):
        v("%s %r" % (k, bad), lambda c, k=k, bad=bad: c.update({k: bad}))
    for k, bad in (("enabled", 1), ("after_missed", 0), ("backoff_s", 86401),
                   ("max_per_hour", 61), ("extra", 1)):
        v("stuck_reset %s %r" % (k, bad),
          lambda c, k=k, bad=bad: c["watchdog"]["stuck_reset"].update({k: bad}))
    v("watchdog extra", lambda c: c["watchdog"].update(reset_on_missed=True))
    v("watchdog not object", lambda c: c.update(watchdog=[]))
    v("api extra", lambda c: c["api"].update(x=1))
    v("role perm", lambda c: c["api"]["roles"]["viewer"].update(permissions=["relays:delete"]))
    v("role perm dup", lambda c: c["api"]["roles"]["viewer"].update(
        permissions=["relays:read", "relays:read"]))
    v("role no perms", lambda c: c["api"]["roles"].update(x={}))
    v("key unknown role", lambda c: c["api"]["keys"][0].update(role="admin"))
    v("key dup id", lambda c: c["api"]["keys"].append(dict(c["api"]["keys"][0])))
    v("key sha short", lambda c: c["api"]["keys"][0].update(key_sha256="a" * 63))
    v("key sha upper", lambda c: c["api"]["keys"][0].update(key_sha256="A" * 64))
    v("key missing", lambda c: c["api"]["keys"][0].pop("role"))
    v("token ttl", lambda c: c["api"].update(token_ttl_s=59))
    v("revoked ok", lambda c: c["api"].update(revoked=[{"jti": "a" * 22, "exp": 1800000000}]))
    v("revoked jti", lambda c: c["api"].update(revoked=[{"jti": "a b" * 8, "exp": 1}]))
    v("revoked exp", lambda c: c["api"].update(revoked=[{"jti": "a" * 22, "exp": "1"}]))
    v("revoked 65", lambda c: c["api"].update(revoked=[{"jti": "a" * 22, "exp": 1}] * 65))
    v("allow_plain_http", lambda c: c["api"].update(allow_plain_http=1))
    v("jwt minimal", lambda c: c["api"]["jwt"].pop("leeway_s"))
    v("jwt longest key", lambda c: c["api"]["jwt"].update(key="ab" * 64))
    v("jwt short key", lambda c: c["api"]["jwt"].update(key="ab" * 31))
    v("jwt odd key", lambda c: c["api"]["jwt"].update(key="a" * 65))
    v("jwt long key", lambda c: c["api"]["jwt"].update(key="ab" * 65))
    v("jwt non-hex key", lambda c: c["api"]["jwt"].update(key="zz" * 32))
    v("jwt upper-case key", lambda c: c["api"]["jwt"].update(key="AB" * 32))
    v("jwt key with space", lambda c: c["api"]["jwt"].update(key="ab" * 31 + " a"))
    v("jwt key int", lambda c: c["api"]["jwt"].update(key=12345))
    v("jwt no key", lambda c: c["api"]["jwt"].pop("key"))
    v("jwt no issuer", lambda c: c["api"]["jwt"].pop("issuer"))
    v("jwt empty audience", lambda c: c["api"]["jwt"].update(audience=""))
    v("jwt long issuer", lambda c: c["api"]["jwt"].update(issuer="i" * 129))
    v("jwt leeway", lambda c: c["api"]["jwt"].update(leeway_s=301))
    v("jwt leeway text", lambda c: c["api"]["jwt"].update(leeway_s="5"))
    v("jwt extra", lambda c: c["api"]["jwt"].update(alg="HS512"))
    v("jwt not object", lambda c: c["api"].update(jwt="0f" * 32))
    v("rate unknown role", lambda c: c["rate_limits"].update(ghost={"requests": 1, "window_s": 1}))
    v("rate requests", lambda c: c["rate_limits"]["default"].update(requests=0))
    v("rate window", lambda c: c["rate_limits"]["default"].update(window_s=3601))
    v("rate extra", lambda c: c["rate_limits"]["default"].update(burst=3))
    v("not object", lambda c: c.clear() or c.update(relays=[]))
    return out


def same_clash(dev, plat):
    # two members sharing a pin: which one is named depends on dict order, which differs
    # between MicroPython and CPython; both must name the same pin
    return "already used by" in dev[1] and dev[1].split(" is ")[0] == plat[1].split(" is ")[0]


def test_device_and_platform_agree(tmp_path):
    cases = variants()
    path = tmp_path / "configs.json"
    path.write_text(json.dumps([c for _, c in cases]))
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % os.path.join(sim.ROOT, "python"))
    out = subprocess.run([sim.MICROPYTHON, SCRIPT, str(path)], cwd=sim.ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    device = json.loads(out.stdout)
    disagree = []
    for (label, cfg), dev in zip(cases, device):
        plat = check_config(cfg)
        if (dev is None) != (plat is None):
            disagree.append((label, dev, plat))
        elif dev is not None and dev[0] != plat[0] and not same_clash(dev, plat):
            disagree.append((label, dev, plat))
    print("\n[config parity] %d configs, %d valid, %d invalid, all verdicts and fields equal"
          % (len(cases), sum(d is None for d in device), sum(d is not None for d in device)))
    assert disagree == []
    # a rejected api.jwt.key is a secret all the same: neither side repeats it
    for (label, cfg), dev in zip(cases, device):
        key = cfg.get("api", {}).get("jwt", {}).get("key") if isinstance(cfg.get("api"), dict) \
            and isinstance(cfg["api"].get("jwt"), dict) else None
        if dev is not None and dev[0] == "api.jwt.key" and isinstance(key, str):
            assert key not in dev[1] and key not in check_config(cfg)[1], label
