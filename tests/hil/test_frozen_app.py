"""The application frozen into the firmware imports on the board; the heap left after the
import is reported."""

import ast

import pytest

from harness import ROOT

MANIFEST = ROOT / "python" / "manifest.py"


def app_modules(manifest=MANIFEST):
    """Top-level names that module()/package() calls in the app's manifest (and the
    manifests it include()s by relative path) freeze."""
    names = []
    tree = ast.parse(manifest.read_text())
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        arg = node.args[0]
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            continue
        if node.func.id == "module":
            names.append(arg.value.rsplit("/", 1)[-1].removesuffix(".py"))
        elif node.func.id == "package":
            names.append(arg.value.split("/", 1)[0])
        elif node.func.id == "include" and "$(" not in arg.value:
            sub = manifest.parent / arg.value
            if sub.is_dir():
                sub = sub / "manifest.py"
            if sub.exists():
                names += app_modules(sub)
    return names


def test_frozen_app_imports_and_heap(board):
    mods = app_modules()
    assert mods, f"no module() or package() in {MANIFEST}"
    listing = board.exec("help('modules')", max_cycles=200_000_000)
    # a frozen package is listed by its modules ("iotlib/__init__", ...)
    frozen = {name.split("/", 1)[0] for name in listing.split()}
    missing = [m for m in mods if m not in frozen]
    if missing:
        pytest.fail(f"firmware {board.uf2} does not freeze {missing} (not built from this manifest)")
    out = board.exec(
        "import gc\n"
        "gc.collect()\n"
        "before = gc.mem_free()\n"
        + "".join(f"import {m}\n" for m in mods)
        + "gc.collect()\n"
        "print(before, gc.mem_free(), gc.mem_alloc())\n",
        max_cycles=400_000_000,
    )
    before, after, alloc = (int(x) for x in out.split())
    assert after > 0
    print(f"\n[hil] heap free after importing the frozen app ({', '.join(mods)}): {after:,} bytes "
          f"(before: {before:,}; the import took {before - after:,}; allocated: {alloc:,})")
