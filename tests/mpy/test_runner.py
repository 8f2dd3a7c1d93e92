# The runner itself: a test that exits the upstream way ("SKIP", raise SystemExit) and a
# module with no test in it are failures, and a compared pair is named in the output.
from runner import run_modules
from check import eq, true


class Skips:
    # stands for a test module: the runner only reads __name__ and the test_* attributes
    def test_passes():
        pass

    def test_skips_like_upstream():
        raise SystemExit  # after print("SKIP") in upstream tests

    def test_fails():
        raise ValueError("relay 3 is stuck")


class Empty:
    def helper():
        pass


class Compares:
    COMPARED = "relaygpio (IMPL c) against pyrelaygpio (IMPL python)"

    def test_passes():
        pass


def _run(*mods):
    lines = []
    counts = run_modules(list(mods), out=lines.append)
    return counts, lines


def test_a_skip_is_a_failure():
    counts, lines = _run(Skips)
    eq(counts, (1, 2), "passed, failed")
    true(any(l.startswith("FAIL Skips.test_skips_like_upstream: SystemExit") for l in lines), lines)
    true("FAIL Skips.test_fails: ValueError: relay 3 is stuck" in lines, lines)


def test_a_module_without_tests_is_a_failure():
    counts, lines = _run(Empty)
    eq(counts, (0, 1), "passed, failed")
    eq(lines, ["FAIL Empty: no test_* function: nothing was tested"], "output")


def test_the_compared_pair_is_named():
    counts, lines = _run(Compares)
    eq(counts, (1, 0), "passed, failed")
    eq(lines, ["Compares compares relaygpio (IMPL c) against pyrelaygpio (IMPL python)"], "output")
