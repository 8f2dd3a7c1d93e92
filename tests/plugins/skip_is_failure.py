"""pytest plugin: a skipped test is a failed test (`make test` loads it with
`-p skip_is_failure`). A suite that skips proves nothing, so a missing UF2, unix build,
natmod or NTP responder shows red with its reason instead of a quiet "s".

Skips at collection (module level, importorskip), at setup (fixtures, skipif marks) and in the
test body all count, and so does an expected failure (xfail): it is not a pass either."""

import pytest

WHY = "a skip is a failure here (tests/plugins/skip_is_failure.py): "


def _reason(longrepr):
    # a skip's longrepr is (path, lineno, reason); anything else is shown as it is
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = longrepr[2]
        if reason.startswith("Skipped: "):
            reason = reason[len("Skipped: "):]
        return "%s (%s:%s)" % (reason, longrepr[0], longrepr[1])
    return str(longrepr)


def _fail(report, what):
    report.outcome = "failed"
    report.longrepr = WHY + what


def pytest_report_header(config):
    return "skipped or xfailed tests count as failures"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if hasattr(report, "wasxfail"):
        what = "expected failure (xfail): %s" % (report.wasxfail or "no reason given")
        del report.wasxfail
        _fail(report, what)
    elif report.skipped:
        _fail(report, "skipped: " + _reason(report.longrepr))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        _fail(report, "skipped at collection: " + _reason(report.longrepr))
