"""Operator routes for the devices of a namespace: provisioning, config, desired state,
commands and what the devices reported (heartbeats, alarms)."""

import re
import secrets

from starlette.responses import JSONResponse, Response

from .api_error import ApiError
from .validation import check_config

RELAY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEVICES_PATH = "/v1/operator/tenants/{tenant}/namespaces/{namespace}/devices"
DEVICE_PATH = DEVICES_PATH + "/{device_id}"


def summary(platform, dev):
    s = platform.store
    cfg_v, des_v = platform.versions(dev["device_id"])
    out = {"device_id": dev["device_id"], "tenant": dev["tenant"],
           "namespace": dev["namespace"], "created_at": dev["created_at"],
           "config_version": cfg_v, "desired_version": des_v}
    if dev["registered_at"] is not None:
        out["registered_at"] = dev["registered_at"]
    hb = s.last_heartbeat(dev["device_id"])
    if hb is not None:
        out["last_heartbeat_at"] = hb
    rep = s.get_reported(dev["device_id"])
    if rep is not None:
        out["reported_at"] = rep["received_at"]
        out["firmware_version"] = rep["state"]["firmware_version"]
    return out


def mount(route, platform):
    p = platform
    s = platform.store
    one = DEVICE_PATH

    @route("GET", DEVICES_PATH, auth="operator")
    async def list_devices(ctx):
        rows = s.list_devices(ctx.params["tenant"], ctx.params["namespace"])
        return JSONResponse({"devices": [summary(p, r) for r in rows]})

    @route("POST", DEVICES_PATH, auth="operator")
    async def create_device(ctx):
        now = p.now()
        key = ctx.body.get("device_key") or secrets.token_urlsafe(24)
        device_id = ctx.body["device_id"]
        # Device ids are global: registration names only the id.
        if not s.create_device(device_id, ctx.params["tenant"], ctx.params["namespace"], key, now):
            raise ApiError(409, "conflict", "device id %r is already taken" % device_id,
                           field="device_id")
        return JSONResponse({"device_id": device_id, "tenant": ctx.params["tenant"],
                             "namespace": ctx.params["namespace"], "device_key": key,
                             "created_at": now}, status_code=201,
                            headers={"Cache-Control": "no-store"})

    @route("GET", one, auth="operator")
    async def get_device(ctx):
        device_id = ctx.device["device_id"]
        out = {"device": summary(p, ctx.device), "desired": s.get_desired(device_id),
               "pending_commands": s.pending_commands(device_id)}
        rep = s.get_reported(device_id)
        if rep is not None:
            out["reported"] = rep["state"]
        return JSONResponse(out)

    @route("DELETE", one, auth="operator")
    async def delete_device(ctx):
        s.delete_device(ctx.device["device_id"])
        return Response(status_code=204)

    @route("GET", one + "/config", auth="operator")
    async def get_device_config(ctx):
        cfg = s.current_config(ctx.device["device_id"])
        if cfg is None:
            raise ApiError(404, "no_config", "no configuration has been pushed for this device yet")
        return JSONResponse(cfg)

    @route("PUT", one + "/config", auth="operator")
    async def put_device_config(ctx):
        problem = check_config(ctx.body)
        if problem and not ctx.query["force"]:
            raise ApiError(422, "invalid_config", "%s: %s" % problem, field=problem[0])
        now = p.now()
        body = p.tokens.with_revocations(ctx.device["device_id"], ctx.body, now)
        version = s.push_config(ctx.device["device_id"], body, problem is None, now)
        out = {"version": version, "valid": problem is None, "etag": '"cfg-%d"' % version}
        if problem:
            out["problem"] = {"error": "invalid_config", "message": "%s: %s" % problem,
                              "field": problem[0]}
        return JSONResponse(out)

    @route("PUT", one + "/desired-state", auth="operator")
    async def put_desired(ctx):
        relays = ctx.body["relays"]
        cfg = s.current_config(ctx.device["device_id"])
        for name in relays:
            if not RELAY_NAME.match(name) or len(name) > 32:
                raise ApiError(400, "invalid_request", "invalid relay name %r" % name,
                               field="relays.%s" % name)
            known = cfg["config"].get("relays", {}) if cfg else None
            if known is not None and isinstance(known, dict) and name not in known \
                    and not ctx.query["force"]:
                raise ApiError(422, "unknown_relay", "relay %r is not in the device's config"
                               " (version %d)" % (name, cfg["version"]), field="relays.%s" % name)
        return JSONResponse(s.set_desired(ctx.device["device_id"], relays, p.now()))

    @route("POST", one + "/commands", auth="operator")
    async def queue_command(ctx):
        now = p.now()
        cid = s.queue_command(ctx.device["device_id"], ctx.body["command"], now)
        return JSONResponse({"command_id": cid, "command": ctx.body["command"], "created_at": now},
                            status_code=202)

    @route("GET", one + "/heartbeats", auth="operator")
    async def list_heartbeats(ctx):
        rows = s.list_heartbeats(ctx.device["device_id"], ctx.query["limit"])
        out = []
        for r in rows:
            h = {"received_at": r["received_at"], "uptime_s": r["uptime_s"], "command": r["command"]}
            if r["seq"] is not None:
                h["seq"] = r["seq"]
            out.append(h)
        return JSONResponse({"heartbeats": out})

    @route("GET", one + "/alarms", auth="operator")
    async def list_alarms(ctx):
        rows = s.list_alarms(ctx.device["device_id"], ctx.query["limit"])
        keys = ("dedup_key", "severity", "message", "count", "first_seen", "last_seen",
                "received_at")
        return JSONResponse({"alarms": [{k: r[k] for k in keys} for r in rows]})
