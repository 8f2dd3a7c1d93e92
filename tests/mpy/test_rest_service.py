# iotlib.rest_service: the REST API as RelaysController serves it. The key, issuer and audience
# come from config api.jwt and follow each applied config (hot reload); without api.jwt the
# relay routes refuse with 503 not_configured; GET /config never shows the key; the key is
# masked in the log.
import json

from check import eq, true
from iotlib import http_client, logger
from iotlib.jwt_validator import b64url_encode, hmac_sha256
from iotlib.rest_api import Refusal
from standins import rm_tree, scratch_dir

logger.setup(echo=False)

KEY1 = "11" * 32
KEY2 = "2f" * 40
NOW = 1800000000


class _Clock:
    synced = True

    def now(self):
        return NOW

    def configure(self, cfg):
        pass


class _G:
    ip = "10.0.0.9"


class _Req:
    def __init__(self, token=None):
        self.g = _G()
        self.headers = {"Authorization": "Bearer " + token} if token else {}


def token(key_hex, sub="alice", role="operator", **over):
    claims = {"iss": "https://platform.test", "aud": "pico-t", "sub": sub, "role": role,
              "tenant": "acme", "namespace": "lab", "iat": NOW, "exp": NOW + 600}
    claims.update(over)
    signing = b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + \
        b64url_encode(json.dumps(claims).encode())
    key = bytes(int(key_hex[i:i + 2], 16) for i in range(0, len(key_hex), 2))
    return (signing + b"." + b64url_encode(hmac_sha256(key, signing))).decode()


def config(key=KEY1, **over):
    cfg = {"relays": {"r1": {"pin": 2}, "r2": {"pin": 3}},
           "api": {"jwt": {"key": key, "issuer": "https://platform.test", "audience": "pico-t"},
                   "roles": {"switcher": {"permissions": ["relays:write"]}}}}
    cfg.update(over)
    return cfg


def controller(d):
    from relays_controller import RelaysController
    c = RelaysController(
        wifi_ssid="ssid", wifi_password="wifi-password-x", device_id="pico-t",
        device_key="device-key-123456", service_discovery_url="http://127.0.0.1:9/api/devices",
        relay_pins={"r1": 2, "r2": 3}, data_dir=d, simulate=True, log_echo=False,
        rest_port=18081)
    http_client.set_link_check(None)
    c.relays.start(c.config.load_local())
    c.config.on_change(c._apply_config)
    c.timesync = _Clock()
    c.auth.tenant, c.auth.namespace = "acme", "lab"
    c.extensions[-1](c)  # what main() does with each extension
    return c


def refusal(api, req, action="switch", relay="r1"):
    try:
        api.admit(req, False, action, relay)
    except Refusal as e:
        return e.status, e.error
    return None


def test_rest_options_and_the_extension():
    d = scratch_dir("rs")
    c = controller(d)
    true(c.rest is not None, "attached")
    eq((c.rest.host, c.rest.port), ("127.0.0.1", 18081), "simulation: loopback, the given port")
    eq(c._extra[-1][0], "rest", "the server is a supervised task")
    c.relays.bank.deinit()
    rm_tree(d)


def test_without_api_jwt_relay_routes_answer_503():
    d = scratch_dir("rs")
    c = controller(d)
    api = c.rest.api
    true(api.validator is None, "no key in the default config")
    eq(refusal(api, _Req(token(KEY1))), (503, "not_configured"), "relay route")
    eq(refusal(api, _Req(), action=None), None, "probes pass")
    c.relays.bank.deinit()
    rm_tree(d)


def test_key_from_config_and_hot_reload():
    d = scratch_dir("rs")
    c = controller(d)
    api = c.rest.api
    true(c.config._apply(config(), 2, '"cfg-2"'), "applied")
    old = token(KEY1)
    eq(refusal(api, _Req(old)), None, "a token signed with the config's key")
    eq(api.admit(_Req(old), False, "switch", "r1")["sub"], "alice", "claims")
    eq(refusal(api, _Req(token(KEY1, aud="other"))), (401, "bad_audience"), "audience")
    eq(refusal(api, _Req(token(KEY1, tenant="globex"))), (403, "wrong_tenant"), "tenancy")
    eq(refusal(api, _Req(token(KEY1, role="switcher"))), None, "a config role")
    limiter = api.limiter
    true(c.config._apply(config(KEY2), 3, '"cfg-3"'), "new key applied")
    eq(refusal(api, _Req(old)), (401, "bad_signature"), "the old key's token")
    eq(refusal(api, _Req(token(KEY2))), None, "the new key's token")
    true(api.limiter is limiter, "same rate_limits: buckets kept")
    true(c.config._apply(config(KEY2, rate_limits={"default": {"requests": 1, "window_s": 1}}),
                         4, '"cfg-4"'), "new limits")
    true(api.limiter is not limiter and api.limiter.write.requests == 1, "limiter rebuilt")
    cfg = config()
    del cfg["api"]
    true(c.config._apply(cfg, 5, '"cfg-5"'), "key removed")
    eq(refusal(api, _Req(token(KEY2))), (503, "not_configured"), "no key, no tokens")
    c.timesync.synced = False
    true(c.config._apply(config(), 6, '"cfg-6"'), "key back")
    eq(refusal(api, _Req(token(KEY1))), (503, "time_not_synced"), "clock not synced")
    c.relays.bank.deinit()
    rm_tree(d)


def test_get_config_hides_the_key_and_the_log_masks_it():
    d = scratch_dir("rs")
    c = controller(d)
    c.config._apply(config(KEY2), 2, '"cfg-2"')
    out = c.rest.get_config()
    eq(out["version"], 2, "version")
    eq(out["config"]["api"]["jwt"], {"issuer": "https://platform.test", "audience": "pico-t"},
       "jwt without its key")
    true(KEY2 not in json.dumps(out), "no key anywhere")
    eq(c.config.config["api"]["jwt"]["key"], KEY2, "the config in force keeps it")
    eq(logger.root().mask("key=" + KEY2), "key=***", "masked in log lines")
    c.relays.bank.deinit()
    rm_tree(d)


def test_revoked_tokens_follow_the_config():
    d = scratch_dir("rs")
    c = controller(d)
    api = c.rest.api
    bad = token(KEY1, jti="stolen-token-000001")
    good = token(KEY1, jti="kept-token-00000001")
    true(c.config._apply(config(), 2, '"cfg-2"'), "applied")
    eq(refusal(api, _Req(bad)), None, "before the revocation")
    cfg = config()
    cfg["api"]["revoked"] = [{"jti": "stolen-token-000001", "exp": NOW + 600}]
    true(c.config._apply(cfg, 3, '"cfg-3"'), "revocation applied")
    eq(refusal(api, _Req(bad)), (401, "revoked"), "the revoked jti, verified and cached before")
    eq(refusal(api, _Req(good)), None, "another jti")
    true(c.config._apply(config(), 4, '"cfg-4"'), "list emptied")
    eq(refusal(api, _Req(bad)), None, "no longer on the list")
    c.relays.bank.deinit()
    rm_tree(d)


class _Writer:
    pass


class _PlainReq:
    def __init__(self, path, plain_listener=None):
        self.path = path
        w = _Writer()
        if plain_listener is not None:
            w.plain = plain_listener
        self.sock = (None, w)
        self.g = _G()


def test_plain_http_gate():
    d = scratch_dir("rs")
    c = controller(d)
    svc = c.rest
    true(not svc.probes_only and svc.tls is None, "simulation: plain, every route")
    eq(svc._plain_gate(_PlainReq("/gpio/r1")), None, "simulation serves every route")
    svc.probes_only = True   # a board's rule
    for path in ("/health", "/ready"):
        eq(svc._plain_gate(_PlainReq(path)), None, path)
    for path in ("/gpio/r1", "/gpio", "/metrics", "/config"):
        r = svc._plain_gate(_PlainReq(path))
        eq((r.status_code, json.loads(r.body)["error"]), (403, "tls_required"), path)
    svc.tls = object()       # with TLS: its own connections pass, the plain listener's do not
    eq(svc._plain_gate(_PlainReq("/gpio/r1")), None, "a TLS connection")
    eq(svc._plain_gate(_PlainReq("/gpio/r1", True)).status_code, 403, "the plain listener")
    cfg = config()
    cfg["api"]["allow_plain_http"] = True
    true(c.config._apply(cfg, 2, '"cfg-2"'), "allow_plain_http applied")
    eq(svc._plain_gate(_PlainReq("/gpio/r1", True)), None, "allowed by the config")
    c.relays.bank.deinit()
    rm_tree(d)


def test_tls_files_are_checked_at_start():
    from iotlib import rest_service
    d = scratch_dir("rs")
    try:
        rest_service.server_context(d + "/missing.pem", d + "/missing.key")
        raise AssertionError("no error for a missing certificate")
    except OSError as e:
        true(str(e).startswith("REST TLS certificate " + d + "/missing.pem"), str(e))
    with open(d + "/c.pem", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    with open(d + "/k.pem", "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    try:
        rest_service.server_context(d + "/c.pem", d + "/k.pem")
        raise AssertionError("no error for garbage")
    except ValueError as e:
        true(str(e).startswith("REST TLS certificate %s/c.pem or key %s/k.pem unusable"
                               % (d, d)), str(e))
    rm_tree(d)


def test_http_limits_and_token_budget_follow_the_config():
    from iotlib import config_schema
    from iotlib.rest_api import HttpLimits
    d = scratch_dir("rs")
    c = controller(d)
    app, api = c.rest.app, c.rest.api
    eq((app.limits.max_connections, app.limits.max_per_address, app.limits.max_head_bytes,
        app.limits.max_headers, app.limits.head_timeout_ms), (8, 4, 6144, 32, 3000), "defaults")
    eq(api.limiter.verify.requests, 50, "token checks per second: default")
    eq(app.limits.max_tls_sessions, 1, "one TLS session at a time: default")
    from iotlib import rest_service
    from iotlib.tls_listener import TlsListener
    lst = c.rest.listener = TlsListener(None, None)   # as serve() sets it with TLS
    http = {"max_connections": 3, "max_per_address": 1, "max_head_bytes": 2048,
            "max_headers": 10, "head_timeout_ms": 500, "token_checks_per_s": 2,
            "max_tls_sessions": 2}
    eq(config_schema.check(config(http=http)), None, "the schema takes the block")
    limiter = api.limiter
    true(c.config._apply(config(http=http), 2, '"cfg-2"'), "applied")
    eq((app.limits.max_connections, app.limits.max_per_address, app.limits.max_head_bytes,
        app.limits.max_headers, app.limits.head_timeout_ms), (3, 1, 2048, 10, 500), "applied")
    eq((lst.sessions, lst.waiting, lst.per_address, lst.wait_ms),
       (2, 3, 1, rest_service.TLS_WAIT_MS), "the TLS listener follows")
    c.rest.listener = None
    true(api.limiter is not limiter and api.limiter.verify.requests == 2, "budget rebuilt")
    # the budget: two new tokens pass, the third is refused before any HMAC
    v = api.validator
    n = v.hmacs
    eq(refusal(api, _Req(token(KEY1, sub="a"))), None, "first")
    eq(refusal(api, _Req(token(KEY1, sub="b"))), None, "second")
    eq(refusal(api, _Req(token(KEY1, sub="c"))), (503, "busy"), "budget spent")
    eq(v.hmacs - n, 2, "no HMAC for the refused one")
    eq(refusal(api, _Req(token(KEY1, sub="a"))), None, "a cached token needs no budget")
    for bad, field in (({"max_connections": 0}, "http.max_connections"),
                       ({"max_head_bytes": 100000}, "http.max_head_bytes"),
                       ({"token_checks_per_s": "9"}, "http.token_checks_per_s"),
                       ({"max_tls_sessions": 17}, "http.max_tls_sessions"),
                       ({"nope": 1}, "http.nope")):
        eq(config_schema.check(config(http=bad))[0], field, "refused: %r" % bad)
    try:
        HttpLimits(max_headers=1)
        raise AssertionError("HttpLimits took max_headers=1")
    except ValueError as e:
        eq(str(e), "http.max_headers must be an int in 4..100, got 1", "message")
    c.relays.bank.deinit()
    rm_tree(d)
