"""Store fixtures: a fresh store per test (the SecantusDB server is session-wide).

The ``store`` fixture is parametrised over both backends so that
``test_contract.py`` checks the one contract of :mod:`lightflow.store.base` against
the embedded store and against MongoDB (served by SecantusDB) alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from lightflow.store import DataStore, MemoryDataStore
from lightflow.store.mongo import MongoDataStore

from tests.servers import ServerProcess


@pytest.fixture
def mongo_db(secantus_server: ServerProcess) -> Iterator[Any]:
    """A fresh, empty database on the test server (raw pymongo), dropped afterwards."""
    client: Any = pymongo.MongoClient(
        secantus_server.host, secantus_server.port, serverSelectionTimeoutMS=5000
    )
    name = f"lightflow_test_{uuid.uuid4().hex[:12]}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def mongo_store(secantus_server: ServerProcess, mongo_db: Any) -> Iterator[MongoDataStore]:
    store = MongoDataStore(
        host=secantus_server.host, port=secantus_server.port, database=mongo_db.name
    )
    yield store
    store.close()


@pytest.fixture(params=["memory", "mongo"])
def store(request: pytest.FixtureRequest) -> DataStore:
    if request.param == "memory":
        return MemoryDataStore()
    return request.getfixturevalue("mongo_store")
