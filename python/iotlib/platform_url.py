# The platform's URL: https, or http only to this machine. Bearer tokens, the device key's proofs
# and api.jwt.key travel on it, so a plain URL to anything but loopback is refused at start-up.
LOOPBACK_NAMES = ("localhost", "::1")


def _loopback(host):
    if host in LOOPBACK_NAMES:
        return True
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127":
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            return False
    return True


def host_of(url):
    # "http://[::1]:8080/x" -> "::1"; "https://h:1/x" -> "h"
    rest = url.split("://", 1)[1]
    hostport = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in hostport:  # userinfo never names the host
        hostport = hostport.rsplit("@", 1)[1]
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.split(":", 1)[0].lower()


def check(url, what="platform URL"):
    # -> url; ValueError naming the problem
    if not isinstance(url, str) or "://" not in url:
        raise ValueError("%s %r: not an http(s):// URL" % (what, url))
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ValueError("%s %r: scheme must be https (or http to loopback)" % (what, url))
    host = host_of(url)
    if not host:
        raise ValueError("%s %r: no host" % (what, url))
    if scheme == "http" and not _loopback(host):
        raise ValueError("%s %r: plain http is allowed only to loopback (127.0.0.0/8, ::1,"
                         " localhost); use https://" % (what, url))
    return url
