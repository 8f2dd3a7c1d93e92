# Forged time end to end: register (the platform's time becomes the second source), sync
# against the honest responder, then against each hostile one in turn; a token that expired
# an hour ago is judged before and after. Reports what each hostile server achieved.
import json

from scenario_common import asyncio, auth_for, log, result, settings
from iotlib import jwt_validator
from iotlib.time_sync_manager import TimeSyncManager

KEY = b"e2e-time-attack-key-32-bytes-...."


def token(exp):
    def enc(b):
        return jwt_validator.b64url_encode(b).decode()
    si = enc(b'{"alg":"HS256","typ":"JWT"}') + "." + enc(json.dumps(
        {"iss": "i", "aud": "a", "sub": "ops", "exp": exp}).encode())
    return si + "." + enc(jwt_validator.hmac_sha256(KEY, si.encode()))


def judge(v, tok):
    try:
        v.validate(tok)
        return "accepted"
    except jwt_validator.TokenError as e:
        return e.reason


async def main():
    cfg = settings()
    auth = auth_for(cfg)
    await auth.register()
    tsm = TimeSyncManager([cfg["honest"]], logger=log("time"), timeout_ms=500, set_rtc=False,
                          max_step_s=600, second_source=auth.now,
                          floor_path=cfg["ctrl_dir"] + "/time_floor")
    first = await tsm.sync()
    v = jwt_validator.JWTValidator(KEY, "i", "a", tsm.now)
    expired = token(tsm.now() - 3600)
    result("honest", synced=first, offset_ms=tsm.offset_ms, token=judge(v, expired))
    for name, server in cfg["hostile"]:  # in the driver's order
        tsm.set_servers([server])
        before = tsm.offset_ms
        ok = await tsm.sync()
        result(name, applied=ok, moved_ms=tsm.offset_ms - before, steps_refused=tsm.steps_refused,
               failures=tsm.failures, token=judge(v, expired))
    # a reboot: the saved floor and the hostile server alone
    t2 = TimeSyncManager([dict(cfg["hostile"])["back-30-days"]], logger=log("time"), timeout_ms=500,
                         set_rtc=False, floor_path=cfg["ctrl_dir"] + "/time_floor")
    ok = await t2.sync()
    v2 = jwt_validator.JWTValidator(KEY, "i", "a", t2.now)
    result("reboot", applied=ok, floor_s=t2.floor_s, token=judge(v2, expired))


asyncio.run(main())
