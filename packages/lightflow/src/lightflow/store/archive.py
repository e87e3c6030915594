"""The history of finished runs in the MongoDB store: their events and their log lines.

While a run goes on, its events and log lines are in Redis, where followers read them
as they come. Once it has finished they are moved here
(:mod:`lightflow.queue.history`), so the state server keeps about a kilobyte per
finished run however wide it was, and ``workflow status``, ``workflow logs`` and the
REST API still show all of it. A run's items of one kind (``events``, ``logs``) are
kept in order, :data:`CHUNK` per document, each chunk a zlib-compressed JSON list of
the items' text, in the collection ``<collection>_history``::

    {_id: '["<run id>", "events", 3]', run: <run id>, kind: 'events', chunk: 3,
     count: 2000, data: <binary>}

The history outlives the run's data (``--keep-data`` or not): it goes when the run is
pruned from the state server (``signal.keep_finished_runs``, ``workflow prune``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

#: Items per document: a chunk of events is some 500 KB before compression.
CHUNK = 2000


class RunArchive:
    """The archived histories of one store's runs.

    Args:
        collection: The pymongo collection (``<collection>_history``), indexed on
            ``run`` so that a run's chunks are found and removed without a scan.
    """

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        collection.create_index("run")

    def write(self, run_id: str, kind: str, items: Sequence[str]) -> None:
        """Keep a run's items of ``kind``, in order (again: the same chunks replaced)."""
        from pymongo import ReplaceOne

        operations = []
        for chunk, start in enumerate(range(0, len(items), CHUNK)):
            part = list(items[start : start + CHUNK])
            document = {
                "_id": _chunk_id(run_id, kind, chunk),
                "run": run_id,
                "kind": kind,
                "chunk": chunk,
                "count": len(part),
                "data": zlib.compress(json.dumps(part).encode(), 6),
            }
            operations.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
        if operations:
            self._collection.bulk_write(operations, ordered=True)

    def read(self, run_id: str, kind: str, start: int = 0, stop: int | None = None) -> list[str]:
        """A run's items of ``kind`` from position ``start`` to ``stop`` (the end if None)."""
        query: dict[str, Any] = {"run": run_id, "kind": kind, "chunk": {"$gte": start // CHUNK}}
        if stop is not None:
            if stop <= start:
                return []
            query["chunk"]["$lte"] = (stop - 1) // CHUNK
        items: list[str] = []
        first = None
        for document in self._collection.find(query).sort("chunk", 1):
            if first is None:
                first = document["chunk"] * CHUNK
            items.extend(json.loads(zlib.decompress(document["data"])))
        if first is None:
            return []
        return items[start - first : None if stop is None else stop - first]

    def remove(self, run_ids: Iterable[str]) -> None:
        """Delete the histories of runs."""
        run_ids = list(run_ids)
        if run_ids:
            self._collection.delete_many({"run": {"$in": run_ids}})


def _chunk_id(run_id: str, kind: str, chunk: int) -> str:
    return json.dumps([run_id, kind, chunk])
