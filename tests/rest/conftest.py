"""Fixtures for the device REST API tests; the helpers are in rest_harness.py (a module name of
its own, so these tests run in one pytest session with tests/e2e and tests/platform)."""

import pytest

from rest_harness import FIGURES, TALLY, DeviceApiServer


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "figures measured")
        for name, text in FIGURES:
            terminalreporter.write_line("%s: %s" % (name, text))
    lines = TALLY.lines()
    if lines:
        terminalreporter.write_sep("-", "attack and bad-input cases")
        total = sum(g["cases"] for g in TALLY.groups.values())
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line("total: %d refused requests checked" % total)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    s = DeviceApiServer(tmp_path_factory.mktemp("api")).start()
    yield s
    s.stop()
