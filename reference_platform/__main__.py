"""python -m reference_platform --db PATH --operator-token TOKEN [--seed seed.json] ..."""

import argparse
import ipaddress
import logging
import os
import socket
import sys

import uvicorn

from .app import Platform, build_app
from .seed import SeedError, apply, load

TOKEN_ENV = "REFERENCE_PLATFORM_OPERATOR_TOKEN"


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m reference_platform",
                                 description="Reference RelaysController platform (contract v1).")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    ap.add_argument("--db", required=True, help="SQLite database file (created when missing)")
    ap.add_argument("--operator-token", default=os.environ.get(TOKEN_ENV),
                    help="admin bearer token for /v1/operator (or env %s)" % TOKEN_ENV)
    ap.add_argument("--seed", help="JSON file of tenants/namespaces/devices/configs to create")
    ap.add_argument("--token-ttl", type=int, default=900, help="device JWT lifetime, s")
    ap.add_argument("--clock-skew", type=int, default=300,
                    help="accepted registration timestamp distance from server time, s")
    ap.add_argument("--issuer", default="relays-reference-platform", help="JWT iss claim")
    ap.add_argument("--public-url", help="base URL put in service URLs (default: from the request)")
    ap.add_argument("--max-image-bytes", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--tls-cert", help="PEM certificate (chain): serve https instead of http")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    ap.add_argument("--api-token-max-ttl", type=int, default=3600,
                    help="longest lifetime of a device-API token an operator may mint, s")
    ap.add_argument("--log-level", default="info",
                    choices=["critical", "error", "warning", "info", "debug"])
    args = ap.parse_args(argv)
    if not args.operator_token or len(args.operator_token) < 16:
        ap.error("--operator-token (or %s) of at least 16 characters is required" % TOKEN_ENV)
    if args.token_ttl < 1 or args.clock_skew < 1:
        ap.error("--token-ttl and --clock-skew must be at least 1")
    if not 0 <= args.port <= 65535:
        ap.error("--port must be 0..65535")
    return args


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        platform = Platform(args.db, args.operator_token, token_ttl_s=args.token_ttl,
                            clock_skew_s=args.clock_skew, issuer=args.issuer,
                            public_url=args.public_url,
                            max_image_bytes=args.max_image_bytes,
                            api_token_max_ttl_s=args.api_token_max_ttl)
        if args.seed:
            apply(platform, load(args.seed))
    except (SeedError, ValueError) as e:
        print("reference_platform: %s" % e, file=sys.stderr)
        return 2
    if (args.tls_cert is None) != (args.tls_key is None):
        print("reference_platform: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and args.tls_cert is None:
        print("reference_platform: WARNING: listening on %s, beyond this machine, without TLS"
              " (--tls-cert/--tls-key)" % args.host, file=sys.stderr)
    # Bind here so --port 0 can report the real port before serving (tests rely on this line).
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print("reference_platform: cannot listen on %s:%d: %s" % (args.host, args.port, e),
              file=sys.stderr)
        return 2
    sock.listen(128)
    port = sock.getsockname()[1]
    shown = "[%s]" % args.host if family == socket.AF_INET6 else args.host
    scheme = "https" if args.tls_cert else "http"
    config = uvicorn.Config(build_app(platform), log_level=args.log_level, lifespan="off",
                            access_log=args.log_level == "debug", ssl_certfile=args.tls_cert,
                            ssl_keyfile=args.tls_key)
    try:
        config.load()   # a bad certificate or key fails here, before the listening line
    except (OSError, ValueError) as e:
        print("reference_platform: TLS certificate or key unusable: %s" % e, file=sys.stderr)
        return 2
    print("reference platform listening on %s://%s:%d" % (scheme, shown, port), flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        platform.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
