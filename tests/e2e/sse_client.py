"""A device's event stream (GET /events) read the way the web page does, over TLS: for the
end-to-end tests and the on-chip ones (tests/ppp)."""

import socket
import ssl


def open_event_stream(ctx, port, token, timeout=120):
    """-> the TLS socket of GET /events on 127.0.0.1:port, its request sent."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(("GET /events HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer %s\r\n\r\n"
               % token).encode())
    return s


def read_events(stream, marker, got=b""):
    """-> what the stream sent, up to marker; marker None: up to its end."""
    while marker is None or marker not in got:
        try:
            d = stream.recv(4096)
        except ssl.SSLEOFError:
            d = b""
        if not d:
            assert marker is None, "the stream ended: %r" % got[-300:]
            return got
        got += d
    return got
