"""The end-to-end suite runs on both brokers: the session's Redis and RabbitMQ clusters.

The clusters themselves (servers, config, workers) are in :mod:`tests.cluster` and
shared with the extensions' suites through ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cluster import LIBRARY, WORKFLOWS, Cluster, Worker

__all__ = ["LIBRARY", "WORKFLOWS", "Cluster", "Worker"]


@pytest.fixture(scope="session", params=["redis", "amqp"])
def cluster(request: pytest.FixtureRequest, clusters: Callable[[str], Cluster]) -> Cluster:
    return clusters(request.param)
