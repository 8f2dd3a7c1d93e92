# Tiny test runner for MicroPython (and CPython):
#   micropython tests/mpy/runner.py IMPL module...
# IMPL is c, natmod or python; each module is a path or a name. Runs every
# test_* function, prints FAIL lines and "N passed, M failed".
# Nothing passes by not running: a test that exits (the upstream "SKIP" idiom,
# raise SystemExit) fails, and so does a module with no test_* function.
import sys


def _dir_of(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


def _module_name(arg):
    name = arg[arg.rfind("/") + 1:]
    return name[:-3] if name.endswith(".py") else name


def run_modules(mods, out=print, before_each=None):
    """Run every test_* function of each module; returns (passed, failed)."""
    passed = failed = 0
    for mod in mods:
        mod_name = mod.__name__
        compared = getattr(mod, "COMPARED", None)
        if compared:
            out("%s compares %s" % (mod_name, compared))
        ran = 0
        for name in sorted(dir(mod)):
            fn = getattr(mod, name)
            if not name.startswith("test_") or not callable(fn):
                continue
            ran += 1
            if before_each is not None:
                before_each()
            try:
                fn()
                passed += 1
            except SystemExit as e:
                failed += 1
                out("FAIL %s.%s: SystemExit %s: a test that exits (SKIP) is a failure" % (
                    mod_name, name, e.args[0] if e.args else ""))
            except Exception as e:
                failed += 1
                out("FAIL %s.%s: %s: %s" % (mod_name, name, type(e).__name__, e))
        if not ran:
            failed += 1
            out("FAIL %s: no test_* function: nothing was tested" % mod_name)
    return passed, failed


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
    try:
        rg = impl.load(argv[1])
        print("relaygpio under test: module %s, IMPL %s" % (rg.__name__, rg.IMPL))
        mods = [__import__(_module_name(arg)) for arg in argv[2:]]
    except (Exception, SystemExit) as e:
        # nothing can run: still one FAIL line and the summary
        print("FAIL setup %s: %s: %s" % (argv[1], type(e).__name__, e))
        print("0 passed, 1 failed")
        sys.exit(1)
    passed, failed = run_modules(mods, before_each=lambda: power_on(impl.rg))
    print("%d passed, %d failed" % (passed, failed))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
