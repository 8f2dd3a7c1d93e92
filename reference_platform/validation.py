"""JSON Schema validation that names the offending field, plus the config's cross-field rules."""

import json
import os

import jsonschema
from jsonschema.exceptions import best_match

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_SCHEMA_PATH = os.path.join(HERE, "config.schema.json")


def field_path(parts):
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += "[%d]" % p
        else:
            out += ("." if out else "") + str(p)
    return out


def describe(error, prefix=""):
    """(field, message) for one jsonschema error, pointing at the member at fault."""
    parts = list(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set((error.schema.get("properties") or {}).keys())
        extras = sorted(k for k in error.instance if k not in known)
        if extras:
            parts.append(extras[0])
            message = "unknown field %r" % extras[0]
    elif error.validator == "required" and isinstance(error.instance, dict):
        missing = [r for r in error.validator_value if r not in error.instance]
        if missing:
            parts.append(missing[0])
            message = "missing required field %r" % missing[0]
    elif "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        # name checks do not extend the instance path; point at the offending name itself
        parts.append(error.instance)
        message = "invalid name %r: %s" % (error.instance, error.message)
    path = field_path(parts)
    if prefix:
        path = prefix + ("." + path if path and not path.startswith("[") else path)
    return path or "(body)", message


def first_error(validator, instance, prefix=""):
    err = best_match(validator.iter_errors(instance))
    if err is None:
        return None
    return describe(err, prefix)


with open(CONFIG_SCHEMA_PATH) as f:
    CONFIG_SCHEMA = json.load(f)
CONFIG_VALIDATOR = jsonschema.Draft7Validator(CONFIG_SCHEMA)


def check_config(config):
    """None when valid, else (field, message) of the first problem found."""
    problem = first_error(CONFIG_VALIDATOR, config)
    if problem:
        if problem[0] == "api.jwt.key":  # a secret: its value stays out of the message
            return (problem[0], "must be 64 to 128 lowercase hex digits (32 to 64 bytes)")
        if problem[0] in ("mqtt.password", "mqtt.client_key"):  # secrets too
            return (problem[0], "the value is not valid (see the config schema)")
        return problem
    relays = config["relays"]
    pins = {}
    for name, relay in relays.items():
        pin = relay["pin"]
        if pin in pins:
            return ("relays.%s.pin" % name, "pin %d is already used by relay %r" % (pin, pins[pin]))
        pins[pin] = name
    for name, inp in config.get("inputs", {}).items():
        pin = inp["pin"]
        if pin in pins:
            return ("inputs.%s.pin" % name, "pin %d is already used by %r" % (pin, pins[pin]))
        pins[pin] = name
    for i, lock in enumerate(config.get("interlocks", [])):
        for j, member in enumerate(lock["relays"]):
            if member not in relays:
                return ("interlocks[%d].relays[%d]" % (i, j), "unknown relay %r" % member)
    api = config.get("api", {})
    roles = api.get("roles", {})
    seen = set()
    for i, key in enumerate(api.get("keys", [])):
        if key["role"] not in roles:
            return ("api.keys[%d].role" % i, "unknown role %r" % key["role"])
        if key["id"] in seen:
            return ("api.keys[%d].id" % i, "duplicate key id %r" % key["id"])
        seen.add(key["id"])
    for name in config.get("rate_limits", {}):
        if name != "default" and name not in roles:
            return ("rate_limits.%s" % name, "not 'default' nor a role in api.roles")
    return _mqtt_cross(config.get("mqtt"), roles)


def _mqtt_cross(m, roles):
    # the mqtt block's cross rules (the device checks the same, iotlib/config_schema.py)
    if m is None:
        return None
    if m.get("tls") and "ca_cert" not in m:
        return ("mqtt.ca_cert", "required when tls is true")
    if ("client_cert" in m) != ("client_key" in m):
        return ("mqtt.client_key" if "client_cert" in m else "mqtt.client_cert",
                "client_cert and client_key go together")
    if "client_cert" in m and not m.get("tls"):
        return ("mqtt.client_cert", "a client certificate needs tls")
    if "password" in m and "username" not in m:
        return ("mqtt.username", "required with password")
    role = m.get("command_role", "operator")
    if role not in ("viewer", "operator", "admin") and role not in roles:
        return ("mqtt.command_role", "unknown role %r" % role)
    return None
