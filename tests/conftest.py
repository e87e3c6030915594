"""Session-wide real servers shared by the suites that need them.

Each server is private to the test session (its own process on a free port), so runs
never collide with other sessions or with services the machine already runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.cluster import Cluster, start_cluster
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


@pytest.fixture(scope="session")
def clusters(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: ServerProcess,
    secantus_server: ServerProcess,
) -> Iterator[Callable[[str], Cluster]]:
    """``clusters(kind)``: the session's cluster on broker ``redis`` or ``amqp``.

    Started on first use and shared by every suite (core end to end, extensions); an
    unusable RabbitMQ skips the test that asks for it.
    """
    started: dict[str, Cluster | None] = {}

    def get(kind: str) -> Cluster:
        if kind not in started:
            folder = tmp_path_factory.mktemp(f"cluster-{kind}")
            started[kind] = start_cluster(kind, folder, redis_server, secantus_server)
        cluster = started[kind]
        if cluster is None:
            pytest.skip(
                "RabbitMQ is not running on 127.0.0.1:5672 (or rabbitmqctl is missing): "
                "the amqp run of the end-to-end suite is skipped"
            )
        return cluster

    yield get
    for cluster in started.values():
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(clusters: Callable[[str], Cluster]) -> Cluster:
    """The session's cluster with Redis as broker and state server (extensions' suites)."""
    return clusters("redis")
