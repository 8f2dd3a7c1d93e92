"""A small real NTP server for tests and simulation mode (CPython, loopback only).

    python tools/ntp_responder.py [--port 12300] [--offset SECONDS] [--lifetime SECONDS]
                                  [--stratum N] [--kod] [--ignore-first N] [--hostile MODE]

Answers each mode-3 (client) request with a mode-4 (server) reply whose receive and
transmit timestamps are this host's clock plus --offset, so a device that syncs
against it must end up exactly --offset away from the host clock. Prints
"ntp responder listening on 127.0.0.1:PORT" once bound (--port 0 picks a free port)
and one "answered N ignored M" line when it stops.

--hostile MODE makes it an attacker, to test the client's checks:
  wrong-origin   answers with an origin timestamp guessed from the clock, not the one sent
  back-30-days   a well-formed answer 30 days behind (a step a strict client refuses)
  kod            stratum 0 "RATE" (kiss-o'-death): the client must stop asking a while
  unsynced       leap indicator 3 (clock not synchronised)
  client-mode    mode 3 instead of 4
"""

import argparse
import ipaddress
import select
import signal
import socket
import struct
import sys
import time

NTP_DELTA = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
HOSTILE = ("wrong-origin", "back-30-days", "kod", "unsynced", "client-mode")


def ntp_stamp(t):
    sec = int(t)
    return struct.pack("!II", (sec + NTP_DELTA) & 0xFFFFFFFF, int((t - sec) * 2**32) & 0xFFFFFFFF)


def reply(request, offset, stratum=2, kod=False, hostile=None):
    """The mode-4 answer to one client request, or None if it is not a client request."""
    if len(request) < 48 or request[0] & 7 != 3:
        return None
    version = (request[0] >> 3) & 7
    if hostile == "back-30-days":
        offset -= 30 * 86400
    t_recv = time.time() + offset
    if kod or hostile == "kod":
        # stratum 0 with a kiss code: "rate exceeded, go away"
        head = struct.pack("!BBbb", (3 << 6) | (version << 3) | 4, 0, request[2], -20)
        return head + bytes(8) + b"RATE" + bytes(8) + request[40:48] + bytes(16)
    li = 3 if hostile == "unsynced" else 0
    mode = 3 if hostile == "client-mode" else 4
    head = struct.pack("!BBbb", (li << 6) | (version << 3) | mode, stratum, request[2], -20)
    root = struct.pack("!II", 0x10, 0x10) + b"LOCL"
    origin = ntp_stamp(time.time()) if hostile == "wrong-origin" else request[40:48]
    return (head + root + ntp_stamp(t_recv - 1) + origin + ntp_stamp(t_recv)
            + ntp_stamp(time.time() + offset))


def serve(sock, offset, lifetime, stratum, kod, ignore_first, out=sys.stdout, hostile=None):
    answered = ignored = 0
    deadline = time.monotonic() + lifetime if lifetime else None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            timeout = 0.5
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    break
            if not select.select([sock], [], [], timeout)[0]:
                continue
            data, addr = sock.recvfrom(512)
            if ignored < ignore_first:
                ignored += 1
                continue
            answer = reply(data, offset, stratum, kod, hostile)
            if answer is None:
                ignored += 1
                continue
            sock.sendto(answer, addr)
            answered += 1
    except KeyboardInterrupt:
        pass
    print("answered %d ignored %d" % (answered, ignored), file=out, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="ntp_responder", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=12300, help="UDP port; 0 picks a free one")
    ap.add_argument("--offset", type=float, default=0.0,
                    help="seconds added to this host's clock in every answer")
    ap.add_argument("--lifetime", type=float, default=0.0,
                    help="stop after this many seconds (0: until SIGTERM or Ctrl-C)")
    ap.add_argument("--stratum", type=int, default=2)
    ap.add_argument("--kod", action="store_true", help="answer every request with a kiss-o'-death")
    ap.add_argument("--ignore-first", type=int, default=0,
                    help="drop this many requests before answering (simulates loss)")
    ap.add_argument("--hostile", choices=HOSTILE, help="answer as an attacker would (see above)")
    args = ap.parse_args(argv)
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            ap.error("--host must be a loopback address")
    except ValueError:
        ap.error("--host must be an IP address")
    if not 1 <= args.stratum <= 15:
        ap.error("--stratum must be 1..15")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print("ntp_responder: cannot bind %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 2
    print("ntp responder listening on %s:%d" % sock.getsockname(), flush=True)
    serve(sock, args.offset, args.lifetime, args.stratum, args.kod, args.ignore_first,
          hostile=args.hostile)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
