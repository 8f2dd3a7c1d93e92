# The device-side check of a configuration: the rules of reference_platform/config.schema.json
# plus its cross-field rules, by hand (a JSON Schema engine costs too much RAM on the board).
# check(cfg) -> None, or (field, message) naming the first problem as the platform does.
import re

PINS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
        26, 27, 28)
DEFAULTS = {
    "restore_policy": "last",
    "interlocks": [],
    "inputs": {},
    "ntp_servers": ["pool.ntp.org"],
    "ntp_period_s": 3600,
    "ntp_max_step_s": 600,
    "log_level": "info",
    "heartbeat_period_s": 30,
    "heartbeat_max_missed": 3,
    "state_period_s": 60,
    "config_poll_period_s": 300,
    "watchdog": {},
}
# watchdog.stuck_reset: a reset for missed heartbeats only when the local stack is stuck
STUCK_RESET = {"enabled": True, "after_missed": 3, "backoff_s": 300, "max_per_hour": 3}
_TOP = ("relays", "restore_policy", "interlocks", "inputs", "ntp_servers", "ntp_period_s",
        "ntp_max_step_s", "log_level", "log_file", "heartbeat_period_s", "heartbeat_max_missed",
        "state_period_s", "config_poll_period_s", "api", "rate_limits", "watchdog", "ota_release_keys",
        "http", "mqtt")
# the device REST API's connection limits: name -> (min, max); defaults in rest_api.HttpLimits
_HTTP = (("max_connections", 1, 64), ("max_per_address", 1, 64),
         ("max_head_bytes", 1024, 16384), ("max_headers", 4, 100),
         ("head_timeout_ms", 100, 60000), ("max_tls_sessions", 1, 16), ("max_tls_streams", 0, 4),
         ("token_checks_per_s", 1, 1000))
_NAME = re.compile("^[a-z][a-z0-9_]*$")
_HOST = re.compile("^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?$")
_HEX = re.compile("^[0-9a-f]*$")
_HEX_BYTES = re.compile("^([0-9a-f][0-9a-f])*$")
_JTI = re.compile("^[A-Za-z0-9_-]*$")
_PERMS = ("relays:read", "relays:write", "metrics:read", "admin")
_BROKER = re.compile("^[A-Za-z0-9][A-Za-z0-9.-]*$")
_TOPIC = re.compile("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_CLIENT_ID = re.compile("^[A-Za-z0-9_-]+$")
_PEM = re.compile("^-----BEGIN ")
_MQTT = ("enabled", "host", "port", "tls", "ca_cert", "client_cert", "client_key", "username",
         "password", "client_id", "topic_prefix", "discovery_prefix", "discovery",
         "command_role", "keepalive_s")


def get(cfg, key):
    v = cfg.get(key)
    return DEFAULTS.get(key) if v is None else v


def stuck_reset(watchdog):
    # the config's "watchdog" object -> its stuck_reset with the defaults filled in
    out = dict(STUCK_RESET)
    out.update((watchdog or {}).get("stuck_reset") or {})
    return out


class Invalid(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def _at(f, k):
    return "%s.%s" % (f, k) if f else k


def _obj(v, f, allowed, required=()):
    if type(v) is not dict:
        raise Invalid(f or "(body)", "must be an object")
    for k in required:
        if k not in v:
            raise Invalid(_at(f, k), "missing required field %r" % k)
    for k in v:
        if k not in allowed:
            raise Invalid(_at(f, k), "unknown field %r" % k)


def _int(v, f, lo, hi):
    if type(v) is not int:
        raise Invalid(f, "must be an integer")
    if not lo <= v <= hi:
        raise Invalid(f, "%d is outside %d..%d" % (v, lo, hi))


def _bool(v, f):
    if type(v) is not bool:
        raise Invalid(f, "must be true or false")


def _enum(v, f, choices):
    if v not in choices or type(v) is bool:
        raise Invalid(f, "%r is not one of %s" % (v, ", ".join(repr(c) for c in choices)))


def _str(v, f, lo, hi, rx=None, secret=False):
    if type(v) is not str:
        raise Invalid(f, "must be a string")
    if not lo <= len(v) <= hi:
        raise Invalid(f, "length %d is outside %d..%d" % (len(v), lo, hi))
    if rx is not None and not rx.match(v):
        # a secret's value stays out of the message (it goes to logs and alarms)
        raise Invalid(f, "%s does not match the allowed pattern" % (
            "the value" if secret else repr(v)))


def _names(v, f, lo, hi):
    # an object keyed by names
    if type(v) is not dict:
        raise Invalid(f, "must be an object")
    if not lo <= len(v) <= hi:
        raise Invalid(f, "%d entries, allowed %d..%d" % (len(v), lo, hi))
    for k in v:
        if not (1 <= len(k) <= 32 and _NAME.match(k)):
            raise Invalid(_at(f, k), "invalid name %r" % k)


def _list(v, f, lo, hi):
    if type(v) is not list:
        raise Invalid(f, "must be an array")
    if not lo <= len(v) <= hi:
        raise Invalid(f, "%d items, allowed %d..%d" % (len(v), lo, hi))


def _pin(v, f):
    if type(v) is not int or v not in PINS:
        raise Invalid(f, "%r is not a usable Pico W GPIO" % (v,))


def _schema(c):
    _obj(c, "", _TOP, ("relays",))
    _names(c["relays"], "relays", 1, 16)
    for n in c["relays"]:
        r = c["relays"][n]
        f = "relays." + n
        _obj(r, f, ("pin", "active_low", "on_at_boot", "min_interval_ms", "pulse_ms"), ("pin",))
        _pin(r["pin"], f + ".pin")
        for k in ("active_low", "on_at_boot"):
            if k in r:
                _bool(r[k], f + "." + k)
        if "min_interval_ms" in r:
            _int(r["min_interval_ms"], f + ".min_interval_ms", 0, 3600000)
        if "pulse_ms" in r:
            _int(r["pulse_ms"], f + ".pulse_ms", 1, 86400000)
    if "restore_policy" in c:
        _enum(c["restore_policy"], "restore_policy", ("configured", "last", "off"))
    if "interlocks" in c:
        _list(c["interlocks"], "interlocks", 0, 8)
        for i, g in enumerate(c["interlocks"]):
            f = "interlocks[%d]" % i
            _obj(g, f, ("relays", "dead_ms"), ("relays", "dead_ms"))
            _list(g["relays"], f + ".relays", 2, 16)
            for j, m in enumerate(g["relays"]):
                _str(m, "%s.relays[%d]" % (f, j), 1, 32, _NAME)
                if m in g["relays"][:j]:
                    raise Invalid(f + ".relays", "has non-unique elements")
            _int(g["dead_ms"], f + ".dead_ms", 0, 3600000)
    if "inputs" in c:
        _names(c["inputs"], "inputs", 0, 16)
        for n in c["inputs"]:
            p = c["inputs"][n]
            f = "inputs." + n
            _obj(p, f, ("pin", "pull", "active_low", "debounce_ms"), ("pin",))
            _pin(p["pin"], f + ".pin")
            if "pull" in p:
                _enum(p["pull"], f + ".pull", ("up", "down", "none"))
            if "active_low" in p:
                _bool(p["active_low"], f + ".active_low")
            if "debounce_ms" in p:
                _int(p["debounce_ms"], f + ".debounce_ms", 0, 60000)
    if "ntp_servers" in c:
        _list(c["ntp_servers"], "ntp_servers", 0, 4)
        for i, s in enumerate(c["ntp_servers"]):
            _str(s, "ntp_servers[%d]" % i, 1, 253, _HOST)
    for k, lo, hi in (("ntp_period_s", 10, 86400), ("ntp_max_step_s", 1, 86400),
                      ("heartbeat_period_s", 1, 3600),
                      ("heartbeat_max_missed", 1, 100), ("state_period_s", 1, 3600),
                      ("config_poll_period_s", 1, 86400)):
        if k in c:
            _int(c[k], k, lo, hi)
    if "ota_release_keys" in c:
        _list(c["ota_release_keys"], "ota_release_keys", 1, 4)
        for i, k in enumerate(c["ota_release_keys"]):
            _str(k, "ota_release_keys[%d]" % i, 64, 64, _HEX)
    if "log_level" in c:
        _enum(c["log_level"], "log_level", ("debug", "info", "warning", "error"))
    if "log_file" in c:
        lf = c["log_file"]
        _obj(lf, "log_file", ("max_bytes", "keep"))
        if "max_bytes" in lf:
            _int(lf["max_bytes"], "log_file.max_bytes", 1024, 1048576)
        if "keep" in lf:
            _int(lf["keep"], "log_file.keep", 1, 10)
    if "api" in c:
        _api(c["api"])
    if "watchdog" in c:
        _watchdog(c["watchdog"])
    if "http" in c:
        _obj(c["http"], "http", [k for k, _, _ in _HTTP])
        for k, lo, hi in _HTTP:
            if k in c["http"]:
                _int(c["http"][k], "http." + k, lo, hi)
    if "mqtt" in c:
        _mqtt(c["mqtt"])
    if "rate_limits" in c:
        _names(c["rate_limits"], "rate_limits", 0, 9)
        for n in c["rate_limits"]:
            f = "rate_limits." + n
            rl = c["rate_limits"][n]
            _obj(rl, f, ("requests", "window_s"), ("requests", "window_s"))
            _int(rl["requests"], f + ".requests", 1, 10000)
            _int(rl["window_s"], f + ".window_s", 1, 3600)


def _api(a):
    _obj(a, "api", ("roles", "keys", "token_ttl_s", "jwt", "revoked", "allow_plain_http"))
    if "roles" in a:
        _names(a["roles"], "api.roles", 0, 8)
        for n in a["roles"]:
            f = "api.roles." + n
            _obj(a["roles"][n], f, ("permissions",), ("permissions",))
            perms = a["roles"][n]["permissions"]
            _list(perms, f + ".permissions", 0, 4)
            for i, p in enumerate(perms):
                _enum(p, "%s.permissions[%d]" % (f, i), _PERMS)
                if p in perms[:i]:
                    raise Invalid(f + ".permissions", "has non-unique elements")
    if "keys" in a:
        _list(a["keys"], "api.keys", 0, 16)
        for i, k in enumerate(a["keys"]):
            f = "api.keys[%d]" % i
            _obj(k, f, ("id", "role", "key_sha256"), ("id", "role", "key_sha256"))
            _str(k["id"], f + ".id", 1, 32, _NAME)
            _str(k["role"], f + ".role", 1, 32, _NAME)
            _str(k["key_sha256"], f + ".key_sha256", 64, 64, _HEX)
    if "token_ttl_s" in a:
        _int(a["token_ttl_s"], "api.token_ttl_s", 60, 86400)
    if "jwt" in a:
        j = a["jwt"]
        _obj(j, "api.jwt", ("key", "issuer", "audience", "leeway_s"),
             ("key", "issuer", "audience"))
        _str(j["key"], "api.jwt.key", 64, 128, _HEX_BYTES, secret=True)
        _str(j["issuer"], "api.jwt.issuer", 1, 128)
        _str(j["audience"], "api.jwt.audience", 1, 128)
        if "leeway_s" in j:
            _int(j["leeway_s"], "api.jwt.leeway_s", 0, 300)
    if "revoked" in a:
        _list(a["revoked"], "api.revoked", 0, 64)
        for i, r in enumerate(a["revoked"]):
            f = "api.revoked[%d]" % i
            _obj(r, f, ("jti", "exp"), ("jti", "exp"))
            _str(r["jti"], f + ".jti", 16, 64, _JTI)
            _int(r["exp"], f + ".exp", 0, 4102444800)
    if "allow_plain_http" in a:
        _bool(a["allow_plain_http"], "api.allow_plain_http")


def _mqtt(m):
    _obj(m, "mqtt", _MQTT, ("host",))
    for k in ("enabled", "tls", "discovery"):
        if k in m:
            _bool(m[k], "mqtt." + k)
    _str(m["host"], "mqtt.host", 1, 253, _BROKER)
    if "port" in m:
        _int(m["port"], "mqtt.port", 1, 65535)
    for k in ("ca_cert", "client_cert", "client_key"):
        if k in m:
            _str(m[k], "mqtt." + k, 32, 8192, _PEM, secret=k == "client_key")
    if "username" in m:
        _str(m["username"], "mqtt.username", 1, 64)
    if "password" in m:
        _str(m["password"], "mqtt.password", 1, 128, secret=True)
    if "client_id" in m:
        _str(m["client_id"], "mqtt.client_id", 1, 64, _CLIENT_ID)
    for k in ("topic_prefix", "discovery_prefix"):
        if k in m:
            _str(m[k], "mqtt." + k, 1, 64, _TOPIC)
    if "command_role" in m:
        _str(m["command_role"], "mqtt.command_role", 1, 32, _NAME)
    if "keepalive_s" in m:
        _int(m["keepalive_s"], "mqtt.keepalive_s", 10, 3600)


def _mqtt_cross(m, roles):
    if m.get("tls") and "ca_cert" not in m:
        raise Invalid("mqtt.ca_cert", "required when tls is true")
    if ("client_cert" in m) != ("client_key" in m):
        raise Invalid("mqtt.client_key" if "client_cert" in m else "mqtt.client_cert",
                      "client_cert and client_key go together")
    if "client_cert" in m and not m.get("tls"):
        raise Invalid("mqtt.client_cert", "a client certificate needs tls")
    if "password" in m and "username" not in m:
        raise Invalid("mqtt.username", "required with password")
    role = m.get("command_role", "operator")
    if role not in ("viewer", "operator", "admin") and role not in roles:
        raise Invalid("mqtt.command_role", "unknown role %r" % role)


def _watchdog(w):
    _obj(w, "watchdog", ("stuck_reset",))
    if "stuck_reset" in w:
        s = w["stuck_reset"]
        f = "watchdog.stuck_reset"
        _obj(s, f, ("enabled", "after_missed", "backoff_s", "max_per_hour"))
        if "enabled" in s:
            _bool(s["enabled"], f + ".enabled")
        for k, lo, hi in (("after_missed", 1, 100), ("backoff_s", 1, 86400),
                          ("max_per_hour", 1, 60)):
            if k in s:
                _int(s[k], f + "." + k, lo, hi)


def _cross(c):
    relays = c["relays"]
    pins = {}
    for n in relays:
        p = relays[n]["pin"]
        if p in pins:
            raise Invalid("relays.%s.pin" % n, "pin %d is already used by relay %r" % (p, pins[p]))
        pins[p] = n
    inputs = c.get("inputs", {})
    for n in inputs:
        p = inputs[n]["pin"]
        if p in pins:
            raise Invalid("inputs.%s.pin" % n, "pin %d is already used by %r" % (p, pins[p]))
        pins[p] = n
    for i, g in enumerate(c.get("interlocks", ())):
        for j, m in enumerate(g["relays"]):
            if m not in relays:
                raise Invalid("interlocks[%d].relays[%d]" % (i, j), "unknown relay %r" % m)
    api = c.get("api", {})
    roles = api.get("roles", {})
    seen = []
    for i, k in enumerate(api.get("keys", ())):
        if k["role"] not in roles:
            raise Invalid("api.keys[%d].role" % i, "unknown role %r" % k["role"])
        if k["id"] in seen:
            raise Invalid("api.keys[%d].id" % i, "duplicate key id %r" % k["id"])
        seen.append(k["id"])
    for n in c.get("rate_limits", {}):
        if n != "default" and n not in roles:
            raise Invalid("rate_limits." + n, "not 'default' nor a role in api.roles")
    if "mqtt" in c:
        _mqtt_cross(c["mqtt"], roles)


def check(cfg):
    try:
        _schema(cfg)
        _cross(cfg)
    except Invalid as e:
        return (e.field, e.message)
    return None
