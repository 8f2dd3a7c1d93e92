# Tiny test runner for MicroPython (and CPython):
#   micropython tests/mpy/runner.py IMPL module...
# IMPL is c, natmod or python; each module is a path or a name. Runs every
# test_* function, prints FAIL lines and "N passed, M failed".
import sys


def _dir_of(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


def _module_name(arg):
    name = arg[arg.rfind("/") + 1:]
    return name[:-3] if name.endswith(".py") else name


def power_on(rg):
    # clear the simulated watchdog scratch words that keep relay state across a
    # reset, of the implementation under test and of the reference twin
    import pyrelaygpio
    for m in (rg, pyrelaygpio):
        if hasattr(m, "sim_scratch"):
            m.sim_scratch((0, 0, 0))


def main(argv):
    here = _dir_of(argv[0])
    sys.path.insert(0, here)
    sys.path.insert(0, here + "/../../python")
    if len(argv) < 3:
        print("usage: runner.py c|natmod|python module...")
        sys.exit(2)
    import impl
    passed = failed = 0
    try:
        impl.load(argv[1])
        mods = [__import__(_module_name(arg)) for arg in argv[2:]]
    except Exception as e:
        # nothing can run: still one FAIL line and the summary
        print("FAIL setup %s: %s: %s" % (argv[1], type(e).__name__, e))
        print("0 passed, 1 failed")
        sys.exit(1)
    for mod in mods:
        mod_name = mod.__name__
        for name in sorted(dir(mod)):
            fn = getattr(mod, name)
            if not name.startswith("test_") or not callable(fn):
                continue
            power_on(impl.rg)  # each test starts after a power-on: no kept relay state
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %s: %s" % (mod_name, name, type(e).__name__, e))
    print("%d passed, %d failed" % (passed, failed))
    if failed:
        sys.exit(1)


main(sys.argv)
