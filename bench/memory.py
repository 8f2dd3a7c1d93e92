"""Memory: heap free (gc.mem_free) after boot, after importing the application and after
creating relay banks, on the emulated RP2040 and on the unix build; peak RSS of the unix
process running tools/demo.py; UF2 and firmware sizes; the size of each frozen module
(.mpy from mpy-cross, and the bytes its frozen code and constants take in the firmware);
the natmod .mpy sizes.

    .cache/venv/bin/python bench/memory.py [--smoke]
"""

import argparse
import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import artifacts
from artifacts import (DEMO, FROZEN_C, FW_ELF, FW_MAP, MPY_CROSS, MPY_DIR, NATMOD_ARM,
                       NATMOD_X64, NATMOD_X64_DIR, PYTHON_SRC, UF2, UNIX_BIN, arm_tool, need,
                       unix_env)
from report import bar_chart, table, write

# importing main would start the controller: the app is measured without it
NOT_IMPORTED = {"main", "boot", "_boot", "_boot_fat"}


def frozen_names(frozen_c):
    """Frozen file names (e.g. 'iotlib/rbac.py') in the order frozen_content.c lists them."""
    text = Path(frozen_c).read_text()
    m = re.search(r"const char mp_frozen_names\[\] = \{(.*?)\};", text, re.S)
    if not m:
        return []
    return [n for n in re.findall(r'"([^"]*?)\\0"', m.group(1)) if n]


def module_name(fname):
    """'iotlib/__init__.py' -> 'iotlib', 'iotlib/rbac.py' -> 'iotlib.rbac'."""
    mod = fname[:-3].replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


def app_modules(names):
    """The importable application modules: frozen files that come from python/."""
    mods = []
    for fname in names:
        mod = module_name(fname)
        if (PYTHON_SRC / fname).exists() and mod.split(".")[0] not in NOT_IMPORTED:
            mods.append(mod)
    return mods


def source_of(fname):
    for base in (PYTHON_SRC, MPY_DIR / "ports" / "rp2" / "modules", MPY_DIR / "extmod",
                 MPY_DIR / "extmod" / "asyncio"):
        if (base / fname).exists():
            return base / fname
    return None


def flash_by_frozen_module(frozen_c, elf):
    """{mangled module: bytes} of the frozen code and constants in the firmware (its
    qstrs are pooled and not counted), from the symbols frozen_content.c defines."""
    nm = arm_tool("nm")
    if nm is None or not Path(elf).exists():
        return {}
    sizes = {}
    out = subprocess.run([nm, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4:
            sizes[p[3]] = int(p[1], 16)
    blocks, cur = {}, None
    decl = re.compile(r"^static const [\w ]+?\b(\w+)(\[\d*\])? = ")
    for line in Path(frozen_c).read_text().splitlines():
        if line.startswith("// frozen module "):
            cur = line.split()[-1]
            blocks[cur] = 0
        elif cur is not None:
            m = decl.match(line)
            if m:
                blocks[cur] += sizes.get(m.group(1), 0)
    return blocks


def mangle(fname):
    return re.sub(r"[^A-Za-z0-9_]", "_", fname[:-3])


def frozen_table(names, frozen_c, elf):
    flash = flash_by_frozen_module(frozen_c, elf)
    rows, data = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for fname in names:
            src = source_of(fname)
            py = mpy = None
            if src is not None:
                py = src.stat().st_size
                if MPY_CROSS.exists():
                    out = Path(tmp) / (mangle(fname) + ".mpy")
                    r = subprocess.run([str(MPY_CROSS), "-o", str(out), str(src)],
                                       capture_output=True, text=True)
                    mpy = out.stat().st_size if r.returncode == 0 else None
            fl = flash.get(mangle(fname))
            origin = "app (python/)" if src and PYTHON_SRC in src.parents else "MicroPython"
            rows.append([fname, origin, py, mpy, fl])
            data.append({"name": fname, "origin": origin, "source": str(src) if src else None,
                         "py_bytes": py, "mpy_bytes": mpy, "flash_bytes": fl})
    tot = [sum(r[i] or 0 for r in rows) for i in (2, 3, 4)]
    rows.append(["total", "", *tot])
    return rows, data


def board_heap(names):
    """Heap figures on the emulated board."""
    from harness import Emulator

    mods = app_modules(names)
    emu = Emulator(UF2, timeout=600)
    try:
        emu.prompt()
        out = emu.exec(
            "import gc\n"
            "gc.collect()\n"
            "print(repr((gc.mem_free(), gc.mem_alloc())))\n")
        free0, alloc0 = ast.literal_eval(out.strip())
        code = ("import gc\nres = []\n"
                f"for m in {mods!r}:\n"
                "    gc.collect()\n"
                "    f0 = gc.mem_free()\n"
                "    try:\n"
                "        __import__(m)\n"
                "        err = None\n"
                "    except Exception as e:\n"
                "        err = '%s: %s' % (type(e).__name__, e)\n"
                "    gc.collect()\n"
                "    res.append((m, f0 - gc.mem_free(), err))\n"
                "print(repr((res, gc.mem_free())))\n")
        imports, free_app = ast.literal_eval(emu.exec(code, max_cycles=2_000_000_000).strip())
        # every global the measurements assign exists first: a growing globals dict
        # would count against the bank
        emu.exec("import gc, relaygpio, pyrelaygpio\nb = pins = None\nf0 = f1 = q = 0\n")
        banks = {}
        for label, ctor, pins, inputs in (
                ("relaygpio.Bank, 8 relays", "relaygpio", "range(2, 10)", ""),
                ("pyrelaygpio.Bank, 8 relays", "pyrelaygpio", "range(2, 10)", ""),
                ("relaygpio.Bank, 22 relays + 8 inputs", "relaygpio", "range(22)", "range(22, 30)"),
                ("pyrelaygpio.Bank, 22 relays + 8 inputs", "pyrelaygpio", "range(22)",
                 "range(22, 30)")):
            # the pin list is made first: a stale reference to a temporary one on the C
            # stack would keep it alive through gc.collect() and count it
            code = f"pins = list({pins})\ngc.collect()\nf0 = gc.mem_free()\nb = {ctor}.Bank(pins)\n"
            if inputs:
                code += f"for q in {inputs}:\n    b.input(q)\n"
            code += "gc.collect()\nf1 = gc.mem_free()\nb.deinit()\nb = None\nprint(f0 - f1, f1)\n"
            cost, free_after = (int(x) for x in emu.exec(code, max_cycles=500_000_000).split())
            banks[label] = {"bytes": cost, "free_after": free_after}
    finally:
        emu.close()
    return {"heap_total": free0 + alloc0, "free_after_boot": free0, "app_modules": mods,
            "imports": [{"module": m, "bytes": b, "error": e} for m, b, e in imports],
            "free_after_app": free_app, "banks": banks}


UNIX_HEAP = artifacts.BENCH / "board_scripts" / "unix_heap.py"


def unix_heap(names):
    mods = app_modules(names)
    r = subprocess.run([str(UNIX_BIN), "-c", f"MODS = {mods!r}\n" + UNIX_HEAP.read_text()],
                       capture_output=True, text=True, env=unix_env(NATMOD_X64_DIR), timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"unix heap run failed:\n{r.stderr[-2000:]}")
    out = {"imports": [], "banks": {}, "app_modules": mods}
    for line in r.stdout.splitlines():
        p = line.split()
        if p[0] == "boot":
            out["free_after_boot"], out["heap_total"] = int(p[1]), int(p[1]) + int(p[2])
        elif p[0] == "import":
            out["imports"].append({"module": p[1], "bytes": int(p[2]),
                                   "error": p[3] if len(p) > 3 else None})
        elif p[0] == "app":
            out["free_after_app"] = int(p[1])
        elif p[0] == "bank":
            out["banks"][p[1]] = {"import_bytes": int(p[2]), "bytes": int(p[3]),
                                  "free_after": int(p[4])}
    return out


PEAK_RSS = ("\nfor l in open('/proc/self/status'):\n"
            "    if l.startswith('VmHWM'):\n"
            "        print('VmHWM', l.split()[1])\n")


def peak_rss_kib(script, env, timeout=120):
    """Peak RSS (VmHWM, KiB) of the unix process running `script`, read by the process
    itself as it ends: the rusage of a child spawned from here would also count this
    Python's memory, which a vfork'ed child inherits before its exec."""
    code = f"exec(open({str(script)!r}).read())" if script else "pass"
    r = subprocess.run([str(UNIX_BIN), "-c", code + PEAK_RSS], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{script}: exit {r.returncode}: {r.stderr[-500:]}")
    return int(r.stdout.split("VmHWM")[-1].split()[0])


def relaygpio_flash(map_file):
    """Bytes of code / read-only data / data / bss that cmodules/relaygpio adds to the
    firmware, from the linker map (sections kept in the image only)."""
    if not Path(map_file).exists():
        return None
    kinds = ((".text", "text"), (".time_critical", "text"), (".rodata", "rodata"),
             (".data", "data"), (".bss", "bss"), ("COMMON", "bss"))
    spans = {}  # (kind, address) -> size: merged string sections share an address
    pending = None
    for line in Path(map_file).read_text(errors="replace").splitlines():
        p = line.split()
        if len(p) == 1 and (p[0].startswith(".") or p[0] == "COMMON"):
            pending = p[0]
            continue
        if pending and len(p) == 3 and p[0].startswith("0x"):
            p = [pending] + p
        pending = None
        if len(p) != 4 or "cmodules/relaygpio/" not in p[3]:
            continue
        kind = next((k for pre, k in kinds if p[0].startswith(pre)), None)
        addr, size = int(p[1], 16), int(p[2], 16)
        if kind is None or addr < 0x10000000 or size == 0:
            continue  # debug info, or discarded by --gc-sections (address 0)
        spans[kind, addr] = max(size, spans.get((kind, addr), 0))
    out = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for (kind, _), size in spans.items():
        out[kind] += size
    return out


def elf_sizes(elf):
    size = arm_tool("size")
    if size is None or not Path(elf).exists():
        return None
    p = subprocess.run([size, str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(x) for x in p.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="same figures (they are quick)")
    args = ap.parse_args(argv)
    need(UF2, "firmware")
    need(UNIX_BIN, "unix")
    need(FROZEN_C, "firmware")
    tables = []
    names = frozen_names(FROZEN_C)

    board = board_heap(names)
    unix_names = frozen_names(UNIX_BIN.parent / "frozen_content.c") if (
        UNIX_BIN.parent / "frozen_content.c").exists() else names
    ux = unix_heap(unix_names)

    rows = [["heap size", board["heap_total"], ux["heap_total"]],
            ["free after boot", board["free_after_boot"], ux["free_after_boot"]],
            ["app modules imported (frozen, from python/, but main)",
             len(board["app_modules"]), len(ux["app_modules"])],
            ["free after importing the app", board["free_after_app"], ux["free_after_app"]],
            ["  the app's imports took", board["free_after_boot"] - board["free_after_app"],
             ux["free_after_boot"] - ux["free_after_app"]]]
    for label, v in board["banks"].items():
        rows.append([f"  {label}", v["bytes"], None])
    for label, v in ux["banks"].items():
        rows.append([f"  {label}.Bank, 32 relays + 8 inputs (import: {v['import_bytes']:,})",
                     None, v["bytes"]])
    tables.append(table("Heap (gc.mem_free, bytes; after gc.collect)",
                        ["step", "emulated RP2040", "unix port"], rows))

    imp = {}
    for where, d in (("board", board), ("unix", ux)):
        for i in d["imports"]:
            imp.setdefault(i["module"], {})[where] = i
    irows = [[m, v.get("board", {}).get("bytes"), v.get("board", {}).get("error") or "",
              v.get("unix", {}).get("bytes"), v.get("unix", {}).get("error") or ""]
             for m, v in imp.items()]
    tables.append(table("Heap taken by each app import, in order (shared imports count once)",
                        ["module", "RP2040 bytes", "RP2040 error", "unix bytes", "unix error"],
                        irows))

    env = unix_env(NATMOD_X64_DIR)
    rss = {"micropython -c pass": peak_rss_kib(None, env),
           "tools/demo.py (relaygpio C, ~1 s)": peak_rss_kib(DEMO, env)}
    tables.append(table("Peak RSS of the unix process (KiB)", ["run", "peak RSS"],
                        [[k, v] for k, v in rss.items()]))

    sizes = elf_sizes(FW_ELF)
    rg = relaygpio_flash(FW_MAP)
    srows = [["firmware.uf2", UF2.stat().st_size]]
    fbin = UF2.with_name("firmware.bin")
    if fbin.exists():
        srows.append(["firmware.bin (flash image)", fbin.stat().st_size])
    if sizes:
        srows += [["firmware.elf text (flash)", sizes["text"]],
                  ["firmware.elf data + bss (static RAM)", sizes["data"] + sizes["bss"]]]
    if rg:
        srows += [["relaygpio C module: code", rg["text"]],
                  ["relaygpio C module: read-only data", rg["rodata"]],
                  ["relaygpio C module: data + bss", rg["data"] + rg["bss"]]]
    for label, path in (("natmod x64 relaygpio_natmod.mpy", NATMOD_X64),
                        ("natmod armv6m relaygpio.mpy", NATMOD_ARM)):
        if path.exists():
            srows.append([label, path.stat().st_size])
    tables.append(table("Image and module sizes (bytes)", ["what", "bytes"], srows))

    frows, fdata = frozen_table(names, FROZEN_C, FW_ELF)
    tables.append(table("Frozen modules in the UF2 (bytes)",
                        ["frozen name", "from", ".py source", ".mpy (mpy-cross)",
                         "in firmware flash"], frows))

    write("memory", {
        "uf2": str(UF2), "board": board, "unix": ux, "peak_rss_kib": rss,
        "sizes": {r[0]: r[1] for r in srows}, "relaygpio_flash": rg, "frozen": fdata,
    }, tables)
    app = [d for d in fdata if d["origin"].startswith("app")]
    if app:
        bar_chart("memory_frozen", "Frozen application modules: bytes", "bytes",
                  [d["name"] for d in app],
                  {".py source": [d["py_bytes"] for d in app],
                   ".mpy": [d["mpy_bytes"] for d in app],
                   "in flash": [d["flash_bytes"] for d in app]})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except artifacts.Missing as e:
        print(f"memory: {e}", file=sys.stderr)
        sys.exit(2)
