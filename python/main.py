# Device entry point.
# Board: runs at boot (frozen); reads /device.json and starts the controller. Without that file
# (or without a network module) it returns to the REPL, so a fresh board stays reachable.
# Unix port (simulation): micropython main.py --config device.json [--data-dir DIR], or the
# same keys as flags: --device-id --device-key --platform URL --data-dir DIR [--ssid --password
# --rest-host --rest-port].
# The JSON file holds RelaysController's arguments: wifi_ssid, wifi_password, device_id,
# device_key, service_discovery_url, relay_pins and any keyword option (data_dir, tenant,
# namespace, log_level, ota_public_key, ca_cert, rest, rest_host, rest_port, rest_tls_cert,
# rest_tls_key, rest_plain_port, ...). The REST API listens on 0.0.0.0:443 with TLS on the board
# (plain 0.0.0.0:80 then serves /health and /ready), on 127.0.0.1:8081 on the unix port, with TLS
# when given a certificate and key. The platform URL must be https:// unless it is loopback.
# On a board, "link": "ppp" (with "ppp_uart", "ppp_baud") runs the network over network.PPP
# on a UART (the RELAYS_PICO_PPP board) instead of the cyw43 WiFi.
# The process exits with RESET_EXIT_CODE (75) when the watchdog supervisor reset the simulated
# board; whoever started it starts it again.
import sys

try:
    import json
except ImportError:
    import ujson as json

BOARD_CONFIG = "/device.json"
_FLAGS = {"--device-id": "device_id", "--device-key": "device_key",
          "--platform": "service_discovery_url", "--data-dir": "data_dir",
          "--ssid": "wifi_ssid", "--password": "wifi_password", "--log-level": "log_level",
          "--tenant": "tenant", "--namespace": "namespace", "--rest-host": "rest_host",
          "--rest-port": "rest_port", "--ca-cert": "ca_cert", "--rest-tls-cert": "rest_tls_cert",
          "--rest-tls-key": "rest_tls_key"}


def options(argv):
    opts = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if i + 1 >= len(argv):
            raise ValueError("%s needs a value" % a)
        v = argv[i + 1]
        if a == "--config":
            with open(v) as f:
                opts.update(json.load(f))
        elif a in _FLAGS:
            opts[_FLAGS[a]] = v
        else:
            raise ValueError("unknown option %s" % a)
        i += 2
    opts.setdefault("wifi_ssid", "sim-ap")
    opts.setdefault("wifi_password", "sim-wifi-password")
    opts.setdefault("relay_pins", {"relay1": 2, "relay2": 3})
    for k in ("rest_port", "rest_plain_port"):
        if opts.get(k) is not None:
            try:
                opts[k] = int(opts[k])
            except ValueError:
                raise ValueError("%s must be a port number" % k)
    for k in ("device_id", "device_key", "service_discovery_url"):
        if not opts.get(k):
            raise ValueError("missing %s" % k)
    return opts


def run(opts):
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio
    from relays_controller import RelaysController

    try:
        c = RelaysController(**opts)
    except (OSError, ValueError) as e:  # a refused platform URL, an unusable certificate...
        print("main: %s" % e)
        return 2
    try:
        return asyncio.run(c.main())
    except KeyboardInterrupt:
        c.shutdown()
        return 0


LINK_KEYS = ("link", "ppp_uart", "ppp_baud")


def board_opts(opts):
    # the link options become the NetworkManager's link backend (cyw43 WLAN when absent)
    link = {}
    for k in LINK_KEYS:
        if k in opts:
            link[k] = opts.pop(k)
    if link.get("link", "wlan") != "wlan" and opts.get("wlan") is None:
        from iotlib.network_manager import board_link
        opts["wlan"] = board_link(link)
    if opts.get("wlan") is not None:
        # a link other than the cyw43 WLAN has no network name or password to join with
        opts.setdefault("wifi_ssid", None)
        opts.setdefault("wifi_password", None)
    return opts


REQUIRED = ("device_id", "device_key", "service_discovery_url", "relay_pins",
            "wifi_ssid", "wifi_password")


def missing_opts(opts):
    # named here, or RelaysController would fail with a bare "missing positional argument"
    return [k for k in REQUIRED if k not in opts]


def board():
    try:
        import network  # noqa: F401
    except ImportError:
        print("main: no network module on this board; RelaysController not started")
        return
    try:
        with open(BOARD_CONFIG) as f:
            opts = json.load(f)
    except (OSError, ValueError) as e:
        print("main: no usable %s (%s); RelaysController not started" % (BOARD_CONFIG, e))
        return
    try:
        opts = board_opts(opts)
    except (ImportError, OSError, ValueError) as e:  # e.g. "ppp" on a firmware without PPP
        print("main: no network link (%s); RelaysController not started" % e)
        return
    lack = missing_opts(opts)
    if lack:
        print("main: %s lacks %s; RelaysController not started" % (BOARD_CONFIG, ", ".join(lack)))
        return
    run(opts)


if __name__ == "__main__":
    if sys.platform == "linux" or sys.platform == "darwin":
        try:
            o = options(sys.argv[1:])
        except (OSError, ValueError) as e:
            print("main: %s" % e)
            print("usage: micropython main.py --config device.json | --device-id ID"
                  " --device-key KEY --platform URL [--data-dir DIR] [--rest-port N]")
            sys.exit(2)
        sys.exit(run(o))
    board()
