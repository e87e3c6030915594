"""Views of a run's store document for the distributed engine.

A run's document is opened on first use through the process's cache
(:meth:`~lightflow.queue.cluster.Cluster.document`); :class:`RecordDocument` is how the
run record writes it, tolerating a run whose data was removed on purpose meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import StoreError
from ..store.base import DATA, DataStoreDocument

if TYPE_CHECKING:
    from .cluster import Cluster


class RunDocument(DataStoreDocument):
    """A run's store document, opened on first use through the process's cache.

    The base of the two views of a run's document the distributed engine hands out;
    they differ only in what happens before a read and around a write.
    """

    def __init__(self, cluster: Cluster, run_id: str) -> None:
        super().__init__(run_id)
        self._cluster = cluster

    def get(self, key: str, default: Any = None, *, section: str = DATA) -> Any:
        self._before_read(section)
        return self._open().get(key, default, section=section)

    def keys(self, key: str | None = None, *, section: str = DATA) -> list[str]:
        self._before_read(section)
        return self._open().keys(key, section=section)

    def set(self, key: str, value: Any, *, section: str = DATA) -> None:
        self._write(lambda document: document.set(key, value, section=section))

    def set_many(self, values: Mapping[str, Any], *, section: str = DATA) -> None:
        self._write(lambda document: document.set_many(values, section=section))

    def push(self, key: str, value: Any, *, section: str = DATA) -> None:
        self._write(lambda document: document.push(key, value, section=section))

    def extend(self, key: str, values: Iterable[Any], *, section: str = DATA) -> None:
        self._write(lambda document: document.extend(key, values, section=section))

    def _open(self) -> DataStoreDocument:
        return self._cluster.document(self.workflow_id)

    def _before_read(self, section: str) -> None:
        """Called before every read (nothing to do by default)."""

    def _write(self, write: Callable[[DataStoreDocument], None]) -> None:
        write(self._open())


class RecordDocument(RunDocument):
    """A run's document as the run record writes it.

    Records race with the end of a run: another lane, or the task that a stop request
    interrupted, may finish the run and drop its data while this job still records.
    A write to a document that no longer exists is therefore dropped (the run's data
    was removed on purpose); any other store error still raises.
    """

    def _write(self, write: Callable[[DataStoreDocument], None]) -> None:
        try:
            super()._write(write)
        except StoreError:
            if self._cluster.store.exists(self.workflow_id):
                raise
