"""Pre-create tenants, namespaces, devices, configs and desired state from a JSON file.

Applying the same seed again changes nothing, so a restart with --seed keeps versions stable."""

import json

import jsonschema

from .validation import check_config, first_error

_SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "minLength": 1, "maxLength": 63}
SEED_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tenants"],
    "properties": {"$comment": {"type": "string"}, "tenants": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {
            "name": _SLUG,
            "namespaces": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["name"],
                "properties": {
                    "name": _SLUG,
                    "devices": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False,
                        "required": ["device_id", "device_key"],
                        "properties": {
                            "device_id": {"type": "string", "minLength": 1, "maxLength": 64,
                                          "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
                            "device_key": {"type": "string", "minLength": 16, "maxLength": 128,
                                           "pattern": "^[!-~]*$"},
                            "config": {"type": "object"},
                            "desired": {"type": "object",
                                        "additionalProperties": {"type": "boolean"}},
                        }}},
                }}},
        }}}},
}


class SeedError(Exception):
    pass


def load(path):
    try:
        with open(path) as f:
            seed = json.load(f)
    except (OSError, ValueError) as e:
        raise SeedError("cannot read seed %s: %s" % (path, e))
    problem = first_error(jsonschema.Draft7Validator(SEED_SCHEMA), seed)
    if problem:
        raise SeedError("seed %s: %s: %s" % (path, problem[0], problem[1]))
    return seed


def apply(platform, seed):
    s = platform.store
    now = platform.now()
    for t in seed["tenants"]:
        s.create_tenant(t["name"], now)
        for n in t.get("namespaces", []):
            s.create_namespace(t["name"], n["name"], now)
            for d in n.get("devices", []):
                dev = s.get_device(d["device_id"])
                if dev is None:
                    s.create_device(d["device_id"], t["name"], n["name"], d["device_key"], now)
                elif (dev["tenant"], dev["namespace"]) != (t["name"], n["name"]):
                    raise SeedError("device %r already exists in %s/%s"
                                    % (d["device_id"], dev["tenant"], dev["namespace"]))
                elif dev["device_key"] != d["device_key"]:
                    with s.db:
                        s.db.execute("UPDATE devices SET device_key=? WHERE device_id=?",
                                     (d["device_key"], d["device_id"]))
                if "config" in d:
                    problem = check_config(d["config"])
                    if problem:
                        raise SeedError("seed device %r config: %s: %s"
                                        % (d["device_id"], problem[0], problem[1]))
                    cur = s.current_config(d["device_id"])
                    if cur is None or cur["config"] != d["config"]:
                        s.push_config(d["device_id"], d["config"], True, now)
                if "desired" in d and s.get_desired(d["device_id"])["relays"] != d["desired"]:
                    s.set_desired(d["device_id"], d["desired"], now)
