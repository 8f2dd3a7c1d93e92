"""Emulated RP2040 cycles per operation: bare machine.Pin.value(), the relaygpio C module
and its pure-Python twin (pyrelaygpio on its RP2040 backend), on the UF2 that
`make firmware` built, booted in rp2040js through the HIL harness.

Each figure is exact and repeatable: the board runs a loop of N passes between two
writes to a marker pin, the harness stamps both pin edges with the emulated cycle, and
the same loop with an empty body (same marker, same N) is subtracted. A pass makes two
calls (on then off, so every call really switches), so cycles/op = difference / 2N.

    .cache/venv/bin/python bench/emulated_cycles.py [--smoke] [--no-profile]
"""

import argparse
import bisect
import re
import subprocess
import sys

import artifacts
from artifacts import FW_ELF, UF2, arm_tool, need
from report import bar_chart, table, write

SIO_GPIO_OUT_XOR = 0xD000001C
GOAL_SET_VS_PIN = 1.2          # set(i, on) against one bare Pin.value(v)
GOAL_WRITE8_VS_PIN = 1.5       # write(0xff, v) of 8 relays against ONE bare Pin.value(v)
GOAL_TICK_IDLE = 300           # the core's tick() with nothing running, cycles
GOAL_METRICS_INTO = 1000       # metrics_into(buf), 8 relays, cycles from Python
GOAL_TWIN_VS_C = 10.0
TICK_RELAYS, TICK_INPUTS = 22, 8  # all 30 RP2040 GPIOs; 32 + 8 does not fit (unix_ops.py)

BOARD_SETUP = f"""
import array, gc, machine, relaygpio, pyrelaygpio
from machine import Pin, mem32
buf = array.array("I", bytes(4 * 64))
def run(fn, n, m):
    gc.collect()
    mem32[{SIO_GPIO_OUT_XOR:#x}] = m
    fn(n)
    mem32[{SIO_GPIO_OUT_XOR:#x}] = m
def op_empty(n, a=None):
    for _ in range(n):
        pass
def op_empty_unbound(n):
    for _ in range(n):
        pass
"""

# key, label, loop body (two calls), what `a` is bound to (None: the unbound form)
PIN_OPS = [
    ("value", "Pin.value(v)", "a(1); a(0)", "p.value"),
    ("value_unbound", "p.value(v), unbound", "p.value(1); p.value(0)", None),
]
BANK_OPS = [
    ("set", "set(i, on)", "a(0, 1); a(0, 0)", "b.set"),
    ("set_unbound", "b.set(i, on), unbound", "b.set(0, 1); b.set(0, 0)", None),
    ("set_now", "set(i, on, now)", "a(0, 1, 0); a(0, 0, 0)", "b.set"),
    ("toggle", "toggle(i)", "a(0); a(0)", "b.toggle"),
    ("write8", "write(0xff, v): 8 relays", "a(255, 255); a(255, 0)", "b.write"),
    ("switches", "switches(i)", "a(0); a(0)", "b.switches"),
    ("metrics", "metrics(), 8 relays", "a(); a()", "b.metrics"),
    ("metrics_into", "metrics_into(buf), 8 relays", "a(buf); a(buf)", "b.metrics_into"),
]
FULL_OPS = [
    ("tick", f"tick(): {TICK_RELAYS} relays + {TICK_INPUTS} inputs", "a(); a()", "b.tick"),
    ("metrics_full", f"metrics(), {TICK_RELAYS} relays + {TICK_INPUTS} inputs", "a(); a()",
     "b.metrics"),
    ("metrics_into_full", f"metrics_into(buf), {TICK_RELAYS} relays + {TICK_INPUTS} inputs",
     "a(buf); a(buf)", "b.metrics_into"),
]
# the C files whose functions make up the relay core's own work (tick() from a timer)
CORE_SOURCES = ["cmodules/relaygpio/relay_core.c", "cmodules/relaygpio/hw_rp2.c"]
# relay 0 switches twice per pass in these: checked after the run
SWITCHING = {"set", "set_unbound", "set_now", "toggle", "write8"}
# how many Pin.value calls do the same pin work (write8: eight pins, though not at once)
PIN_EQUIVALENT = {"set": 1, "set_unbound": 1, "set_now": 1, "toggle": 1, "write8": 8}


def op_source(key, body, bound):
    head = f"def op_{key}(n, a={bound}):" if bound else f"def op_{key}(n):"
    return f"{head}\n    for _ in range(n):\n        {body}\n"


class Bench:
    def __init__(self, emu, passes_c, passes_py):
        self.emu = emu
        self.passes = {"c": passes_c, "py": passes_py}
        self.baseline = {}

    def window(self, fn, n, mark):
        """Cycles between the two marker edges of run(fn, n)."""
        since = self.emu.cycles
        self.emu.exec(f"run({fn}, {n}, {1 << mark})", max_cycles=3_000_000_000)
        edges = [e[0] for e in self.emu.log(pins=[mark], since=since) if e[3] in (0, 1)]
        if len(edges) != 2:
            raise RuntimeError(f"marker pin {mark}: expected 2 edges, got {edges}")
        return edges[1] - edges[0]

    def empty(self, n, mark, unbound):
        # the same call shape as the op: a bound method comes in as a default argument
        fn = "op_empty_unbound" if unbound else "op_empty"
        if (fn, n, mark) not in self.baseline:
            self.baseline[fn, n, mark] = self.window(fn, n, mark)
        return self.baseline[fn, n, mark]

    def measure(self, key, n, mark, unbound=False):
        total = self.window(f"op_{key}", n, mark)
        return (total - self.empty(n, mark, unbound)) / (2 * n)

    def phase(self, setup, ops, kind, mark, results, impl):
        self.emu.exec(setup)
        self.emu.exec("".join(op_source(k, body, bound) for k, _, body, bound in ops))
        for key, label, _, bound in ops:
            n = self.passes[kind]
            if key.startswith("tick") and kind == "py":
                n = max(1, n // 4)  # a Python tick of 30 pins is long: fewer passes
            before = self.emu.eval("b.switches(0)") if key in SWITCHING else None
            cyc = self.measure(key, n, mark, unbound=bound is None)
            if before is not None:
                moved = self.emu.eval("b.switches(0)") - before
                if moved != 2 * n:
                    raise RuntimeError(f"{impl} {key}: relay 0 switched {moved} times, not {2 * n}")
            results.setdefault(key, {"label": label})[impl] = {"cycles": cyc, "passes": n}
            print(f"  {impl:7} {label:42} {cyc:12,.1f} cycles/op  ({2 * n} ops)", flush=True)


def symbols(elf):
    """(addresses, names) of the firmware's functions, for the profile."""
    nm = arm_tool("nm")
    if nm is None or not elf.exists():
        return None
    out = subprocess.run([nm, "-n", str(elf)], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16) & ~1, parts[2]))
    syms.sort()
    return [a for a, _ in syms], [s for _, s in syms]


def by_function(pcs, syms):
    addrs, names = syms
    out = {}
    for pc, c in pcs.items():
        if pc < 0x4000:
            name = "(bootrom: memcpy and the like)"
        else:
            i = bisect.bisect_right(addrs, pc) - 1
            name = names[i] if i >= 0 else hex(pc)
        out[name] = out.get(name, 0) + c
    return out


def profile(emu, syms, keys, n, mark):
    """Cycles per op by C function for each op key, empty loop subtracted."""
    def run(fn):
        emu.profile(True, pin=mark)  # counts only between the marker edges
        emu.exec(f"run({fn}, {n}, {1 << mark})", max_cycles=3_000_000_000)
        return by_function(emu.profile(False), syms)

    base = run("op_empty")
    out = {}
    for key in keys:
        prof = run(f"op_{key}")
        fns = set(prof) | set(base)
        out[key] = {f: (prof.get(f, 0) - base.get(f, 0)) / (2 * n) for f in fns}
    return out


def core_functions():
    """Names of the functions defined in the relay core and its RP2040 backend."""
    names = set()
    for src in CORE_SOURCES:
        text = (artifacts.ROOT / src).read_text()
        names.update(re.findall(r"^(?:static )?(?:inline )?[a-z_0-9 ]+[ *]([a-z_0-9]+)\(", text, re.M))
    return names


def core_cycles(prof, names):
    """Cycles per op spent in the core's functions (gcc may add .constprop/.isra suffixes)."""
    return sum(c for f, c in prof.items() if f.split(".")[0] in names)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny counts, to check the script")
    ap.add_argument("--no-profile", action="store_true", help="skip the by-function profile")
    args = ap.parse_args(argv)
    need(UF2, "firmware")
    from harness import Emulator

    passes_c, passes_py = (4, 2) if args.smoke else (500, 50)
    emu = Emulator(UF2, timeout=600)
    try:
        emu.prompt()
        emu.exec(BOARD_SETUP)
        info = emu.eval("(relaygpio.IMPL, pyrelaygpio.IMPL, pyrelaygpio.NUM_PINS)")
        if info[0] != "c":
            raise RuntimeError(f"relaygpio.IMPL is {info[0]!r}: this firmware has no C module")
        bench = Bench(emu, passes_c, passes_py)
        res = {}
        eight = "list(range(2, 10))"
        inputs = f"for q in range({TICK_RELAYS}, 30):\n    b.input(q)\n"
        # marker pin 28 while pins 2..9 switch; in the 30-pin phases relay 0 (pin 0) is
        # the marker: tick() and metrics() never drive it, so its edges are the marker's
        bench.phase("mk = Pin(28, Pin.OUT, value=0)\np = Pin(2, Pin.OUT, value=0)\n",
                    PIN_OPS, "c", 28, res, "pin")
        bench.phase(f"b = relaygpio.Bank({eight})\n", BANK_OPS, "c", 28, res, "c")
        prof = None
        syms = None if args.no_profile else symbols(FW_ELF)
        if syms:
            prof = profile(emu, syms, ["value", "set", "write8", "metrics"], passes_c, 28)
        emu.exec("b.deinit()\nmk = Pin(28, Pin.OUT, value=0)\n")
        bench.phase(f"b = pyrelaygpio.Bank({eight})\n", BANK_OPS, "py", 28, res, "python")
        backend = emu.eval("(type(b._hw).__name__, b._hw.mem32 is not None)")
        emu.exec("b.deinit()\n")
        bench.phase(f"b = relaygpio.Bank(list(range({TICK_RELAYS})))\n" + inputs, FULL_OPS,
                    "c", 0, res, "c")
        # the core's share of tick(): what a hardware-timer tick costs, without the
        # Python call around it
        syms = syms or symbols(FW_ELF)
        tick_prof = profile(emu, syms, ["tick"], passes_c, 0)["tick"] if syms else None
        emu.exec("b.deinit()\n")
        bench.phase(f"b = pyrelaygpio.Bank(list(range({TICK_RELAYS})))\n" + inputs, FULL_OPS,
                    "py", 0, res, "python")
        emu.exec("b.deinit()\n")
    finally:
        emu.close()

    pin = res["value"]["pin"]["cycles"]
    pin_u = res["value_unbound"]["pin"]["cycles"]
    rows = []
    for key, r in res.items():
        c = r.get("c", {}).get("cycles")
        py = r.get("python", {}).get("cycles")
        p = r.get("pin", {}).get("cycles")
        ref = (pin_u if key.endswith("unbound") else pin) * PIN_EQUIVALENT.get(key, 0)
        rows.append([r["label"], p, c, py,
                     c / ref if c is not None and ref else None,
                     py / c if c and py is not None else None])
        r["c_vs_pin"] = rows[-1][4]
        r["python_vs_c"] = rows[-1][5]
    tables = [table(
        "Emulated RP2040 (rp2040js, 125 MHz model): cycles per operation",
        ["operation", "Pin.value", "relaygpio (C)", "pyrelaygpio",
         "C / Pin.value doing the same", "Python / C"], rows)]

    set_ratio = res["set"]["c_vs_pin"]
    set_ratio_u = res["set_unbound"]["c_vs_pin"]
    write8_ratio = res["write8"]["c"]["cycles"] / pin
    tick_py = res["tick"]["c"]["cycles"]
    tick_core = core_cycles(tick_prof, core_functions()) if tick_prof else None
    into = res["metrics_into"]["c"]["cycles"]
    twin = {k: r["python_vs_c"] for k, r in res.items() if r.get("python_vs_c") is not None}
    slowest = min(twin, key=twin.get)
    short = [k for k in twin if twin[k] < GOAL_TWIN_VS_C]
    rest = [k for k in twin if k not in short]
    goals = {
        "set_vs_pin": {"goal": f"<= {GOAL_SET_VS_PIN}x", "bound": set_ratio, "unbound": set_ratio_u,
                       "met": set_ratio <= GOAL_SET_VS_PIN},
        "write8_vs_pin": {"goal": f"<= {GOAL_WRITE8_VS_PIN}x one Pin.value", "ratio": write8_ratio,
                          "met": write8_ratio <= GOAL_WRITE8_VS_PIN},
        "tick_idle": {"goal": f"< {GOAL_TICK_IDLE} cycles in the core", "core": tick_core,
                      "from_python": tick_py,
                      "met": tick_core is not None and tick_core < GOAL_TICK_IDLE},
        "metrics_into": {"goal": f"< {GOAL_METRICS_INTO} cycles", "cycles": into,
                         "met": into < GOAL_METRICS_INTO},
        "twin_vs_c": {"goal": f">= {GOAL_TWIN_VS_C}x on every operation", "min": twin[slowest],
                      "min_op": slowest, "below": short, "met": not short},
    }

    def verdict(key):
        return "met" if goals[key]["met"] else "MISSED"

    grows = [
        [f"relaygpio set <= {GOAL_SET_VS_PIN}x Pin.value (bound methods)",
         f"{set_ratio:.2f}x: {res['set']['c']['cycles']:,.0f} cycles (unbound forms: "
         f"{set_ratio_u:.2f}x)", verdict("set_vs_pin")],
        [f"write(0xff, v) of 8 relays <= {GOAL_WRITE8_VS_PIN}x one Pin.value",
         f"{write8_ratio:.2f}x: {res['write8']['c']['cycles']:,.0f} cycles", verdict("write8_vs_pin")],
        [f"tick() with nothing running ({TICK_RELAYS} relays + {TICK_INPUTS} inputs) "
         f"< {GOAL_TICK_IDLE} cycles in the core",
         (f"{tick_core:,.0f} cycles in the core" if tick_core is not None else "no profile")
         + f"; {tick_py:,.0f} called from Python", verdict("tick_idle")],
        [f"metrics_into(buf), 8 relays < {GOAL_METRICS_INTO:,} cycles",
         f"{into:,.0f} cycles ({res['metrics_into_full']['c']['cycles']:,.0f} with "
         f"{TICK_RELAYS} relays + {TICK_INPUTS} inputs)", verdict("metrics_into")],
        [f"Python twin >= {GOAL_TWIN_VS_C:.0f}x slower on every operation",
         f"lowest {twin[slowest]:.1f}x ({res[slowest]['label']})", verdict("twin_vs_c")],
    ]
    if short and rest:
        low = min(rest, key=twin.get)
        grows.append([f"  ... on {', '.join(k for k in rest)}", f"lowest {twin[low]:.1f}x "
                      f"({res[low]['label']})", "met"])
        grows.append([f"  ... on {', '.join(short)}", ", ".join(f"{twin[k]:.1f}x" for k in short),
                      "MISSED"])
    for g in grows:
        print(f"goal: {g[0]}: {g[1]}: {g[2]}")
    tables.append(table("Goals", ["goal", "figure", "result"], grows))
    notes = [
        f"pyrelaygpio ran on its RP2040 backend ({backend[0]}, SIO register writes: {backend[1]}).",
        f"tick(): the RP2040 has 30 GPIOs, so {TICK_RELAYS} relays + {TICK_INPUTS} inputs; "
        "32 relays + 8 inputs do not fit and are measured on the unix port (unix_ops.py).",
    ]
    if tick_prof:
        top = sorted(tick_prof.items(), key=lambda kv: -kv[1])[:12]
        top.append(("total", sum(tick_prof.values())))
        tables.append(table(f"Where the cycles go: relaygpio tick(), {TICK_RELAYS} relays + "
                            f"{TICK_INPUTS} inputs, nothing running (top functions)",
                            ["function", "cycles per call"], [list(t) for t in top]))
    if prof:
        fns = sorted(set(prof["set"]) | set(prof["value"]),
                     key=lambda f: -max(prof["set"].get(f, 0), prof["value"].get(f, 0)))
        prow = []
        for f in fns:
            s, v = prof["set"].get(f, 0), prof["value"].get(f, 0)
            if max(abs(s), abs(v)) >= 3:
                prow.append([f, v, s, s - v])
        prow.append(["total", sum(prof["value"].values()), sum(prof["set"].values()),
                     sum(prof["set"].values()) - sum(prof["value"].values())])
        tables.append(table("Where the cycles go: cycles per call by function (bound forms)",
                            ["function", "Pin.value(v)", "relaygpio set(i, on)", "difference"],
                            prow))
        top = sorted(prof["metrics"].items(), key=lambda kv: -kv[1])[:12]
        top.append(("total", sum(prof["metrics"].values())))
        tables.append(table("Where the cycles go: relaygpio metrics(), 8 relays (top functions)",
                            ["function", "cycles per call"], [list(t) for t in top]))
    for n in notes:
        print(n)
    write("emulated_cycles", {
        "uf2": str(UF2), "smoke": args.smoke, "passes": {"c": passes_c, "python": passes_py},
        "results": res, "goals": goals, "notes": notes, "profile": prof, "tick_profile": tick_prof,
    }, tables + ["\n".join(notes) + "\n"])
    keys = [k for k, r in res.items() if "c" in r and not k.endswith("unbound")]
    bar_chart("emulated_cycles", "Emulated RP2040: cycles per operation (log scale)",
              "cycles / op", [res[k]["label"] for k in keys],
              {"relaygpio (C)": [res[k]["c"]["cycles"] for k in keys],
               "pyrelaygpio": [res[k].get("python", {}).get("cycles") for k in keys]},
              log=True, lines=[(pin, f"Pin.value(v): {pin:,.0f}"),
                               (pin * GOAL_SET_VS_PIN, f"set goal: {GOAL_SET_VS_PIN}x Pin.value")])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except artifacts.Missing as e:
        print(f"emulated_cycles: {e}", file=sys.stderr)
        sys.exit(2)
