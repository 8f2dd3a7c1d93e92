"""What a registered device calls with its JWT: config, state, heartbeat and alarms."""

from starlette.responses import JSONResponse, Response

from .api_error import ApiError
from .validation import CONFIG_SCHEMA


def etag_matches(header, etag):
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or (tag[2:] if tag.startswith("W/") else tag) == etag:
            return True
    return False


def mount(route, platform):
    p = platform
    s = platform.store

    # ---- ConfigurationServer ----

    @route("GET", "/v1/config", auth="device")
    async def get_config(ctx):
        cfg = s.current_config(ctx.device["device_id"])
        if cfg is None:
            raise ApiError(404, "no_config", "no configuration has been pushed for this device yet")
        etag = '"cfg-%d"' % cfg["version"]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag_matches(ctx.request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return JSONResponse({"version": cfg["version"], "config": cfg["config"]}, headers=headers)

    @route("GET", "/v1/config/schema")
    async def get_config_schema(ctx):
        return JSONResponse(CONFIG_SCHEMA)

    # ---- StateServer ----

    @route("PUT", "/v1/state", auth="device")
    async def put_state(ctx):
        now = p.now()
        s.set_reported(ctx.device["device_id"], ctx.body, now)
        cfg_v, des_v = p.versions(ctx.device["device_id"])
        return JSONResponse({"received_at": now, "config_version": cfg_v, "desired_version": des_v})

    @route("GET", "/v1/state/desired", auth="device")
    async def get_desired(ctx):
        d = s.get_desired(ctx.device["device_id"])
        etag = '"desired-%d"' % d["version"]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag_matches(ctx.request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return JSONResponse(d, headers=headers)

    # ---- Watchdog ----

    @route("POST", "/v1/heartbeat", auth="device")
    async def heartbeat(ctx):
        now = p.now()
        device_id = ctx.device["device_id"]
        if "state" in ctx.body:
            s.set_reported(device_id, ctx.body["state"], now)
        popped = s.pop_command(device_id, now)
        command = popped[1] if popped else "none"
        s.add_heartbeat(device_id, now, ctx.body.get("seq"), ctx.body["uptime_s"], command)
        cfg_v, des_v = p.versions(device_id)
        out = {"command": command, "server_time": now, "config_version": cfg_v,
               "desired_version": des_v}
        if popped:
            out["command_id"] = popped[0]
        return JSONResponse(out)

    # ---- Alarms ----

    @route("POST", "/v1/alarms", auth="device")
    async def alarms(ctx):
        for i, a in enumerate(ctx.body["alarms"]):
            if a["first_seen"] > a["last_seen"]:
                raise ApiError(400, "invalid_request", "last_seen is before first_seen",
                               field="alarms[%d].last_seen" % i)
        result = s.merge_alarms(ctx.device["device_id"], ctx.body.get("batch_id"),
                                ctx.body["alarms"], p.now())
        return JSONResponse(result)
