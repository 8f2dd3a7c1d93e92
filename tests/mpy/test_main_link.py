# main.board_opts: the device options' link keys pick the NetworkManager's link backend and are
# not passed on to RelaysController (which would refuse them).
from check import eq, raises, true
import main


def test_no_link_keys_leaves_the_options_alone():
    opts = {"device_id": "d1", "rest_port": 80}
    eq(main.board_opts(dict(opts)), opts, "unchanged: cyw43 WLAN by default")


def test_wlan_link_keys_are_removed_without_a_backend():
    got = main.board_opts({"device_id": "d1", "link": "wlan", "ppp_baud": 115200})
    eq(got, {"device_id": "d1"}, "link keys dropped, WLAN chosen by RelaysController")


def test_unknown_link_is_refused_by_name():
    raises(ValueError, "link must be 'wlan' or 'ppp', not 'serial'", main.board_opts,
           {"device_id": "d1", "link": "serial"})


def test_given_backend_is_kept():
    marker = object()
    got = main.board_opts({"device_id": "d1", "link": "ppp", "wlan": marker})
    true(got["wlan"] is marker and "link" not in got, "an explicit wlan wins")


def test_ppp_link_needs_no_wifi_credentials():
    marker = object()
    got = main.board_opts({"device_id": "d1", "link": "ppp", "wlan": marker})
    eq((got["wifi_ssid"], got["wifi_password"]), (None, None), "no WiFi to join over PPP")
    eq(main.missing_opts(dict(got, device_key="k", service_discovery_url="https://p",
                              relay_pins={"r1": 2})), [], "complete for a PPP board")


def test_missing_options_are_named():
    eq(main.missing_opts({"device_id": "d1", "relay_pins": {}}),
       ["device_key", "service_discovery_url", "wifi_ssid", "wifi_password"],
       "each missing key, WiFi ones included on the cyw43 WLAN")
