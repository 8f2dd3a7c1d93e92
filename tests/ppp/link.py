"""The emulated board's network: UART0 of the emulated RP2040 <-> PPPPeer <-> libslirp <-> the
host's 127.0.0.1. A pump thread moves bytes and serves slirp's sockets; other emulator commands
(exec, pins...) take the same lock between pump slices.

Time: the chip runs in slices of SLICE_MS emulated time. Emulated time is never let run ahead of
wall time (from the link's start): when it is ahead (the chip slept and the emulator skipped
to its next timer), the pump waits on slirp's host sockets for the difference. So a device
timeout (TCP retransmit, HTTP, NTP) never expires sooner in wall time than it would on a real
board, and host servers have at least as long to answer. When the chip is busy it runs slower
than real time (about 0.45x); its own timers then stretch in wall time, as under load. slirp's
guest-facing TCP timers read the emulated clock (slirp.py), so they agree with the device's."""

import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "hil"))

from harness import MS, Emulator  # noqa: E402
from ppp_peer import PPPPeer  # noqa: E402
from slirp import DEVICE, DNS, HOST, Slirp  # noqa: E402

SLICE_MS = 2

# the board's side: network.PPP on UART0, and a bounded wait until lwIP has the link up
BAUD = 921600

OPEN_PPP = (
    "import network, machine\n"
    "u = machine.UART(0, %d, rxbuf=2048, txbuf=2048)\n"
    "p = network.PPP(u)\n"
    "p.connect()\n"
    "print('connecting')\n" % BAUD
)

WAIT_UP = (
    "import time\n"
    "for _ in range(500):\n"
    "    if p.isconnected():\n"
    "        break\n"
    "    time.sleep_ms(10)\n"
    "print(p.isconnected())\n"
)


class PPPBoard:
    def __init__(self, uf2, log=None, timeout=300):
        self.emu = Emulator(uf2, timeout=timeout, log=log)
        self.lock = threading.RLock()
        self._out = bytearray()  # bytes for the board's UART0
        self.slirp = Slirp(self._to_device)
        self.peer = PPPPeer(self._out.extend, self._from_device, HOST, DEVICE, DNS)
        self.emu_ns = 0
        self.bytes_in = 0  # board -> host
        self.bytes_out = 0
        self.wall0 = None
        self.emu0 = 0
        self._stop = threading.Event()
        self._thread = None
        self.error = None
        self.slice_ms = SLICE_MS

    def _to_device(self, packet):
        self.peer.send_ip(packet)

    def _from_device(self, packet):
        self.slirp.input_ip(packet)

    # ---- pumping ----

    def step(self, slice_ms=None):
        """One slice: bytes to the board, run it, bytes from it, serve slirp."""
        slice_ms = slice_ms or self.slice_ms
        with self.lock:
            data = bytes(self._out)
            self._out.clear()
            self.bytes_out += len(data)
            r = self.emu.call("uart", hex=data.hex(), cycles=int(slice_ms * MS)) if data else \
                self.emu.call("uart", cycles=int(slice_ms * MS))
            self.emu_ns = r["ns"]
            got = bytes.fromhex(r["hex"])
            self.bytes_in += len(got)
            self.peer.feed(got)
            self.slirp.poll(self.emu_ns, 0)
        # keep emulated time at or behind wall time
        if self.wall0 is not None:
            ahead_ms = (self.emu_ns - self.emu0) / 1e6 - (time.monotonic() - self.wall0) * 1000
            if ahead_ms > 0:
                with self.lock:
                    self.slirp.poll(self.emu_ns, min(ahead_ms, 50))

    def start(self):
        """Starts the pump thread (the board keeps running in the background)."""
        self.wall0 = time.monotonic()
        self.emu0 = self.emu_ns
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        try:
            while not self._stop.is_set():
                self.step()
        except Exception as e:  # reported by wait_for and close
            self.error = e

    def wait_for(self, pred, timeout_s, what):
        """Waits (host time, bounded) until pred() holds while the pump runs."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.error:
                raise self.error
            with self.lock:
                if pred():
                    return
            time.sleep(0.02)
        raise TimeoutError(f"{what} not within {timeout_s} s")

    def exec(self, code, max_cycles=200 * MS):
        with self.lock:
            return self.emu.exec(code, max_cycles)

    def call(self, cmd, **kw):
        with self.lock:
            return self.emu.call(cmd, **kw)

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        self.emu.close()
        self.slirp.close()


class BoardCode:
    """Code run in the board's raw REPL while the pump keeps the link going (a plain exec
    would stop the network for as long as the code runs)."""

    def __init__(self, board, code):
        self.board = board
        self.text = ""
        with board.lock:
            board.emu.exec("pass")  # the raw REPL, at its prompt
            board.emu.call("read")
            board.emu.call("write", data=code.replace("\x04", "") + "\x04")

    def done(self):
        with self.board.lock:
            self.text += self.board.emu.call("read")["data"]
        return self.text.count("\x04") >= 2

    def result(self, timeout_s):
        """(stdout, stderr) once the code has finished; TimeoutError if it does not."""
        self.board.wait_for(self.done, timeout_s, "the board's code to finish")
        t = self.text
        if not t.startswith("OK"):
            raise RuntimeError(f"raw REPL refused the code: {t[:200]!r}")
        a = t.index("\x04", 2)
        b = t.index("\x04", a + 1)
        return t[2:a].replace("\r\n", "\n"), t[a + 1:b].replace("\r\n", "\n")
