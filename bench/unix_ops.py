"""Operations per second on the MicroPython unix build: the relaygpio C module, the x64
native module (relaygpio_natmod.mpy) and the pure-Python twin (pyrelaygpio, frozen), all
on their simulated board. tick() runs with 32 relays + 8 inputs.

Each figure is the best of a few runs of a bounded loop timed with time.ticks_us on the
device, minus the best run of the same loop with an empty body (the two alternate): ops/s counts the
operation only, not the Python loop around it. A pass makes two calls (on then off).

    .cache/venv/bin/python bench/unix_ops.py [--smoke]
"""

import argparse
import subprocess
import sys

import artifacts
from artifacts import NATMOD_X64, NATMOD_X64_DIR, UNIX_BIN, need, unix_env
from report import bar_chart, table, write

IMPLS = [("c", "relaygpio", "relaygpio (C)"),
         ("natmod", "relaygpio_natmod", "natmod x64"),
         ("python", "pyrelaygpio", "pyrelaygpio")]
TICK_RELAYS, TICK_INPUTS = 32, 8

# key, label, loop body, what `a` is bound to (None: unbound), bank: 8 or full (32 + 8)
OPS = [
    ("set", "set(i, on)", "a(0, 1); a(0, 0)", "b8.set", 8),
    ("set_unbound", "b.set(i, on), unbound", "b8.set(0, 1); b8.set(0, 0)", None, 8),
    ("set_now", "set(i, on, now)", "a(0, 1, 0); a(0, 0, 0)", "b8.set", 8),
    ("toggle", "toggle(i)", "a(0); a(0)", "b8.toggle", 8),
    ("write8", "write(0xff, v): 8 relays", "a(255, 255); a(255, 0)", "b8.write", 8),
    ("switches", "switches(i)", "a(0); a(0)", "b8.switches", 8),
    ("metrics", "metrics(), 8 relays", "a(); a()", "b8.metrics", 8),
    ("tick", f"tick(): {TICK_RELAYS} relays + {TICK_INPUTS} inputs", "a(); a()", "bf.tick", 40),
    ("metrics_full", f"metrics(), {TICK_RELAYS} relays + {TICK_INPUTS} inputs", "a(); a()",
     "bf.metrics", 40),
]


def device_script(module, passes, runs):
    """The MicroPython program: prints `key passes best_us empty_best_us` per op."""
    src = [
        "import gc, time",
        f"import {module} as rg",
        "b8 = rg.Bank(list(range(8)))",
        f"bf = rg.Bank(list(range({TICK_RELAYS})))",
        f"for q in range({TICK_RELAYS}, {TICK_RELAYS + TICK_INPUTS}):",
        "    bf.input(q)",
        "def op_empty(n, a=None):",
        "    for _ in range(n):",
        "        pass",
        "def op_empty_unbound(n):",
        "    for _ in range(n):",
        "        pass",
    ]
    for key, _, body, bound, _ in OPS:
        head = f"def op_{key}(n, a={bound}):" if bound else f"def op_{key}(n):"
        src += [head, "    for _ in range(n):", f"        {body}"]
    src += [
        "def best(fn, base, n):",
        "    # the op and its empty loop alternate, so both see the same machine load",
        "    t = e = None",
        f"    for _ in range({runs}):",
        "        for f in (base, fn):",
        "            gc.collect()",
        "            t0 = time.ticks_us()",
        "            f(n)",
        "            dt = time.ticks_diff(time.ticks_us(), t0)",
        "            if f is fn:",
        "                t = dt if t is None or dt < t else t",
        "            else:",
        "                e = dt if e is None or dt < e else e",
        "    return t, e",
        "print('impl', rg.IMPL)",
    ]
    for key, _, _, bound, _ in OPS:
        n = passes(key)
        base = "empty_unbound" if bound is None else "empty"
        src.append(f"print('{key}', {n}, *best(op_{key}, op_{base}, {n}))")
    # the switching ops really switched: relay 0 of b8 counted every call
    src.append("print('switches0', b8.switches(0))")
    return "\n".join(src) + "\n"


def run_impl(impl, module, passes, runs):
    env = unix_env(NATMOD_X64_DIR)
    script = device_script(module, passes, runs)
    r = subprocess.run([str(UNIX_BIN), "-c", script], capture_output=True, text=True,
                       env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{impl}: micropython exited {r.returncode}:\n{r.stderr[-2000:]}")
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts[0] == "impl":
            if parts[1] != impl:
                raise RuntimeError(f"{module}.IMPL is {parts[1]!r}, expected {impl!r}")
        elif parts[0] == "switches0":
            out["switches0"] = int(parts[1])
        else:
            out[parts[0]] = (int(parts[2]), int(parts[3]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny counts, to check the script")
    args = ap.parse_args(argv)
    need(UNIX_BIN, "unix")
    need(NATMOD_X64, "natmod")
    runs = 2 if args.smoke else 7
    scale = 100 if args.smoke else 1

    res = {key: {"label": label} for key, label, *_ in OPS}
    for impl, module, name in IMPLS:
        fast = impl != "python"

        def passes(key, fast=fast):
            n = 100_000 if fast else 10_000
            if key.startswith("metrics"):
                n //= 10  # allocates: keep the GC share comparable and the run short
            if key == "tick" and not fast:
                n //= 10
            return max(1, n // scale)

        raw = run_impl(impl, module, passes, runs)
        switching = 0
        for key, label, _, bound, _ in OPS:
            n = passes(key)
            op_us, empty_us = raw[key]
            net = op_us - empty_us
            ops = 2 * n
            if key in ("set", "set_unbound", "set_now", "toggle", "write8"):
                switching += ops * runs
            res[key][impl] = {
                "ops": ops, "runs": runs, "best_us": op_us, "empty_us": empty_us,
                "ns_per_op": net * 1000 / ops if net > 0 else None,
                "ops_per_s": ops * 1e6 / net if net > 0 else None,
            }
            print(f"  {impl:7} {label:42} {res[key][impl]['ops_per_s'] or 0:14,.0f} ops/s", flush=True)
        if raw["switches0"] != switching:
            raise RuntimeError(f"{impl}: relay 0 switched {raw['switches0']} times, not {switching}")

    rows = []
    for key, r in res.items():
        c, nm, py = (r[i]["ops_per_s"] for i, *_ in IMPLS)
        rows.append([r["label"], c, nm, py,
                     c / nm if c and nm else None, c / py if c and py else None])
        r["c_vs_natmod"], r["c_vs_python"] = rows[-1][4], rows[-1][5]
    tables = [table("Unix port (x64): operations per second, loop overhead subtracted",
                    ["operation", "relaygpio (C)", "natmod x64", "pyrelaygpio", "C / natmod",
                     "C / Python"], rows)]
    nsrows = [[r["label"]] + [r[i]["ns_per_op"] for i, *_ in IMPLS] for r in res.values()]
    tables.append(table("Unix port (x64): nanoseconds per operation",
                        ["operation", "relaygpio (C)", "natmod x64", "pyrelaygpio"], nsrows))
    note = (f"best of {runs} runs; {UNIX_BIN.name} {UNIX_BIN}, natmod {NATMOD_X64.name}; "
            "all three on the simulated board (pins 0..63).")
    print(note)
    write("unix_ops", {"smoke": args.smoke, "results": res, "note": note},
          tables + [note + "\n"])
    bar_chart("unix_ops", "Unix port: operations per second (log scale)", "ops / s",
              [r["label"] for r in res.values()],
              {name: [r[i]["ops_per_s"] for r in res.values()] for i, _, name in IMPLS},
              log=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except artifacts.Missing as e:
        print(f"unix_ops: {e}", file=sys.stderr)
        sys.exit(2)
