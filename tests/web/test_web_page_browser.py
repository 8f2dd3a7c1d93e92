"""The device's web page in a real browser: headless Chromium from Debian, driven by Selenium and
chromedriver, against the simulated device of `make run` (tools/simulation.py: the reference
platform, the NTP responder and python/main.py on the unix build, with the simulation's relays).
Tokens are minted by the platform. An operator's link opens the page: a click switches the
relay, the simulated pin follows and the page shows it; a change made elsewhere arrives over the
event stream; a viewer sees no switch buttons and the API refuses its switch anyway; a bad token
gets a clear message. SCREENSHOT=path saves the operator's page there (make web-screenshot)."""

import os
import secrets
import shutil
import sys
import tempfile
import time

import pytest

from web_harness import ROOT, free_port, wait_for

sys.path.insert(0, os.path.join(ROOT, "tools"))
import simulation as sim  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ISSUER = "https://platform.web-test/relays"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The simulation: platform, NTP responder and device, provisioned with SIM_CONFIG."""
    if not os.path.exists(sim.MICROPYTHON):
        pytest.fail("no unix build at %s (make unix)" % sim.MICROPYTHON)
    work = tmp_path_factory.mktemp("site")
    ntp = sim.NtpResponder(work).start()
    assert ntp is not None, "the NTP responder did not start"
    platform = sim.Platform(work, "op-" + secrets.token_hex(12)).start()
    config = dict(sim.SIM_CONFIG, ntp_servers=["127.0.0.1:%d" % ntp.port],
                  api={"jwt": {"key": secrets.token_hex(32), "issuer": ISSUER,
                               "audience": "web-devices"}})
    cloud = platform.provision(config, namespace="lab")
    settings = {"wifi_ssid": "sim-ap", "wifi_password": "wifi-" + secrets.token_hex(8),
                "device_id": cloud.device_id, "device_key": cloud.key,
                "service_discovery_url": platform.url + "/v1/devices/register",
                "relay_pins": {"pump": 2, "fan": 3}, "tenant": cloud.tenant,
                "namespace": cloud.namespace, "ntp_servers": config["ntp_servers"],
                "rest_host": "127.0.0.1", "rest_port": free_port()}
    os.makedirs(work / "device")
    dev = sim.Device(work / "device", settings).start()
    try:
        wait_for(lambda: (dev.status() or {}).get("ready") and
                 dev.status().get("config_version", 0) >= 1, 60,
                 "the device registered, configured and time-synced", 0.1)
        url = "http://127.0.0.1:%d" % settings["rest_port"]
        wait_for(lambda: _answers(url + "/health"), 15, "the device REST API")
        yield Site(platform, cloud, dev, url)
    finally:
        dev.kill()
        platform.stop()
        ntp.stop()


def _answers(url):
    try:
        return sim.http("GET", url).status == 200
    except OSError:
        return False


class Site:
    def __init__(self, platform, cloud, dev, url):
        self.platform = platform
        self.cloud = cloud
        self.dev = dev
        self.url = url

    def mint(self, role):
        # the platform binds a token's subject to its minter (here the operator)
        return self.cloud.mint_api_token(role)["token"]

    def pins(self):
        return (self.dev.status() or {}).get("pins", {})

    def wait_pin(self, pin, level, what):
        wait_for(lambda: self.pins().get(str(pin)) == level, 10, what, 0.05)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail("%s is missing: run `tools/deps.sh browser`" % path)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="chromium-profile-")  # empty: no state from elsewhere
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--disable-dev-shm-usage", "--window-size=960,1000",
              "--user-data-dir=" + profile):
        opts.add_argument(a)
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium fetch a driver or a browser
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(20)
    drv.set_script_timeout(20)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def by_id(drv, i):
    from selenium.webdriver.common.by import By
    return drv.find_element(By.ID, i)


def css(drv, sel):
    from selenium.webdriver.common.by import By
    return drv.find_elements(By.CSS_SELECTOR, sel)


def until(drv, fn, what, timeout=15):
    return wait_for(lambda: fn(drv), timeout, what, 0.05)


def row_state(drv, relay):
    rows = css(drv, "#relay-" + relay)
    return rows[0].get_attribute("data-state") if rows else None


def open_page(drv, url, tok=None):
    drv.get("about:blank")
    drv.get(url + "/" + ("#token=" + tok if tok else ""))


def test_bad_token_gets_a_clear_message(site, browser):
    open_page(browser, site.url)
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    assert by_id(browser, "login").is_displayed()
    by_id(browser, "token").send_keys("not-a-token")
    by_id(browser, "use").click()
    msg = until(browser, lambda d: by_id(d, "msg").text, "a message")
    assert "token refused" in msg and "not a well-formed JWT" in msg and "malformed" in msg, msg
    assert not by_id(browser, "relays-box").is_displayed()
    # a well-formed token the device does not trust: its reason, not a blank page
    forged = site.mint("operator")
    forged = forged[:-4] + ("AAAA" if not forged.endswith("AAAA") else "BBBB")
    by_id(browser, "token").send_keys(forged)
    by_id(browser, "use").click()
    until(browser, lambda d: "signature" in by_id(d, "msg").text, "the signature message")
    assert not css(browser, "button[data-act]")


def test_operator_switches_a_relay_and_sees_the_pin(site, browser):
    tok = site.mint("operator")
    open_page(browser, site.url, tok)
    until(browser, lambda d: row_state(d, "pump"), "the relay table")
    assert "#token" not in browser.current_url, "the token must leave the address bar"
    assert browser.execute_script("return sessionStorage.getItem('relays.token')") == tok
    assert by_id(browser, "conn").text == "live"
    names = [r.get_attribute("id")[6:] for r in css(browser, "#relays tr")]
    assert sorted(names) == sorted(sim.SIM_CONFIG["relays"])
    assert "valve_open / valve_close (dead time 300 ms)" in by_id(browser, "locks").text
    assert by_id(browser, "ready").text == "ready"
    assert by_id(browser, "heap").text.endswith("bytes")
    before = row_state(browser, "pump")
    site.wait_pin(2, 1 if before == "HIGH" else 0, "pump's pin as the page says")
    # click: the simulated pin follows, the page shows the new state
    want = "LOW" if before == "HIGH" else "HIGH"
    css(browser, 'button[data-relay="pump"][data-act="%s"]' % (
        "on" if want == "HIGH" else "off"))[0].click()
    until(browser, lambda d: row_state(d, "pump") == want, "pump %s on the page" % want)
    site.wait_pin(2, 1 if want == "HIGH" else 0, "pump's pin %s" % want)
    # fan is active low: on is a low pin
    fan = row_state(browser, "fan")
    css(browser, 'button[data-relay="fan"][data-act="toggle"]')[0].click()
    until(browser, lambda d: row_state(d, "fan") != fan, "fan toggled on the page")
    site.wait_pin(3, 0 if row_state(browser, "fan") == "HIGH" else 1, "fan's pin")
    until(browser, lambda d: "fan" in by_id(d, "log").text and "operator (rest)" in
          by_id(d, "log").text, "the change in the event list")
    # a pulse: on now, off by the relay core, both pushed with their cause
    pulse = by_id(browser, "pulse")
    pulse.clear()
    pulse.send_keys("300")
    css(browser, 'button[data-relay="bell"][data-act="pulse"]')[0].click()
    until(browser, lambda d: "bell LOW (pulse_end)" in by_id(d, "log").text,
          "the end of the pulse on the page")
    assert "bell HIGH by operator (rest)" in by_id(browser, "log").text
    assert row_state(browser, "bell") == "LOW"
    # a change made elsewhere arrives over the event stream, without a reload
    other = site.mint("operator")
    vo = row_state(browser, "valve_open")
    r = sim.http("POST", site.url + "/gpio/valve_open",
                 {"state": "LOW" if vo == "HIGH" else "HIGH"}, token=other)
    assert r.status == 200, r
    until(browser, lambda d: row_state(d, "valve_open") != vo, "the outside change on the page")
    until(browser, lambda d: "valve_open %s by operator (rest)" % row_state(d, "valve_open")
          in by_id(d, "log").text, "who did it")
    shot = os.environ.get("SCREENSHOT")
    if shot:
        time.sleep(0.3)
        browser.save_screenshot(shot)


def test_viewer_sees_no_buttons_and_cannot_switch(site, browser):
    tok = site.mint("viewer")
    open_page(browser, site.url, tok)
    until(browser, lambda d: row_state(d, "pump"), "the relay table")
    assert not css(browser, "button[data-act]"), "a viewer must not see switch buttons"
    assert "(read only)" in by_id(browser, "who").text
    pins = site.pins()
    # the API refuses it anyway, from the page itself
    r = browser.execute_async_script("""
        var done = arguments[arguments.length - 1];
        fetch('/gpio/pump', {method: 'POST', headers: {'Authorization': 'Bearer ' +
            sessionStorage.getItem('relays.token'), 'Content-Type': 'application/json'},
            body: JSON.stringify({state: 'TOGGLE'})})
          .then(function (r) { return r.json().then(function (j) { done([r.status, j]); }); });
    """)
    assert r[0] == 403 and r[1]["error"] == "forbidden", r
    time.sleep(0.3)
    assert site.pins() == pins, "a refused switch moved a pin"
    # forgetting the token brings the form back
    by_id(browser, "logout").click()
    until(browser, lambda d: by_id(d, "login").is_displayed(), "the token form")
    assert browser.execute_script("return sessionStorage.getItem('relays.token')") is None
