"""What only the MongoDB store does: connection errors, GridFS files, the stored form.

The contract itself is in test_contract.py; these tests look at the server's side with
raw pymongo to check what other tools see and that nothing is left behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from lightflow.exceptions import StoreError
from lightflow.store import META
from lightflow.store.mongo import GRIDFS_THRESHOLD, TAG, MongoDataStore

from tests.servers import HOST, ServerProcess, free_port, secantus

BIG = np.ones(GRIDFS_THRESHOLD // 8 + 1000)  # just above the GridFS threshold


def gridfs_files(mongo_db: Any) -> list[dict[str, Any]]:
    return list(mongo_db["workflows_fs.files"].find())


def test_unreachable_server_fails_fast_with_the_address() -> None:
    port = free_port()  # nobody listens here
    start = time.monotonic()
    with pytest.raises(StoreError) as raised:
        MongoDataStore(host=HOST, port=port, timeout=1)
    assert time.monotonic() - start < 3
    message = str(raised.value)
    assert message.startswith(f"cannot reach MongoDB at {HOST}:{port} within 1.0 s: ")
    assert "check the store settings" in message and "\n" not in message


def test_unreachable_uri_names_hosts_without_credentials() -> None:
    port = free_port()
    with pytest.raises(StoreError, match=rf"cannot reach MongoDB at {HOST}:{port} within"):
        MongoDataStore(uri=f"mongodb://user:secret@{HOST}:{port}/?authSource=admin", timeout=1)


def test_invalid_uri_fails_with_store_error() -> None:
    with pytest.raises(StoreError, match="invalid MongoDB settings"):
        MongoDataStore(uri="mongodb://a:b:c", timeout=1)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[ServerProcess]:
    with secantus(auth=True) as server:
        yield server


def test_wrong_credentials_fail_with_store_error(auth_server: ServerProcess) -> None:
    with pytest.raises(StoreError, match=r"refused the login: .*check the store's username"):
        MongoDataStore(
            host=auth_server.host, port=auth_server.port, username="nobody", password="x"
        )


def test_missing_credentials_fail_with_store_error(auth_server: ServerProcess) -> None:
    with pytest.raises(StoreError, match=r"set the store's username and password"):
        MongoDataStore(host=auth_server.host, port=auth_server.port).add()


def test_plain_values_are_stored_natively(mongo_store: MongoDataStore, mongo_db: Any) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    plain = {"n": 1, "f": 2.5, "s": "text", "b": True, "none": None, "l": [1, [2]], "t": when}
    doc = mongo_store.get(mongo_store.add(workflow_id="run"))
    doc.set("plain", plain)
    doc.push("log.lines", "one")
    doc.set("status", "running", section=META)
    raw = mongo_db.workflows.find_one({"_id": "run"})
    assert raw["data"]["plain"] == {**plain, "t": when.replace(tzinfo=None)}
    assert raw["data"]["log"] == {"lines": ["one"]}
    assert raw["meta"] == {"status": "running"}


def test_other_values_are_tagged_and_readable(mongo_store: MongoDataStore, mongo_db: Any) -> None:
    precise = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    doc = mongo_store.get(mongo_store.add(workflow_id="run"))
    doc.set("arr", np.arange(3))
    doc.set("t", precise)
    raw = mongo_db.workflows.find_one({"_id": "run"})["data"]
    assert raw["arr"][TAG] == "pickle" and raw["arr"]["type"] == "numpy.ndarray"
    assert raw["t"][TAG] == "pickle"
    assert raw["t"]["at"] == precise.replace(microsecond=678000, tzinfo=None)
    assert gridfs_files(mongo_db) == []


def test_large_values_go_to_gridfs_with_the_run_named(
    mongo_store: MongoDataStore, mongo_db: Any
) -> None:
    doc = mongo_store.get(mongo_store.add(workflow_id="run"))
    doc.set("small", np.ones(GRIDFS_THRESHOLD // 8 - 1000))
    assert gridfs_files(mongo_db) == []
    doc.set("big", BIG)
    doc.set("plain_list", list(range(200_000)))  # > 1 MiB as BSON: stored whole in GridFS
    files = gridfs_files(mongo_db)
    assert [f["metadata"] for f in files] == [
        {"workflow_id": "run", "key": "data.big"},
        {"workflow_id": "run", "key": "data.plain_list"},
    ]
    raw = mongo_db.workflows.find_one({"_id": "run"})["data"]
    assert raw["big"][TAG] == "gridfs" and raw["big"]["file_id"] == files[0]["_id"]
    assert doc.get("plain_list") == list(range(200_000))


def test_overwriting_a_large_value_deletes_its_file(
    mongo_store: MongoDataStore, mongo_db: Any
) -> None:
    doc = mongo_store.get(mongo_store.add())
    doc.set("big", BIG)
    first = gridfs_files(mongo_db)
    doc.set("big", BIG * 2)
    second = gridfs_files(mongo_db)
    assert len(first) == len(second) == 1 and first[0]["_id"] != second[0]["_id"]
    np.testing.assert_array_equal(doc.get("big"), BIG * 2)
    doc.set("big", "small now")
    assert gridfs_files(mongo_db) == []
    assert mongo_db["workflows_fs.chunks"].count_documents({}) == 0


def test_overwriting_a_parent_deletes_nested_files(
    mongo_store: MongoDataStore, mongo_db: Any
) -> None:
    doc = mongo_store.get(mongo_store.add())
    doc.set("a.b.big", BIG)
    doc.push("a.list", BIG)
    assert len(gridfs_files(mongo_db)) == 2
    doc.set("a", {"b": 1})
    assert gridfs_files(mongo_db) == []


def test_remove_deletes_only_the_runs_files(mongo_store: MongoDataStore, mongo_db: Any) -> None:
    gone = mongo_store.add({"data": {"big": BIG}})
    mongo_store.get(gone).extend("list", [BIG, BIG])
    kept = mongo_store.add({"data": {"big": BIG}})
    assert len(gridfs_files(mongo_db)) == 4
    mongo_store.remove(gone)
    assert [f["metadata"]["workflow_id"] for f in gridfs_files(mongo_db)] == [kept]
    assert (
        mongo_db["workflows_fs.chunks"].count_documents(
            {"files_id": {"$ne": gridfs_files(mongo_db)[0]["_id"]}}
        )
        == 0
    )
    assert mongo_db.workflows.count_documents({}) == 1


def test_failed_update_leaves_no_file(mongo_store: MongoDataStore, mongo_db: Any) -> None:
    doc = mongo_store.get(mongo_store.add(workflow_id="run"))
    doc.set("n", 1)
    with pytest.raises(StoreError, match="not a list"):
        doc.push("n", BIG)
    with pytest.raises(StoreError, match="not a dict"):
        doc.set("n.x", BIG)
    with pytest.raises(StoreError, match="already exists"):
        mongo_store.add({"data": {"big": BIG}}, workflow_id="run")
    mongo_store.remove("run")
    with pytest.raises(StoreError, match="no data store document"):
        doc.set("big", BIG)
    assert gridfs_files(mongo_db) == []


def test_document_over_16_mb_fails_with_store_error(mongo_store: MongoDataStore) -> None:
    # Pushed rather than set: SecantusDB answers an oversized findAndModify (what set
    # uses) with a generic internal error instead of MongoDB's BSONObjectTooLarge.
    doc = mongo_store.get(mongo_store.add())
    chunk = "x" * (GRIDFS_THRESHOLD - 100)  # stays in the document
    with pytest.raises(StoreError, match="exceed MongoDB's 16 MB limit"):
        for _ in range(20):
            doc.push("chunks", chunk)
    assert len(doc.get("chunks")) < 20


def test_importing_the_store_package_does_not_import_pymongo() -> None:
    code = "import sys, lightflow.store; sys.exit('pymongo' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_task_records_live_in_documents_of_their_own(
    mongo_store: MongoDataStore, mongo_db: Any
) -> None:
    """However many tasks a run has, its own document does not grow with them."""
    run_id = mongo_store.add()
    document = mongo_store.get(run_id)
    document.set("log.main.status", "running", section=META)
    size = len(str(mongo_db.workflows.find_one({"_id": run_id})))
    for batch in range(5):
        document.set_many(
            {f"log.main.tasks.t{batch}_{i}": {"status": "succeeded"} for i in range(200)},
            section=META,
        )
    assert len(str(mongo_db.workflows.find_one({"_id": run_id}))) == size
    records = mongo_db.workflows_tasks
    assert records.count_documents({"run": run_id}) == 1000
    record = records.find_one({"run": run_id, "task": "t3_7"})
    assert record["dag"] == "main" and record["entry"] == {"status": "succeeded"}
    assert len(document.get("log.main.tasks", section=META)) == 1000
    mongo_store.remove(run_id)
    assert records.count_documents({"run": run_id}) == 0
