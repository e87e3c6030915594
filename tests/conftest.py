"""Session-wide real servers shared by the suites that need them.

Each server is private to the test session (its own process on a free port), so runs
never collide with other sessions or with services the machine already runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.servers import ServerProcess, redis, secantus


@pytest.fixture(scope="session")
def secantus_server() -> Iterator[ServerProcess]:
    """A SecantusDB (MongoDB wire protocol) server for the session."""
    with secantus() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerProcess]:
    """A redis-server for the session (scripts/ensure-services.sh installs it)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/ensure-services.sh")
    with redis() as server:
        yield server
