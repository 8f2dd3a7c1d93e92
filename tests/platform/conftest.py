"""pytest fixtures: a shared platform server, per-test servers, and a fleet builder."""

import pytest

from platform_harness import Fleet, Server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("platform")).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of the test's own, for restarts and unusual options."""
    servers = []

    def make(extra_args=()):
        srv = Server(tmp_path, extra_args)
        servers.append(srv)
        return srv.start()
    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def fleet(server):
    return Fleet(server)
