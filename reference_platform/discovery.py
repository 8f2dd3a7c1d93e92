"""Service discovery: the health check and device registration (proof of the device key)."""

from starlette.responses import JSONResponse

from . import CONTRACT_VERSION
from .api_error import ApiError
from .security import check_proof


def mount(route, platform):
    p = platform
    s = platform.store

    @route("GET", "/v1/health")
    async def health(ctx):
        return JSONResponse({"status": "ok", "contract_version": CONTRACT_VERSION,
                             "server_time": p.now()})

    @route("POST", "/v1/devices/register")
    async def register(ctx):
        b = ctx.body
        now = p.now()
        dev = s.get_device(b["device_id"])
        # The clock is judged before the device is looked up, so "fix my clock" tells nothing
        # about which ids exist; an unknown id and a wrong proof then answer the same, after
        # the same HMAC work, so device ids cannot be enumerated.
        if abs(now - b["timestamp"]) > p.clock_skew_s:
            raise ApiError(401, "stale_timestamp", "timestamp is more than %d s from server time;"
                           " retry with server_time" % p.clock_skew_s, field="timestamp",
                           server_time=now)
        key = dev["device_key"] if dev is not None else p.decoy_key
        proof_ok = check_proof(key, b["device_id"], b["timestamp"], b["nonce"], b["proof"])
        if dev is None or not proof_ok:
            raise ApiError(401, "bad_proof", "proof is not HMAC-SHA256(device key,"
                           " '<device_id>|<timestamp>|<nonce>') of a provisioned device",
                           field="proof")
        if not s.use_nonce(b["device_id"], b["nonce"], now, 2 * p.clock_skew_s + 1):
            raise ApiError(401, "nonce_reused", "this nonce was already used; send a fresh one",
                           field="nonce")
        token, claims = p.jwt.issue({"sub": dev["device_id"], "tenant": dev["tenant"],
                                     "namespace": dev["namespace"], "role": "device"}, now)
        s.mark_registered(dev["device_id"], now)
        base = p.base_url(ctx.request)
        return JSONResponse({
            "device_id": dev["device_id"], "tenant": dev["tenant"],
            "namespace": dev["namespace"], "token": token, "token_type": "Bearer",
            "expires_in": claims["exp"] - now, "expires_at": claims["exp"], "server_time": now,
            "services": {
                "config": base + "/v1/config", "config_schema": base + "/v1/config/schema",
                "state": base + "/v1/state", "desired_state": base + "/v1/state/desired",
                "heartbeat": base + "/v1/heartbeat", "alarms": base + "/v1/alarms",
                "ota": base + "/v1/ota"},
        }, headers={"Cache-Control": "no-store"})
