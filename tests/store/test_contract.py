"""The data store contract (lightflow.store.base), checked against every backend.

Each test runs once with the embedded MemoryDataStore and once with MongoDataStore on a
real SecantusDB server (see conftest.py), so the two cannot drift apart.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from lightflow.exceptions import StoreError
from lightflow.store import DATA, META, DataStore, DataStoreDocument, MemoryDataStore


@pytest.fixture
def doc(store: DataStore) -> DataStoreDocument:
    return store.get(store.add())


def test_missing_key_returns_default(doc: DataStoreDocument) -> None:
    assert doc.get("absent") is None
    assert doc.get("absent", 42) == 42
    doc.set("a.b", 1)
    assert doc.get("a.c", "d") == "d"
    assert doc.get("a.b.c", "d") == "d"  # through a value that is not a dict
    assert doc.get("absent.deeper", section=META) is None


def test_nested_dot_keys(doc: DataStoreDocument) -> None:
    doc.set("a.b.c", 1)
    doc.set("a.b.d", [2])
    doc.set("a.e", "x")
    assert doc.get("a") == {"b": {"c": 1, "d": [2]}, "e": "x"}
    assert doc.get("a.b.c") == 1
    assert doc.get("a.b") == {"c": 1, "d": [2]}


def test_sections_are_independent(doc: DataStoreDocument) -> None:
    doc.set("key", "in data")
    doc.set("key", "in meta", section=META)
    doc.push("list", 1, section=META)
    assert doc.get("key") == "in data"
    assert doc.get("key", section=DATA) == "in data"
    assert doc.get("key", section=META) == "in meta"
    assert doc.get("list") is None
    assert doc.get("list", section=META) == [1]


def test_set_overwrites(doc: DataStoreDocument) -> None:
    doc.set("a", {"b": 1})
    doc.set("a", 2)
    assert doc.get("a") == 2
    doc.set("a", {"x": {"y": 1}})
    doc.set("a.x", "flat")
    assert doc.get("a") == {"x": "flat"}


def test_set_through_a_value_that_is_not_a_dict_fails(doc: DataStoreDocument) -> None:
    doc.set("a.b", 1)
    with pytest.raises(StoreError, match=r"'a\.b' holds a int, not a dict"):
        doc.set("a.b.c", 2)
    doc.set("arr", np.zeros(3))
    with pytest.raises(StoreError, match=r"'arr' holds a ndarray, not a dict"):
        doc.set("arr.x", 1)
    with pytest.raises(StoreError, match=r"'arr' holds a ndarray"):
        doc.push("arr.x", 1)
    assert doc.get("a") == {"b": 1}
    np.testing.assert_array_equal(doc.get("arr"), np.zeros(3))


def test_push_creates_and_appends(doc: DataStoreDocument) -> None:
    doc.push("log.lines", "first")
    doc.push("log.lines", {"second": 2})
    assert doc.get("log.lines") == ["first", {"second": 2}]


def test_push_onto_a_value_that_is_not_a_list_fails(doc: DataStoreDocument) -> None:
    doc.set("n", 5)
    with pytest.raises(StoreError, match=r"'n'.*holds a int, not a list"):
        doc.push("n", 1)
    with pytest.raises(StoreError, match=r"holds a int, not a list"):
        doc.extend("n", [1, 2])
    assert doc.get("n") == 5


def test_extend_appends_many_values(doc: DataStoreDocument) -> None:
    doc.push("values", -1)
    doc.extend("values", (i for i in range(1000)))
    assert doc.get("values") == [-1, *range(1000)]
    doc.extend("empty", [])
    assert doc.get("empty") == []


def test_extend_is_atomic_under_concurrent_writers(doc: DataStoreDocument) -> None:
    threads, batches, size = 6, 8, 40

    def write(worker: int) -> None:
        for batch in range(batches):
            doc.extend("values", [(worker, batch, i) for i in range(size)])

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    values = doc.get("values")
    assert len(values) == threads * batches * size
    # Atomic: every batch is one contiguous run of its values, in order.
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        assert chunk == [(*chunk[0][:2], i) for i in range(size)]


def test_concurrent_pushes_are_all_kept(doc: DataStoreDocument) -> None:
    def write(worker: int) -> None:
        for i in range(25):
            doc.push("values", worker * 100 + i)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert sorted(doc.get("values")) == sorted(w * 100 + i for w in range(4) for i in range(25))


def test_values_are_copies(doc: DataStoreDocument) -> None:
    original = {"items": [1, 2]}
    doc.set("d", original)
    original["items"].append(3)
    assert doc.get("d") == {"items": [1, 2]}
    returned = doc.get("d")
    returned["items"].append(4)
    assert doc.get("d") == {"items": [1, 2]}
    pushed = [1]
    doc.push("l", pushed)
    pushed.append(2)
    assert doc.get("l") == [[1]]
    array = np.arange(3)
    doc.set("arr", array)
    array[0] = 99
    doc.get("arr")[1] = 99
    np.testing.assert_array_equal(doc.get("arr"), np.arange(3))


def test_numpy_array_round_trip(doc: DataStoreDocument) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    doc.set("image", array)
    doc.set("nested", {"name": "run", "frames": [array, array * 2]})
    doc.push("stack", array)
    got = doc.get("image")
    assert got.dtype == np.float32 and got.shape == (3, 4)
    np.testing.assert_array_equal(got, array)
    nested = doc.get("nested")
    assert nested["name"] == "run"
    np.testing.assert_array_equal(nested["frames"][1], array * 2)
    np.testing.assert_array_equal(doc.get("stack")[0], array)


def test_array_larger_than_16_mb_round_trip(doc: DataStoreDocument) -> None:
    array = np.arange(2_300_000, dtype=np.float64)  # 18.4 MB
    assert array.nbytes > 16 * 1024 * 1024
    doc.set("big", array)
    doc.push("bigs", array)
    np.testing.assert_array_equal(doc.get("big"), array)
    np.testing.assert_array_equal(doc.get("bigs")[0], array)


def test_bytes_sets_tuples_and_odd_dicts_round_trip(doc: DataStoreDocument) -> None:
    values = {
        "bytes": b"\x00\xffraw",
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "tuple": (1, "two", (3.0,)),
        "int keys": {1: "one", (2, 3): "pair"},
        "odd names": {"a.b": 1, "$x": 2, "__lightflow__": 3, "": 4},
        "huge int": 2**70,
        "complex": 1 + 2j,
    }
    for key, value in values.items():
        doc.set(key.replace(" ", "_"), value)
    for key, value in values.items():
        got = doc.get(key.replace(" ", "_"))
        assert got == value
        assert type(got) is type(value)
    assert doc.get("tuple")[2] == (3.0,)


def test_datetimes_round_trip(doc: DataStoreDocument) -> None:
    values = [
        datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=timezone.utc),
        datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=timezone.utc),
        datetime(2024, 5, 1, 12, 30, 0, 123456),
        datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
    ]
    for i, value in enumerate(values):
        doc.set(f"t{i}", value, section=META)
    for i, value in enumerate(values):
        got = doc.get(f"t{i}", section=META)
        assert got == value
        assert got.tzinfo == value.tzinfo and got.microsecond == value.microsecond


def test_unpicklable_value_fails_with_store_error(doc: DataStoreDocument) -> None:
    with pytest.raises(StoreError, match=r"cannot store the lock at 'lock'"):
        doc.set("lock", threading.Lock())
    assert doc.get("lock") is None


def test_invalid_keys_and_sections_fail(doc: DataStoreDocument) -> None:
    for key in ["", "a..b", ".a", "a.", "$set", "a.$b"]:
        with pytest.raises(StoreError, match="invalid store key"):
            doc.set(key, 1)
        with pytest.raises(StoreError, match="invalid store key"):
            doc.get(key)
    with pytest.raises(StoreError, match="unknown store section 'log'"):
        doc.set("a", 1, section="log")


def test_unknown_run_fails(store: DataStore) -> None:
    with pytest.raises(StoreError, match="no data store document for run 'nope'"):
        store.get("nope")
    assert not store.exists("nope")


def test_add_with_explicit_workflow_id(store: DataStore) -> None:
    assert store.add(workflow_id="run-1") == "run-1"
    assert store.exists("run-1")
    assert store.get("run-1").workflow_id == "run-1"
    with pytest.raises(StoreError, match="run 'run-1' already exists"):
        store.add(workflow_id="run-1")
    generated = {store.add() for _ in range(3)}
    assert len(generated) == 3 and all(store.exists(run) for run in generated)


def test_add_with_payload(store: DataStore) -> None:
    array = np.arange(5)
    payload = {"meta": {"name": "wf", "started": {"by": "me"}}, "data": {"x": 1, "arr": array}}
    doc = store.get(store.add(payload))
    assert doc.get("name", section=META) == "wf"
    assert doc.get("started.by", section=META) == "me"
    assert doc.get("x") == 1 and doc.get("name") is None
    np.testing.assert_array_equal(doc.get("arr"), array)
    payload["meta"]["started"]["by"] = "changed"
    assert doc.get("started.by", section=META) == "me"
    only_data = store.get(store.add({"data": {"y": 2}}))
    assert only_data.get("y") == 2 and only_data.get("y", section=META) is None


@pytest.mark.parametrize(
    "payload",
    [{"other": {}}, {"data": [1]}, {"data": {"a.b": 1}}, ["data"]],
    ids=["unknown-section", "section-not-dict", "dotted-key", "not-a-dict"],
)
def test_add_with_invalid_payload_fails(store: DataStore, payload: object) -> None:
    with pytest.raises(StoreError, match=r"invalid (store )?payload"):
        store.add(payload)  # type: ignore[arg-type]


def test_remove_deletes_the_run(store: DataStore) -> None:
    run = store.add({"data": {"x": 1}}, workflow_id="gone")
    doc = store.get(run)
    doc.set("big", np.ones(300_000))  # 2.4 MB: out of the document on MongoDB
    other = store.get(store.add({"data": {"kept": True}}))
    store.remove(run)
    assert not store.exists(run)
    with pytest.raises(StoreError, match="no data store document for run 'gone'"):
        store.get(run)
    with pytest.raises(StoreError, match="no data store document for run 'gone'"):
        doc.set("x", 2)
    with pytest.raises(StoreError, match="no data store document for run 'gone'"):
        doc.get("x")
    with pytest.raises(StoreError, match="no data store document for run 'gone'"):
        doc.push("l", 1)
    assert other.get("kept") is True
    # The id is free again and the new document starts empty.
    assert store.get(store.add(workflow_id=run)).get("x") is None
    store.remove("never-existed")


def test_memory_store_is_cheap() -> None:
    """A chain of 10 tasks doing 20 set/push calls each must take milliseconds."""
    store = MemoryDataStore()
    doc = store.get(store.add())
    start = time.perf_counter()
    for task in range(10):
        for i in range(10):
            doc.set(f"tasks.t{task}.v{i}", {"value": i, "tags": ["a", "b"]})
            doc.push(f"tasks.t{task}.log", f"step {i}")
    assert time.perf_counter() - start < 0.1


# -- set_many: several keys in one atomic update -----------------------------------------
def test_set_many_stores_every_key(store) -> None:
    document = store.get(store.add())
    document.set("log.main.tasks.a", {"status": "succeeded"})
    document.set_many({"log.main.start_time": 1.5, "log.main.status": "running", "top": [1, 2]})
    assert document.get("log.main.start_time") == 1.5
    assert document.get("log.main.status") == "running"
    assert document.get("top") == [1, 2]
    # siblings written earlier are kept: only the named keys change
    assert document.get("log.main.tasks.a") == {"status": "succeeded"}


def test_set_many_in_the_meta_section_leaves_data_alone(store) -> None:
    document = store.get(store.add())
    document.set_many({"status": "running"}, section=META)
    assert document.get("status", section=META) == "running"
    assert document.get("status") is None


def test_set_many_through_a_non_dict_changes_nothing(store) -> None:
    document = store.get(store.add())
    document.set("flat", 5)
    with pytest.raises(StoreError, match="flat"):
        document.set_many({"fine": 1, "flat.inner": 2})
    assert document.get("fine") is None
    assert document.get("flat") == 5


def test_set_many_round_trips_values_of_any_type(store) -> None:
    document = store.get(store.add())
    array = np.arange(10)
    document.set_many({"a.array": array, "a.tuple": (1, "x")})
    assert np.array_equal(document.get("a.array"), array)
    assert document.get("a.tuple") == (1, "x")


def test_keys_list_the_names_under_a_key_in_order(doc: DataStoreDocument) -> None:
    doc.set("scan.id", 7)
    doc.set("scan.frames", np.arange(10))
    doc.set("beamline", "p11")
    doc.set("big", np.zeros(3_000_000))  # out of the document on MongoDB
    doc.set("log.main.duration", 1.5, section=META)
    assert doc.keys() == ["scan", "beamline", "big"]
    assert doc.keys("scan") == ["id", "frames"]
    assert doc.keys("scan.id") == []  # a value, not a mapping
    assert doc.keys("scan.frames") == []
    assert doc.keys("big") == []
    assert doc.keys("absent") == [] and doc.keys("absent.deeper") == []
    assert doc.keys(section=META) == ["log"]
    assert doc.keys("log.main", section=META) == ["duration"]
    with pytest.raises(StoreError, match="invalid store key"):
        doc.keys("a..b")


# -- the 1.x META layout of task records -------------------------------------------------
def test_task_records_read_back_at_every_level_of_the_1x_layout(doc: DataStoreDocument) -> None:
    doc.set_many({"log.main.start_time": "t0", "log.main.status": "running"}, section=META)
    doc.set_many(
        {
            "log.main.tasks.a": {"status": "running", "worker": "w1"},
            "log.main.tasks.b": {"status": "skipped"},
            "log.side:2.tasks.c": {"status": "running"},
        },
        section=META,
    )
    doc.set_many(
        {"log.main.tasks.a": {"status": "succeeded", "duration": 1.5}, "status": "running"},
        section=META,
    )
    doc.set("log.main.tasks.b.note", "kept", section=META)
    main_tasks = {
        "a": {"status": "succeeded", "duration": 1.5},  # the whole record replaced
        "b": {"status": "skipped", "note": "kept"},
    }
    assert doc.get("log.main.tasks.a.duration", section=META) == 1.5
    assert doc.get("log.main.tasks.a", section=META) == main_tasks["a"]
    assert doc.get("log.main.tasks.zzz", "none", section=META) == "none"
    assert doc.get("log.main.tasks.a.zzz", "none", section=META) == "none"
    assert doc.get("log.main.tasks", section=META) == main_tasks
    assert doc.get("log.main", section=META) == {
        "start_time": "t0",
        "status": "running",
        "tasks": main_tasks,
    }
    assert doc.get("log", section=META) == {
        "main": {"start_time": "t0", "status": "running", "tasks": main_tasks},
        "side:2": {"tasks": {"c": {"status": "running"}}},
    }
    assert doc.get("log.other", section=META) is None
    assert doc.get("status", section=META) == "running"
    assert doc.keys("log", section=META) == ["main", "side:2"]
    assert doc.keys("log.main", section=META) == ["start_time", "status", "tasks"]
    assert doc.keys("log.main.tasks", section=META) == ["a", "b"]
    assert doc.keys("log.main.tasks.b", section=META) == ["status", "note"]
    doc.push("log.main.tasks.b.seen", 1, section=META)
    doc.extend("log.main.tasks.b.seen", [2, 3], section=META)
    assert doc.get("log.main.tasks.b.seen", section=META) == [1, 2, 3]
    assert doc.get("log.main.tasks", section=DATA) is None  # META only


def test_task_records_of_a_removed_run_are_gone(store: DataStore) -> None:
    run_id = store.add()
    store.get(run_id).set("log.main.tasks.a", {"status": "running"}, section=META)
    store.remove(run_id)
    with pytest.raises(StoreError, match="no data store document"):
        store.get(run_id)
    again = store.get(store.add(workflow_id=run_id))
    assert again.get("log", section=META) is None  # a new run of the same id starts empty
    store.remove(run_id)
    with pytest.raises(StoreError, match="no data store document"):  # nor brings it back
        again.set("log.main.tasks.a", {"status": "running"}, section=META)
    assert not store.exists(run_id)
