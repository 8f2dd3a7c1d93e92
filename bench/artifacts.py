"""Where the benchmarks find the builds they measure (all made by the project's Makefile)."""

import os
import shutil
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = ROOT / ".cache"
BUILD = CACHE / "build"
BOARD = os.environ.get("BOARD", "RPI_PICO")
FW_BUILD = BUILD / f"rp2-{BOARD}"
UF2 = Path(os.environ.get("HIL_UF2", FW_BUILD / "firmware.uf2"))
FW_ELF = UF2.with_name("firmware.elf")
FW_MAP = UF2.with_name("firmware.elf.map")
FROZEN_C = UF2.with_name("frozen_content.c")
# BENCH_UNIX / BENCH_NATMOD_X64_DIR (like HIL_UF2) compare another build
UNIX_BIN = Path(os.environ.get("BENCH_UNIX", BUILD / "unix" / "micropython"))
NATMOD_X64_DIR = Path(os.environ.get("BENCH_NATMOD_X64_DIR", BUILD / "natmod-x64"))
NATMOD_X64 = NATMOD_X64_DIR / "relaygpio_natmod.mpy"
NATMOD_ARM = BUILD / "natmod-armv6m" / "relaygpio.mpy"
MPY_DIR = Path(os.environ.get("MPY_DIR", CACHE / "src" / "micropython-1.25.0"))
MPY_CROSS = MPY_DIR / "mpy-cross" / "build" / "mpy-cross"
PYTHON_SRC = ROOT / "python"
DEMO = ROOT / "tools" / "demo.py"
RESULTS = Path(os.environ.get("BENCH_RESULTS", BENCH / "results"))

sys.path.insert(0, str(ROOT / "tests" / "hil"))


class Missing(Exception):
    """A build the benchmark needs is not there: says which make target makes it."""


def need(path, target):
    if not Path(path).exists():
        raise Missing(f"{path} is missing: run `make {target}` first")
    return Path(path)


def arm_tool(name):
    """An arm-none-eabi binutils program, or None (its figures are then left out)."""
    return shutil.which(f"arm-none-eabi-{name}")


def unix_env(*extra_paths):
    """Environment for the unix build: MICROPYPATH replaces sys.path, so .frozen stays in."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([*(str(p) for p in extra_paths), ".frozen"])
    return env
