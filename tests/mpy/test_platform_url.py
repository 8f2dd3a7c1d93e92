# iotlib.platform_url: the platform is reached over https, or plain http only on this machine
# (127.0.0.0/8, ::1, localhost); anything else is a ValueError naming the URL, at start-up.
from check import eq, raises
from iotlib import platform_url


def test_https_anywhere_and_http_to_loopback_pass():
    for url in ("https://platform.example/v1/devices/register", "https://10.0.0.5:8443/x",
                "http://127.0.0.1:8080/v1/devices/register", "http://127.255.0.9/x",
                "http://localhost:8080/x", "http://LOCALHOST/x", "http://[::1]:8080/x",
                "HTTP://127.0.0.1/x", "http://user@127.0.0.1/x"):
        eq(platform_url.check(url), url, url)


def test_plain_http_beyond_loopback_is_refused():
    for url in ("http://10.0.0.5:8080/v1", "http://platform.example/v1", "http://128.0.0.1/",
                "http://127.0.0.1.evil.example/", "http://127.0.0/", "http://127.0.0.256/",
                "http://[::2]/", "http://localhost.evil.example/",
                "http://127.0.0.1@evil.example/", "http://0.0.0.0/"):
        raises(ValueError, "platform URL %r: plain http is allowed only to loopback"
               " (127.0.0.0/8, ::1, localhost); use https://" % url, platform_url.check, url)


def test_other_schemes_and_garbage_are_refused():
    raises(ValueError, "platform URL 'ftp://127.0.0.1/x': scheme must be https (or http to"
           " loopback)", platform_url.check, "ftp://127.0.0.1/x")
    raises(ValueError, "platform URL '127.0.0.1:8080': not an http(s):// URL",
           platform_url.check, "127.0.0.1:8080")
    raises(ValueError, "platform URL None: not an http(s):// URL", platform_url.check, None)
    raises(ValueError, "platform URL 'https:///x': no host", platform_url.check, "https:///x")


def test_the_controller_refuses_before_it_writes():
    from relays_controller import RelaysController
    from standins import scratch_dir
    import os
    d = scratch_dir("purl") + "/never"
    raises(ValueError, "platform URL 'http://10.1.2.3/api': plain http is allowed only to"
           " loopback (127.0.0.0/8, ::1, localhost); use https://", RelaysController,
           "ssid", "wifi-password-x", "pico-t", "device-key-123456", "http://10.1.2.3/api",
           {"r1": 2}, data_dir=d, simulate=True, log_echo=False, rest=False)
    try:
        os.stat(d)
        raise AssertionError("the data folder was created")
    except OSError:
        pass
