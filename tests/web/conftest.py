"""Fixtures for the web page and event stream tests; the helpers are in web_harness.py (a module
name of its own, so these tests run in one pytest session with the other suites)."""

import pytest

from web_harness import FIGURES, EventsServer


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "web page and live events: figures (unix build)")
        for k in sorted(FIGURES):
            terminalreporter.write_line("%s: %s" % (k, FIGURES[k]))


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    s = EventsServer(tmp_path_factory.mktemp("events"), keepalive_ms=1000).start()
    yield s
    s.stop()


@pytest.fixture
def own_device(tmp_path):
    made = []

    def make(**settings):
        d = tmp_path / ("device%d" % len(made))
        d.mkdir()
        s = EventsServer(d, **settings).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()
