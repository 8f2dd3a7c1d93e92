"""The application's TimeSyncManager on the chip: SNTP over UDP through libslirp's NAT to
tools/ntp_responder.py on the host's 127.0.0.1, answering with the host clock plus an offset
that the device must take (its RTC starts years away)."""

import subprocess
import sys
import time
from pathlib import Path

from link import BoardCode
from slirp import HOST

ROOT = Path(__file__).resolve().parent.parent.parent
OFFSET_S = 4321


def test_sntp_sync_over_ppp(online):
    ntp = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "ntp_responder.py"), "--port", "0",
         "--offset", str(OFFSET_S), "--lifetime", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ntp.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        code = (
            "import asyncio, time\n"
            "from iotlib.time_sync_manager import TimeSyncManager\n"
            "t = TimeSyncManager(['%s:%d'], timeout_ms=5000)\n"
            "asyncio.run(t.sync())\n"
            "print(t.synced, t.syncs, t.now(), time.time())\n" % (HOST, port))
        out, err = BoardCode(online, code).result(120)
        host_now = time.time()
        assert err == ""
        synced, syncs, now, rtc = out.split()
        assert (synced, syncs) == ("True", "1")
        # the device's clock is the host's plus the responder's offset (emulated time runs
        # slower than wall time under load: a few seconds of slack, far below the offset)
        assert abs(float(now) - (host_now + OFFSET_S)) < 30
        assert abs(int(rtc) - (host_now + OFFSET_S)) < 30  # and machine.RTC was set
    finally:
        ntp.terminate()
        ntp.wait(10)
