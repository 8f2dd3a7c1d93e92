"""`make run`: the reference platform, a local NTP responder and the device (the MicroPython unix
build running python/main.py), all on 127.0.0.1 (the processes: tools/simulation.py).

    .cache/venv/bin/python tools/run_simulation.py [--port 8080] [--rest-port 8081] [--fresh]
                                                   [--dev] [--quiet]

State lives in .cache/sim/ (platform database, operator token, the device's REST API key, device
data folder, tls/: the local CA and the certificates it signed) and is kept between runs; --fresh
starts over (new secrets). TLS end to end: the platform serves https with the CA's certificate,
the device trusts only that CA and serves its REST API over TLS on 127.0.0.1:--rest-port; the
banner shows curl lines (with --cacert) to get a token from the platform and switch a relay. The device is restarted when it exits with the reset code (75: the watchdog
supervisor reset the simulated board). Ctrl-C stops everything cleanly: the
device gets SIGINT (it persists its relay states and exits), then the servers are stopped."""

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simulation import (  # noqa: E402
    MICROPYTHON, RESET_EXIT_CODE, ROOT, SIM_CONFIG, SIM_ISSUER, Device, NtpResponder, Platform,
    free_port, trust_ca)

def _pretty(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return "device | " + line
    head = "%s %-7s %-8s %s" % (time.strftime("%H:%M:%S", time.localtime(rec.pop("ts", 0))),
                                rec.pop("lvl", "?"), rec.pop("mod", rec.get("audit", "")),
                                rec.pop("msg", ""))
    rec.pop("up", None)
    rest = " ".join("%s=%s" % (k, json.dumps(v)) for k, v in sorted(rec.items()))
    return "device | %s %s" % (head, rest)


def simulation(args):
    work = os.path.abspath(args.workdir)
    if args.fresh and os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    state_path = os.path.join(work, "sim.json")
    if os.path.exists(state_path):
        with open(state_path) as f:
            st = json.load(f)
    else:
        st = {"operator_token": "op-" + secrets.token_urlsafe(24), "tenant": "demo",
              "namespace": "lab", "device_id": "pico-sim-1",
              "device_key": "dk-" + secrets.token_urlsafe(24),
              "wifi_password": "wifi-" + secrets.token_urlsafe(12)}
    if "api_jwt_key" not in st:  # the device REST API's HS256 key, made here at random
        st["api_jwt_key"] = secrets.token_hex(32)
        with open(state_path, "w") as f:
            json.dump(st, f, indent=1)
        os.chmod(state_path, 0o600)

    # TLS end to end: a local CA (kept in the run's folder) signs the platform's certificate
    # and the device's; the device trusts that CA for the platform, curl for both
    from local_ca import LocalCA
    ca = LocalCA(os.path.join(work, "tls"))
    platform_tls = ca.issue("platform")
    device_tls = ca.issue("device")
    trust_ca(ca.cert_path)

    procs = []
    ntp = NtpResponder(work).start()
    if ntp:
        procs.append(ntp)
    config = dict(SIM_CONFIG, ntp_servers=["127.0.0.1:%d" % ntp.port] if ntp else [],
                  api={"jwt": {"key": st["api_jwt_key"], "issuer": SIM_ISSUER,
                               "audience": st["device_id"]}})
    platform = Platform(work, st["operator_token"], port=args.port, tls=platform_tls)
    try:
        platform.start()
    except RuntimeError as e:
        print("run_simulation: %s" % e, file=sys.stderr)
        for p in procs:
            p.stop()
        return 1
    procs.append(platform)
    dev = platform.provision(config, st["tenant"], st["namespace"], st["device_id"],
                             st["device_key"])
    cur = platform.op("GET", dev.op_path("config")).json()
    if cur["config"] != config:
        dev.push_config(config)
    data_dir = os.path.join(work, "device")
    os.makedirs(data_dir, exist_ok=True)
    # the owner's release key (tools/release.py): the platform learns the public half to check
    # uploads; the device is provisioned with it and never fetches a key at update time
    import release
    key_prefix = os.path.join(work, "release")
    if not os.path.exists(key_prefix + ".pub"):
        release.keygen(key_prefix)
    pub = release.load_public_hex(key_prefix + ".pub")
    platform.add_release_key(st["tenant"], pub)
    with open(os.path.join(data_dir, "ota_public_key"), "w") as f:
        f.write(pub + "\n")
    settings = {"wifi_ssid": "sim-ap", "wifi_password": st["wifi_password"],
                "device_id": st["device_id"], "device_key": st["device_key"],
                "service_discovery_url": platform.url + "/v1/devices/register",
                "relay_pins": {"pump": 2, "fan": 3}, "data_dir": data_dir,
                "tenant": st["tenant"], "namespace": st["namespace"],
                "ntp_servers": config["ntp_servers"],
                "rest_host": "127.0.0.1", "rest_port": args.rest_port,
                "ca_cert": ca.cert_path, "rest_tls_cert": device_tls[0],
                "rest_tls_key": device_tls[1]}
    device = Device(work, settings, dev_path=args.dev,
                    on_line=None if args.quiet else (lambda l: print(_pretty(l), flush=True)))
    tok = st["operator_token"]
    base = platform.url + "/v1/operator/tenants/%s/namespaces/%s/devices/%s" % (
        st["tenant"], st["namespace"], st["device_id"])
    rest = "https://127.0.0.1:%d" % args.rest_port
    print("""
RelaysController simulation
  platform      %(url)s   (contract: reference_platform/openapi.yaml; log: %(work)s/platform.log)
  NTP responder %(ntp)s
  device        %(dev)s on the MicroPython unix build
                data: %(data)s   log: %(data)s/log/device.log
                board view (relays, pin levels, counters): %(data)s/sim/status.json
                WiFi: echo down > %(data)s/sim/wifi   (echo up to restore)
  device REST API %(rest)s   (docs/device_api.openapi.yaml; /health and /ready need no token)
  TLS: both serve certificates of a local CA made for this run: %(ca)s
  operator token: %(tok)s

  export TOKEN=%(tok)s CA=%(ca)s
  curl -s --cacert $CA -H "Authorization: Bearer $TOKEN" %(base)s | python3 -m json.tool
  curl -s --cacert $CA -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{"relays": {"pump": true, "fan": true}}' %(base)s/desired-state
  curl -s --cacert $CA -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d '{"command": "resync"}' %(base)s/commands
  a device token (as the device gets it): POST %(url)s/v1/devices/register with the proof in
  openapi.yaml; device id %(id)s, key in %(work)s/sim.json

  The device REST API: a token from the platform (operator role, one hour), then switch a relay
  and list them (503 time_not_synced until the device clock is synced, seconds after start):
  export DEVTOKEN=$(curl -s --cacert $CA -X POST -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d '{"role": "operator"}' \\
       %(base)s/api-tokens | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s --cacert $CA -X POST -H "Authorization: Bearer $DEVTOKEN" -H 'Content-Type: application/json' \\
       -d '{"state": "HIGH"}' %(rest)s/gpio/pump
  curl -s --cacert $CA -H "Authorization: Bearer $DEVTOKEN" %(rest)s/gpio | python3 -m json.tool

Ctrl-C stops everything.
""" % {"url": platform.url, "work": work, "ntp": "127.0.0.1:%d" % ntp.port if ntp else "(none)",
       "dev": st["device_id"], "data": data_dir, "tok": tok, "base": base, "id": st["device_id"],
       "rest": rest, "ca": ca.cert_path}, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    device.start()
    code = 0
    while not stop.wait(0.5):
        if not device.running and device.exits and device.exits[-1] != RESET_EXIT_CODE:
            print("run_simulation: the device exited with %d; see %s" % (
                device.exits[-1], device.stdout_path), file=sys.stderr)
            code = 1
            break
        if not platform.running:
            print("run_simulation: the platform stopped; see %s" % platform.log_path,
                  file=sys.stderr)
            code = 1
            break
    print("\nstopping: device...", flush=True)
    device.stop()
    for p in reversed(procs):
        p.stop()
    print("stopped (device restarts after resets: %d)" % (device.starts - 1))
    return code


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=os.path.join(ROOT, ".cache", "sim"))
    ap.add_argument("--port", type=int, default=8080, help="platform port (0: any free one)")
    ap.add_argument("--rest-port", type=int, default=8081,
                    help="the device REST API's port (0: any free one)")
    ap.add_argument("--fresh", action="store_true", help="forget the previous simulation's data")
    ap.add_argument("--dev", action="store_true",
                    help="run python/ sources instead of the modules frozen into the build")
    ap.add_argument("--quiet", action="store_true", help="do not echo the device log")
    args = ap.parse_args(argv)
    if not os.path.exists(MICROPYTHON):
        print("run_simulation: no unix build at %s (make unix)" % MICROPYTHON, file=sys.stderr)
        return 2
    if args.port == 0:
        args.port = free_port()
    if args.rest_port == 0:
        args.rest_port = free_port()
    return simulation(args)


if __name__ == "__main__":
    sys.exit(main())
