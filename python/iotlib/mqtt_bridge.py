# MqttBridge: the device on an MQTT broker, announced to Home Assistant by MQTT discovery.
#
#   RelaysController(..., extensions=(mqtt_bridge.mqtt_extension(),))
#
# Settings come from the platform config's "mqtt" block (docs/mqtt.md). Topics, with
# base = <topic_prefix>/<device_id>:
#   base/availability               online / offline, retained; offline is the last will
#   base/relay/<name>/state         ON / OFF, retained, after every change
#   base/relay/<name>/set           commands: ON, OFF, TOGGLE (never retained)
#   base/input/<name>/state         ON / OFF, retained, at every debounced edge
#   base/events                     JSON: each relay change (who and why) and input edge
#   base/alarm                      JSON: each alarm the device raises
#   base/error                      JSON: each refused command (topic, error, message)
#   <discovery_prefix>/switch|binary_sensor/<node>/<name>/config   Home Assistant discovery
# A command switches the relay through the same manager calls as REST (interval, interlock,
# audit with source "mqtt" and the MQTT user as subject), after the same RBAC check (the role
# named by mqtt.command_role) and rate limits (config rate_limits). A retained command is stale
# by definition and is ignored: a broker that kept an old ON never switches a relay at
# reconnect. The session is clean, so commands sent while the device was away are not replayed.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio
import json
import time

from iotlib import atomic_file, logger, rbac
from iotlib.mqtt_client import MQTTClient, MQTTError
from iotlib.rate_limiter import ApiRateLimiter

_log = logger.get("mqtt")
DEFAULTS = {"enabled": True, "tls": False, "topic_prefix": "relays",
            "discovery_prefix": "homeassistant", "discovery": True,
            "command_role": "operator", "keepalive_s": 60}
COMMANDS = ("ON", "OFF", "TOGGLE")
MAX_COMMAND = 16        # bytes: a command is one word
MAX_EVENTS = 32         # events buffered while the broker is away; the oldest go first
ENTITIES_FILE = "mqtt_entities.json"
INPUT_POLL_MS = 20


def settings(cfg):
    # the config's mqtt block with defaults, or None when MQTT is off
    m = (cfg or {}).get("mqtt")
    if not m:
        return None
    s = dict(DEFAULTS)
    s.update(m)
    if not s["enabled"]:
        return None
    if "port" not in s:
        s["port"] = 8883 if s["tls"] else 1883
    return s


def node_id(device_id):
    # Home Assistant discovery ids allow [a-zA-Z0-9_-] only
    return "".join(ch if ch.isalpha() or ch.isdigit() or ch in "_-" else "_"
                   for ch in device_id)


def der(pem):
    # PEM text -> DER bytes (the mbedtls build parses DER reliably)
    if isinstance(pem, str):
        pem = pem.encode()
    if not pem.startswith(b"-----BEGIN"):
        return pem
    from binascii import a2b_base64
    return a2b_base64(b"".join(pem.split(b"-----")[2].split()))


def tls_context(s):
    import tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    ctx.load_verify_locations(der(s["ca_cert"]))
    if s.get("client_cert"):
        ctx.load_cert_chain(der(s["client_cert"]), der(s["client_key"]))
    return ctx


class MqttBridge:
    def __init__(self, controller, data_dir=None):
        c = controller
        self.c = c
        self.relays = c.relays
        self.device_id = c.device_id
        self.node = node_id(c.device_id)
        self.path = (data_dir or c.data_dir) + "/" + ENTITIES_FILE
        self.settings = None
        self.roles = rbac.ROLES
        self.limiter = None
        self._rate_limits = None
        self.client = None
        self.pending = {}       # relay name -> change number: its state is due on the broker
        self.pending_inputs = {}
        self._changes = 0       # numbers each change: a state changed during its publish stays due
        self._gen = 0           # the session whose publisher may send: bumped at start and end
        self.events = []        # (sub-topic, JSON text)
        self.inputs = {}        # input name -> last value seen
        self._edges = {}        # input name -> the core's edge count then
        self.announce_due = True
        self._wake = asyncio.Event()
        self._reconf = asyncio.Event()
        self._conn_done = None
        self.connects = 0
        self.commands = 0
        self.refused = 0
        self.retained_ignored = 0
        self.events_dropped = 0
        self.last_error = None
        self.relays.listeners.append(self._relay_changed)
        listeners = getattr(c, "alarm_listeners", None)
        if listeners is not None:
            listeners.append(self._alarm)
        self.apply(c.config.config or {})

    # ---- config ----

    def apply(self, cfg):
        s = settings(cfg)
        if s is not None:
            for k in ("password", "client_key"):
                if s.get(k):
                    logger.add_secret(s[k])
        self.roles = rbac.roles_from_config((cfg.get("api") or {}).get("roles"))
        if cfg.get("rate_limits") != self._rate_limits or self.limiter is None:
            self._rate_limits = cfg.get("rate_limits")  # buckets kept while the limits stay
            self.limiter = ApiRateLimiter.from_config(self._rate_limits)
        if s != self.settings:
            self.settings = s
            self._reconf.set()
            if self._conn_done is not None:
                self._conn_done.set()  # drop the connection: the new settings apply at once
        self.announce_due = True
        self._wake.set()

    def reconfigure(self, new, old):
        self.apply(new)

    @property
    def base(self):
        return "%s/%s" % (self.settings["topic_prefix"], self.device_id)

    @property
    def subject(self):
        s = self.settings or {}
        return s.get("username") or "mqtt:" + (s.get("client_id") or self.device_id)

    # ---- what the device tells the broker ----

    def _event(self, topic, doc):
        self.events.append((topic, json.dumps(doc)))
        if len(self.events) > MAX_EVENTS:
            del self.events[0]
            self.events_dropped += 1
        self._wake.set()

    def _due(self, pending, name):
        self._changes += 1
        pending[name] = self._changes

    def _relay_changed(self, name, on, source, subject):
        self._due(self.pending, name)
        self._event("events", {"type": "relay", "relay": name, "state": "ON" if on else "OFF",
                               "source": source, "subject": subject})

    def _alarm(self, key, message, severity):
        self._event("alarm", {"key": key, "severity": severity, "message": message})

    def _error(self, topic, code, message):
        self.refused += 1
        _log.warning("mqtt command refused", topic=topic[:96], error=code)
        self._event("error", {"topic": topic[:128], "error": code, "message": message})

    def poll_inputs(self):
        # the core counts debounced edges: a press shorter than the poll period still shows
        bank = self.relays.bank
        seen = {}
        edges = {}
        for j, name in enumerate(self.relays.inputs):
            v = bool(bank.input_value(j))
            n = bank.edges(j)
            seen[name] = v
            edges[name] = n
            old = self.inputs.get(name)
            was = self._edges.get(name)
            if old is not None and (old != v or (was is not None and n != was)):
                self._due(self.pending_inputs, name)
                self._event("events", {"type": "input", "input": name,
                                       "state": "ON" if v else "OFF",
                                       "edges": (n - was) if was is not None and n >= was else 1})
        self.inputs = seen
        self._edges = edges

    def discovery(self):
        # [(config topic, JSON or "")]: one entity per relay and input, "" retracts a removed one
        s = self.settings
        base = self.base
        dp = s["discovery_prefix"]
        avail = base + "/availability"
        device = {"identifiers": [self.node], "name": "Relays " + self.device_id,
                  "manufacturer": "RelaysController", "model": "Raspberry Pi Pico W relay board",
                  "sw_version": self.c.firmware_version}
        out = []
        now = {"switch": list(self.relays.names), "binary_sensor": list(self.relays.inputs)}
        if s["discovery"]:
            for n in now["switch"]:
                out.append(("%s/switch/%s/%s/config" % (dp, self.node, n), json.dumps({
                    "name": n, "unique_id": "%s_relay_%s" % (self.node, n),
                    "command_topic": "%s/relay/%s/set" % (base, n),
                    "state_topic": "%s/relay/%s/state" % (base, n),
                    "availability_topic": avail, "payload_available": "online",
                    "payload_not_available": "offline", "payload_on": "ON",
                    "payload_off": "OFF", "state_on": "ON", "state_off": "OFF",
                    "optimistic": False, "qos": 1, "retain": False, "device": device})))
            for n in now["binary_sensor"]:
                out.append(("%s/binary_sensor/%s/%s/config" % (dp, self.node, n), json.dumps({
                    "name": n, "unique_id": "%s_input_%s" % (self.node, n),
                    "state_topic": "%s/input/%s/state" % (base, n),
                    "availability_topic": avail, "payload_available": "online",
                    "payload_not_available": "offline", "payload_on": "ON",
                    "payload_off": "OFF", "device": device})))
        else:
            now = {"switch": [], "binary_sensor": []}
        old = atomic_file.read_json(self.path) or {}
        gone = []
        if old.get("discovery_prefix", dp) == dp and old.get("node", self.node) == self.node:
            for kind in ("switch", "binary_sensor"):
                for n in old.get(kind, ()):
                    if n not in now[kind]:
                        out.append(("%s/%s/%s/%s/config" % (dp, kind, self.node, n), ""))
                        gone.append((kind, n))
        return out, now, gone

    async def _announce(self, client):
        self.announce_due = False
        out, now, gone = self.discovery()
        for topic, payload in out:
            await client.publish(topic, payload, retain=True, qos=1)
        for kind, n in gone:  # its retained state goes with the entity
            sub = "relay" if kind == "switch" else "input"
            await client.publish("%s/%s/%s/state" % (self.base, sub, n), "", retain=True, qos=1)
        doc = {"discovery_prefix": self.settings["discovery_prefix"], "node": self.node}
        doc.update(now)
        if (atomic_file.read_json(self.path) or {}) != doc:
            atomic_file.write_json(self.path, doc)
        if gone:
            _log.info("mqtt entities removed", entities=["%s:%s" % g for g in gone])

    async def _publish_pending(self, client, gen=None):
        # an item leaves its queue only once published, and only if nothing newer came meanwhile:
        # a publish cut short by a lost connection leaves it due for the next connection
        base = self.base
        while self.pending or self.pending_inputs or self.events:
            if gen is not None and gen != self._gen:
                return  # the publisher of a connection that has ended touches nothing
            if self.pending or self.pending_inputs:
                relay = bool(self.pending)
                pending = self.pending if relay else self.pending_inputs
                name = next(iter(pending))
                mark = pending[name]
                if relay and self.relays.has(name):
                    await client.publish("%s/relay/%s/state" % (base, name),
                                         "ON" if self.relays.get(name) else "OFF",
                                         retain=True, qos=1)
                elif not relay and name in self.inputs:
                    await client.publish("%s/input/%s/state" % (base, name),
                                         "ON" if self.inputs[name] else "OFF", retain=True, qos=1)
                if pending.get(name) == mark:
                    del pending[name]
            else:
                item = self.events[0]
                await client.publish(base + "/" + item[0], item[1])
                if self.events and self.events[0] is item:  # not dropped by the bound meanwhile
                    self.events.pop(0)

    async def _publisher(self, client, gen):
        # gen: the connection this publisher serves; it returns once that connection has ended,
        # even when the cancel sent at the end was lost (MicroPython forwards a cancel to the
        # task being awaited: one landing in wait_for's time-out path is absorbed there and the
        # caller sees TimeoutError)
        while gen == self._gen:
            self.poll_inputs()
            if self.announce_due:
                await self._announce(client)
                if gen != self._gen:
                    return
                for n in self.relays.names:
                    self._due(self.pending, n)
                for n in self.inputs:
                    self._due(self.pending_inputs, n)
            await self._publish_pending(client, gen)
            self._wake.clear()
            try:
                await asyncio.wait_for_ms(self._wake.wait(), INPUT_POLL_MS)
            except asyncio.TimeoutError:
                pass

    # ---- what the broker tells the device ----

    def on_message(self, topic, payload, retain):
        prefix = self.base + "/relay/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return self._error(topic, "unknown_topic", "not a command topic of this device")
        name = topic[len(prefix):-4]
        if retain:
            # a retained command was stored by the broker earlier: acting on it would replay
            # an old decision at every reconnect
            self.retained_ignored += 1
            return self._error(topic, "retained_ignored",
                               "retained commands are stale and ignored; publish without retain")
        if len(payload) > MAX_COMMAND:
            return self._error(topic, "invalid_payload",
                               "a command is ON, OFF or TOGGLE (payload of %d bytes)"
                               % len(payload))
        try:
            word = str(payload, "utf-8")
        except UnicodeError:
            word = None
        if word not in COMMANDS:
            return self._error(topic, "invalid_payload", "a command is ON, OFF or TOGGLE")
        if not self.relays.has(name):
            return self._error(topic, "unknown_relay", "no relay of that name")
        role = self.settings["command_role"]
        ok, retry = self.limiter.check_subject(self.subject, time.ticks_ms(), False, role)
        if not ok:
            return self._error(topic, "rate_limited",
                               "too many commands; retry in %d s" % retry)
        why = rbac.denial({"role": role}, rbac.SWITCH, name, self.roles)
        if why is not None:
            return self._error(topic, "forbidden",
                               "role %r may not switch relays" % role)
        self.commands += 1
        if word == "TOGGLE":
            r = self.relays.toggle(name, "mqtt", self.subject)
        else:
            r = self.relays.set(name, word == "ON", "mqtt", self.subject)
        if r not in ("ok", "deferred"):
            self._due(self.pending, name)  # the state topic says what stayed
            return self._error(topic, r, "the relay core refused the switch: %s" % r)

    # ---- connection ----

    def _client(self, s):
        port = s["port"]
        will = (self.base + "/availability", b"offline", True, 1)
        return MQTTClient(s["host"], port, s.get("client_id") or self.device_id,
                          user=s.get("username"), password=s.get("password"),
                          ssl=tls_context(s) if s["tls"] else None, keepalive_s=s["keepalive_s"],
                          will=will, on_message=self.on_message)

    async def _session(self, client, base):
        done = asyncio.Event()
        self._conn_done = done
        self._gen += 1
        gen = self._gen

        async def guard(coro):
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.last_error = "%s: %s" % (type(e).__name__, e)
            done.set()

        async def work():  # the reader must run first: it is what sees the acks
            await client.subscribe(self.base + "/relay/+/set", 1)
            await client.publish(self.base + "/availability", "online", retain=True, qos=1)
            self.announce_due = True
            await self._publisher(client, gen)

        tasks = (asyncio.create_task(guard(client.run())), asyncio.create_task(guard(work())))
        try:
            await done.wait()
            if self._reconf.is_set() and client.connected:
                try:  # leaving on purpose: say so (the will is for losses), reader still up
                    await client.publish(base + "/availability", "offline", retain=True)
                    await client.disconnect()
                except (OSError, MQTTError):
                    pass
        finally:
            self._conn_done = None
            self._gen += 1  # this connection's publisher stops, even if its cancel is lost
            for t in tasks:
                t.cancel()

    async def run(self):
        backoff = 1000
        while True:
            s = self.settings
            self._reconf.clear()
            if s is None:
                await self._reconf.wait()
                continue
            client = None
            base = self.base
            try:
                client = self._client(s)
                await client.connect()
                self.client = client
                self.connects += 1
                backoff = 1000
                _log.info("mqtt connected", host=s["host"], port=s["port"], tls=s["tls"])
                await self._session(client, base)
                if self._reconf.is_set():
                    _log.info("mqtt settings changed: disconnected")
                else:
                    _log.warning("mqtt connection lost", error=self.last_error)
            except (OSError, MQTTError, ValueError) as e:
                self.last_error = "%s: %s" % (type(e).__name__, e)
                _log.warning("mqtt connection failed", error=self.last_error, retry_ms=backoff)
            finally:
                self.client = None
                if client is not None:
                    client.close()
            if self._reconf.is_set():
                continue
            try:  # a new config cuts the wait short
                await asyncio.wait_for_ms(self._reconf.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, 30000)

    def counters(self):
        return {"mqtt_connects": self.connects, "mqtt_commands": self.commands,
                "mqtt_refused": self.refused, "mqtt_retained_ignored": self.retained_ignored,
                "mqtt_events_dropped": self.events_dropped}


def mqtt_extension():
    # -> attach(controller) for RelaysController's extensions
    def attach(c):
        b = MqttBridge(c)
        c.mqtt = b
        c.config.on_change(b.reconfigure)
        c.add_task("mqtt", b.run)
        return b
    return attach
