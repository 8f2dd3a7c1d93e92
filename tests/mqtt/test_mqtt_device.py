"""The device (unix build, python/main.py, config from the reference platform) on a real
mosquitto on 127.0.0.1, seen by a paho-mqtt client as Home Assistant would see it: discovery
payloads checked against Home Assistant's documented MQTT `switch` and `binary_sensor` options,
switching by topic with the state coming back and the simulated pin changing, bad payloads
giving error events and no relay change, retained stale commands ignored, commands sent while
the device was away not replayed, a broker restart costing no relay change, TLS with a client
certificate, and a relay removed from the config retracting its entity."""

import json
import re
import secrets

from e2e_harness import base_config
from mqtt_harness import DEVICE_USER, Certs, Watcher, mqtt_block, sim, wait_for

# Home Assistant MQTT discovery, https://www.home-assistant.io/integrations/switch.mqtt/ and
# /binary_sensor.mqtt/ (configuration variables), and /integrations/mqtt/#discovery-messages
HA_COMMON = {"availability", "availability_mode", "availability_template", "availability_topic",
             "device", "enabled_by_default", "encoding", "entity_category", "entity_picture",
             "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id",
             "default_entity_id", "payload_available", "payload_not_available", "platform", "qos",
             "unique_id", "value_template", "device_class", "payload_on", "payload_off",
             "state_topic"}
HA_SWITCH_ALLOWED = HA_COMMON | {"command_template", "command_topic", "optimistic", "retain",
                                 "state_on", "state_off"}
HA_BINARY_SENSOR_ALLOWED = HA_COMMON | {"expire_after", "force_update", "off_delay"}
HA_DEVICE_ALLOWED = {"configuration_url", "connections", "hw_version", "identifiers",
                     "manufacturer", "model", "model_id", "name", "serial_number",
                     "suggested_area", "sw_version", "via_device"}
# what this device promises on top of Home Assistant's own minimum (command_topic for a switch,
# state_topic for a binary_sensor)
SWITCH_REQUIRED = {"name", "unique_id", "command_topic", "state_topic", "availability_topic",
                   "payload_on", "payload_off", "device"}
BINARY_SENSOR_REQUIRED = {"name", "unique_id", "state_topic", "availability_topic", "payload_on",
                          "payload_off", "device"}
DEVICE_REQUIRED = {"identifiers", "name", "manufacturer", "model", "sw_version"}
DISCOVERY_TOPIC = re.compile(r"^homeassistant/(switch|binary_sensor)/([a-zA-Z0-9_-]+)/"
                             r"([a-zA-Z0-9_-]+)/config$")
TOPIC = re.compile(r"^[^#+]+$")


def base(dev):
    return "relays/" + dev.cloud.device_id


def online(dev, watcher, since=0):
    return watcher.wait(base(dev) + "/availability", "online", 30, since)


def check_entity(kind, doc):
    allowed = HA_SWITCH_ALLOWED if kind == "switch" else HA_BINARY_SENSOR_ALLOWED
    required = SWITCH_REQUIRED if kind == "switch" else BINARY_SENSOR_REQUIRED
    assert required <= set(doc), "missing %s" % (required - set(doc))
    assert set(doc) <= allowed, "not Home Assistant options: %s" % (set(doc) - allowed)
    for k in ("name", "unique_id", "payload_on", "payload_off", "payload_available",
              "payload_not_available", "state_on", "state_off"):
        if k in doc:
            assert isinstance(doc[k], str) and doc[k], k
    for k in ("command_topic", "state_topic", "availability_topic"):
        if k in doc:
            assert TOPIC.match(doc[k]), k
    for k in ("optimistic", "retain"):
        if k in doc:
            assert isinstance(doc[k], bool), k
    if "qos" in doc:
        assert doc["qos"] in (0, 1, 2)
    dev = doc["device"]
    assert DEVICE_REQUIRED <= set(dev) <= HA_DEVICE_ALLOWED, sorted(dev)
    assert isinstance(dev["identifiers"], list) and dev["identifiers"]
    assert all(isinstance(dev[k], str) and dev[k] for k in DEVICE_REQUIRED - {"identifiers"})


def discovery(watcher):
    # {(component, object id): config} of the discovery messages seen (retractions left out)
    out = {}
    for t, p, r, _ in watcher.seen():
        m = DISCOVERY_TOPIC.match(t)
        if m and p:
            out[(m.group(1), m.group(3))] = json.loads(p)
    return out


def test_discovery_payloads_follow_home_assistant_schema(mqtt_device, watcher):
    dev = mqtt_device()
    online(dev, watcher)
    want = {("switch", "r1"), ("switch", "r2"), ("binary_sensor", "door")}
    got = wait_for(lambda: (lambda d: d if len(d) >= 3 else None)(discovery(watcher)), 30,
                   "three discovery messages")
    assert set(got) == want
    ids = set()
    for (kind, name), doc in got.items():
        check_entity(kind, doc)
        assert doc["availability_topic"] == base(dev) + "/availability"
        ids.add(doc["unique_id"])
        node = dev.cloud.device_id
        assert doc["device"]["identifiers"] == [node]
    assert len(ids) == 3, "unique ids"
    sw = got[("switch", "r1")]
    assert (sw["command_topic"], sw["state_topic"]) == (base(dev) + "/relay/r1/set",
                                                       base(dev) + "/relay/r1/state")
    assert got[("binary_sensor", "door")]["state_topic"] == base(dev) + "/input/door/state"
    # retained: a Home Assistant that starts later still finds them
    for kind, name in want:
        topic = "homeassistant/%s/%s/%s/config" % (kind, dev.cloud.device_id, name)
        payload, retain = watcher.retained(topic)
        assert retain and json.loads(payload) == got[(kind, name)]
    # states of every relay and input are published, retained
    for t in ("/relay/r1/state", "/relay/r2/state", "/input/door/state"):
        assert watcher.wait(base(dev) + t)[-1][1] in ("ON", "OFF")


def test_switch_by_topic_state_comes_back_and_pin_changes(mqtt_device, watcher):
    dev = mqtt_device()
    online(dev, watcher)
    b = base(dev)
    watcher.wait(b + "/relay/r1/state", "OFF")
    mark = watcher.mark()
    watcher.publish(b + "/relay/r1/set", "ON")
    watcher.wait(b + "/relay/r1/state", "ON", since=mark)
    assert watcher.retained(b + "/relay/r1/state") == ("ON", True), "state retained"
    dev.wait_status(lambda s: s["relays"]["r1"] and s["pins"]["2"] == 1, "r1 on, pin 2 high")
    ev = [json.loads(p) for t, p, r, _ in watcher.seen(b + "/events", since=mark)]
    assert {"type": "relay", "relay": "r1", "state": "ON", "source": "mqtt",
            "subject": DEVICE_USER} in ev
    # audited like REST: source mqtt, subject the MQTT user
    audit = wait_for(lambda: [r for r in dev.records("audit") if r.get("relay") == "r1"
                              and r.get("source") == "mqtt"], 10, "audit record")
    assert audit[-1]["subject"] == DEVICE_USER and audit[-1]["new"] is True
    # r2 is active-low: ON drives its pin low
    watcher.publish(b + "/relay/r2/set", "ON")
    watcher.wait(b + "/relay/r2/state", "ON", since=mark)
    dev.wait_status(lambda s: s["relays"]["r2"] and s["pins"]["3"] == 0, "r2 on, pin 3 low")


def test_bad_payloads_give_error_events_and_no_change(mqtt_device, watcher):
    dev = mqtt_device()
    online(dev, watcher)
    b = base(dev)
    watcher.wait(b + "/relay/r1/state", "OFF")
    before = dev.wait_status(lambda s: s["counters"].get("mqtt_connects", 0) >= 1,
                             "status with the platform config")
    bad = [(b + "/relay/r1/set", "on", "invalid_payload"),
           (b + "/relay/r1/set", "", "invalid_payload"),
           (b + "/relay/r1/set", "\u00ff" * 40, "invalid_payload"),
           (b + "/relay/r1/set", '{"state": "ON"}', "invalid_payload"),
           (b + "/relay/nope/set", "ON", "unknown_relay")]
    mark = watcher.mark()
    for topic, payload, _ in bad:
        watcher.publish(topic, payload)
    errs = wait_for(lambda: (lambda e: e if len(e) >= len(bad) else None)(
        [json.loads(p) for t, p, r, _ in watcher.seen(b + "/error", since=mark)]),
        20, "one error event per bad command")
    assert [(e["topic"], e["error"]) for e in errs] == [(t, w) for t, _, w in bad]
    assert all(e["message"] for e in errs)
    after = dev.wait_status(lambda s: s["counters"].get("mqtt_refused", 0) >= len(bad),
                            "refusals counted")
    assert after["relays"] == before["relays"] and after["pins"] == before["pins"]
    assert after["counters"]["switches_r1"] == before["counters"]["switches_r1"]
    assert watcher.seen(b + "/relay/r1/state", "ON") == []


def test_retained_stale_command_is_ignored(mqtt_device, watcher):
    dev = mqtt_device(start=False)
    b = base(dev)
    # left on the broker long ago: a retained ON for r1
    watcher.publish(b + "/relay/r1/set", "ON", retain=True)
    dev.start()
    online(dev, watcher)
    err = watcher.wait(b + "/error")
    assert json.loads(err[0][1])["error"] == "retained_ignored"
    assert watcher.wait(b + "/relay/r1/state")[-1][1] == "OFF"
    st = dev.wait_status(lambda s: s["counters"].get("mqtt_retained_ignored", 0) >= 1,
                         "ignored retained command counted")
    assert st["relays"]["r1"] is False and st["pins"]["2"] == 0


def test_commands_sent_while_offline_are_not_replayed(mqtt_device, watcher):
    dev = mqtt_device()
    online(dev, watcher)
    b = base(dev)
    watcher.wait(b + "/relay/r2/state", "OFF")
    dev.kill()  # the board loses power: the broker publishes its last will
    watcher.wait(b + "/availability", "offline")
    watcher.publish(b + "/relay/r2/set", "ON")  # nobody listening: not kept by the broker
    mark = watcher.mark()
    dev.start()
    online(dev, watcher, mark)
    watcher.wait(b + "/relay/r2/state", since=mark)
    st = dev.wait_status(lambda s: s["counters"].get("mqtt_connects", 0) >= 1, "reconnected")
    assert st["relays"]["r2"] is False
    assert watcher.seen(b + "/relay/r2/state", "ON") == []


def test_broker_restart_costs_no_relay_change(mqtt_device, watcher, broker):
    dev = mqtt_device()
    online(dev, watcher)
    b = base(dev)
    watcher.publish(b + "/relay/r1/set", "ON")
    watcher.wait(b + "/relay/r1/state", "ON")
    before = dev.wait_status(lambda s: s["relays"]["r1"], "r1 on")
    mark = watcher.mark()
    broker.stop()
    dev.wait_log("mqtt connection lost", timeout=30)
    broker.start()  # no persistence: every retained message below was published again
    watcher.connected.wait(20)
    after = dev.wait_status(lambda s: s["counters"].get("mqtt_connects", 0) >= 2,
                            "device reconnected", timeout=60)
    # subscribed again (before "online"), then every state republished
    online(dev, watcher, mark)
    watcher.wait(b + "/relay/r1/state", "ON", timeout=30, since=mark)
    assert after["relays"] == before["relays"] and after["pins"] == before["pins"]
    for k in ("switches_r1", "switches_r2"):
        assert after["counters"][k] == before["counters"][k], k
    # and it takes commands again
    mark = watcher.mark()
    watcher.publish(b + "/relay/r1/set", "OFF")
    watcher.wait(b + "/relay/r1/state", "OFF", since=mark)


def test_tls_with_client_certificate(mqtt_device, watcher, broker, certs):
    m = {"host": "127.0.0.1", "port": broker.tls_port, "tls": True, "ca_cert": certs.ca_pem,
         "client_cert": certs.client_pem, "client_key": certs.client_key_pem, "keepalive_s": 10}
    dev = mqtt_device(mqtt=m)
    online(dev, watcher)
    b = base(dev)
    mark = watcher.mark()
    watcher.publish(b + "/relay/r1/set", "ON")
    watcher.wait(b + "/relay/r1/state", "ON", since=mark)
    dev.wait_status(lambda s: s["pins"]["2"] == 1, "pin 2 high")
    assert "cert-device" in broker.log_text()  # the broker knew the device by its certificate
    # the client key and the broker password never reach the logs
    text = "\n".join(line for _, line in dev.raw_lines())
    assert certs.client_key_pem.splitlines()[1] not in text


def test_wrong_password_is_reported_and_retried(mqtt_device, watcher, broker, passwords):
    dev = mqtt_device(mqtt=mqtt_block(broker, passwords, password="not-the-password"))
    rec = dev.wait_log("mqtt connection failed", timeout=30)
    assert "bad user name or password" in rec[0]["error"] or "not authorized" in rec[0]["error"]
    assert "not-the-password" not in "\n".join(line for _, line in dev.raw_lines())
    assert dev.status()["relays"] == {"r1": False, "r2": False}


def test_removed_relay_retracts_its_entity(mqtt_device, watcher, ntp):
    dev = mqtt_device()
    online(dev, watcher)
    b = base(dev)
    topic = "homeassistant/switch/%s/r2/config" % dev.cloud.device_id
    watcher.wait(topic)
    cfg = json.loads(json.dumps(dev.config))
    del cfg["relays"]["r2"]
    mark = watcher.mark()
    r = dev.cloud.push_config(cfg)
    assert r.status == 200, r
    watcher.wait(topic, "", timeout=30, since=mark)
    # the empty retained config replaced the old one: nothing is left for a late subscriber
    # (r1's config, subscribed after it, arrives after anything retained on r2's topic would)
    r1 = "homeassistant/switch/%s/r1/config" % dev.cloud.device_id
    late = Watcher(watcher.broker, watcher.password, (topic, r1), name="late").start()
    late.wait(r1)
    assert late.seen(topic) == [], "Home Assistant removes the entity"
    late.stop()
    watcher.wait(b + "/relay/r2/state", "", since=mark)
    assert watcher.seen("homeassistant/switch/%s/r1/config" % dev.cloud.device_id, "", mark) == []


def test_rest_switch_is_published_and_config_hides_broker_secrets(mqtt_device, watcher, ntp,
                                                                   passwords):
    cfg = base_config(ntp, inputs={"door": {"pin": 10}})
    cfg["api"] = {"jwt": {"key": secrets.token_hex(32), "issuer": "https://platform.test",
                          "audience": "mqtt-devices"}}
    dev = mqtt_device(config=cfg)
    online(dev, watcher)
    b = base(dev)
    dev.wait_status(lambda s: s["ready"], "registered, config applied, time synced", timeout=30)
    r = dev.platform.op("POST", dev.cloud.op_path("api-tokens"), {"role": "admin"})
    assert r.status == 201, r
    token = r.json()["token"]
    mark = watcher.mark()
    r = sim.http("POST", dev.rest_url + "/gpio/r1", {"state": "HIGH"}, token=token)
    assert r.status == 200, r
    watcher.wait(b + "/relay/r1/state", "ON", since=mark)
    ev = json.loads(watcher.wait(b + "/events", since=mark)[0][1])
    assert (ev["relay"], ev["state"], ev["source"]) == ("r1", "ON", "127.0.0.1"), ev
    r = sim.http("GET", dev.rest_url + "/config", token=token)
    assert r.status == 200, r
    m = r.json()["config"]["mqtt"]
    assert m["username"] == DEVICE_USER and "password" not in m
    assert passwords[DEVICE_USER].encode() not in r.body


def test_disabling_mqtt_says_offline_and_disconnects(mqtt_device, watcher, broker):
    dev = mqtt_device()
    online(dev, watcher)
    b = base(dev)
    watcher.wait(b + "/relay/r1/state", "OFF")
    cfg = json.loads(json.dumps(dev.config))
    cfg["mqtt"]["enabled"] = False
    mark = watcher.mark()
    r = dev.cloud.push_config(cfg)
    assert r.status == 200, r
    watcher.wait(b + "/availability", "offline", timeout=30, since=mark)
    dev.wait_log("mqtt settings changed: disconnected")
    assert watcher.retained(b + "/availability") == ("offline", True)
    # a clean goodbye (no will needed), and no new connection: no command can reach it
    wait_for(lambda: "Received DISCONNECT from %s" % dev.cloud.device_id in broker.log_text(),
             10, "DISCONNECT in the broker log")
    assert dev.wait_status(lambda s: "counters" in s, "status")["counters"]["mqtt_connects"] == 1


def test_tls_with_password_and_a_foreign_ca_refused(mqtt_device, watcher, broker, certs,
                                                    passwords, tmp_path):
    m = mqtt_block(broker, passwords, port=broker.tls_password_port, tls=True,
                   ca_cert=certs.ca_pem)
    dev = mqtt_device(mqtt=m)
    online(dev, watcher)
    b = base(dev)
    mark = watcher.mark()
    watcher.publish(b + "/relay/r2/set", "ON")
    watcher.wait(b + "/relay/r2/state", "ON", since=mark)
    # a CA that did not sign the broker's certificate: no connection, the reason logged
    other = Certs(str(tmp_path))
    dev2 = mqtt_device(mqtt=dict(m, ca_cert=other.ca_pem))
    rec = dev2.wait_log("mqtt connection failed", timeout=30)
    assert "certificate" in rec[0]["error"].lower() or "verif" in rec[0]["error"].lower(), rec
    assert watcher.seen("relays/%s/availability" % dev2.cloud.device_id) == []
