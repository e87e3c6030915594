"""Per-task META records of runs in the MongoDB store: one document per task.

The 1.x META layout keeps each task's record at ``log.<dag>.tasks.<task>`` in the run's
document. A run of 100,000 tasks would grow that document past MongoDB's 16 MB limit,
and every update of a document costs time in proportion to its size, so writing the
records of a wide run one batch after another was quadratic. The MongoDB store keeps
each task's record in a document of its own instead, in the collection
``<collection>_tasks``::

    {_id: '["<run id>", "<dag>", "<task>"]', run: <run id>, dag: <dag>, task: <task>,
     entry: {start_time, end_time, duration, status, worker, ...}}

and the run's document keeps everything else. The store API reads and writes the 1.x
keys as before (:class:`~lightflow.store.mongo.MongoDataStoreDocument` routes a key at
or below ``log.<dag>.tasks.<task>`` here and assembles ``log``, ``log.<dag>`` and
``log.<dag>.tasks`` from both places), so workflows and tools reading META through the
store see the same layout. Values are stored in the store's encoded form (tagged
pickles, GridFS references), which :class:`TaskRecords` neither makes nor reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def task_key(parts: list[str]) -> tuple[str, str, list[str]] | None:
    """``(dag, task, rest)`` when META key parts are a task's record or lie inside it."""
    if len(parts) >= 4 and parts[0] == "log" and parts[2] == "tasks":
        return parts[1], parts[3], parts[4:]
    return None


def holds_records(parts: list[str]) -> bool:
    """Whether META key parts are a place that holds task records: ``log``, ``log.<dag>``
    or ``log.<dag>.tasks``."""
    if not parts or parts[0] != "log":
        return False
    return len(parts) < 3 or (len(parts) == 3 and parts[2] == "tasks")


def with_records(stored: Any, parts: list[str], records: dict[str, dict[str, Any]]) -> Any:
    """The stored form at META ``parts`` (a place :func:`holds_records`) with the records.

    ``stored`` is what the run's document holds there (``missing`` if nothing: the
    value is returned as it is when there are no records either).
    """
    if not records:
        return stored
    base = stored if isinstance(stored, dict) else {}
    if len(parts) == 1:  # log: dag -> {..., tasks: {...}}
        for dag, tasks in records.items():
            _tasks_of(base, dag).update(tasks)
    elif len(parts) == 2:  # log.<dag>: {..., tasks: {...}}
        _tasks_of({parts[1]: base}, parts[1]).update(records.get(parts[1], {}))
    else:  # log.<dag>.tasks
        base.update(records.get(parts[1], {}))
    return base


def _tasks_of(log: dict[str, Any], dag: str) -> dict[str, Any]:
    entry = log[dag] = log[dag] if isinstance(log.get(dag), dict) else {}
    tasks = entry["tasks"] = entry["tasks"] if isinstance(entry.get("tasks"), dict) else {}
    return tasks


def record_id(run_id: str, dag: str, task: str) -> str:
    """The ``_id`` of a task's record: unambiguous whatever the names contain."""
    return json.dumps([run_id, dag, task])


class TaskRecords:
    """The collection of per-task records of one store.

    Args:
        collection: The pymongo collection (``<collection>_tasks``); indexed on ``run``
            so that a run's records are found and removed without a scan.
    """

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        collection.create_index("run")

    def set_many(self, run_id: str, values: Iterable[tuple[str, str, list[str], Any]]) -> None:
        """Write ``(dag, task, rest, stored form)`` values in one bulk write.

        ``rest`` empty sets the whole record, else a field inside it.
        """
        from pymongo import UpdateOne

        updates: dict[str, dict[str, Any]] = {}
        for dag, task, rest, value in values:
            fields = updates.setdefault(record_id(run_id, dag, task), {})
            if not rest:
                fields.clear()  # the whole record replaces what came before in this batch
                fields["entry"] = value
            elif isinstance(fields.get("entry"), dict):  # a field of a record set whole
                _place(fields["entry"], rest, value)
            else:
                fields[".".join(["entry", *rest])] = value
        operations = []
        for identity, fields in updates.items():
            _run, dag, task = json.loads(identity)
            names = {"run": run_id, "dag": dag, "task": task}
            operations.append(
                UpdateOne({"_id": identity}, {"$set": {**names, **fields}}, upsert=True)
            )
        if operations:
            self._collection.bulk_write(operations, ordered=True)

    def push(self, run_id: str, dag: str, task: str, rest: list[str], values: list[Any]) -> None:
        """Append stored forms to the list at ``rest`` inside a task's record."""
        path = ".".join(["entry", *rest])
        names = {"run": run_id, "dag": dag, "task": task}
        self._collection.update_one(
            {"_id": record_id(run_id, dag, task)},
            {"$push": {path: {"$each": values}}, "$set": names},
            upsert=True,
        )

    def entry(self, run_id: str, dag: str, task: str) -> dict[str, Any] | None:
        """A task's record (stored form), or ``None``."""
        raw = self._collection.find_one({"_id": record_id(run_id, dag, task)}, {"entry": 1})
        return None if raw is None else raw.get("entry", {})

    def of_run(self, run_id: str, dag: str | None = None) -> dict[str, dict[str, Any]]:
        """The records of a run (or of one of its DAGs): dag -> task -> stored form."""
        query: dict[str, Any] = {"run": run_id}
        if dag is not None:
            query["dag"] = dag
        records: dict[str, dict[str, Any]] = {}
        for raw in self._collection.find(query, {"dag": 1, "task": 1, "entry": 1}):
            records.setdefault(raw["dag"], {})[raw["task"]] = raw.get("entry", {})
        return records

    def remove(self, run_id: str) -> None:
        """Delete every record of a run."""
        self._collection.delete_many({"run": run_id})


def _place(entry: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``value`` at ``path`` inside a stored record, creating dicts on the way."""
    for part in path[:-1]:
        inner = entry.get(part)
        entry = entry[part] = inner if isinstance(inner, dict) else {}
    entry[path[-1]] = value
