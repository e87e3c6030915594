"""The data store contract: one document per workflow run, shared by all its tasks.

A document has two sections (see :class:`~lightflow.models.DataStoreDocumentSection`):
``meta`` (what Lightflow records about the run) and ``data`` (what tasks and workflow
parameters put there). Keys use dot notation (``'a.b.c'`` addresses nested dicts).
Every backend (embedded in-memory, MongoDB) implements exactly these semantics, checked
by one contract test suite (``tests/store/test_contract.py``):

* ``get`` of a missing key returns ``default``; values come back as independent copies
  (changing a returned list does not change the store).
* ``set`` creates intermediate dicts; ``push`` appends one value to a list (creating
  it); ``extend`` appends several values in one atomic operation.
* Values of any picklable type round-trip (numpy arrays, DataFrames, bytes, sets);
  large values are stored out of the document (GridFS on MongoDB) transparently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from ..models.datastore import DataStoreDocumentSection

DATA = DataStoreDocumentSection.Data
META = DataStoreDocumentSection.Meta


class DataStoreDocument(ABC):
    """The store document of one workflow run (what tasks receive as ``store``)."""

    def __init__(self, workflow_id: str) -> None:
        self._workflow_id = workflow_id

    @property
    def workflow_id(self) -> str:
        """The id of the run this document belongs to."""
        return self._workflow_id

    @abstractmethod
    def get(self, key: str, default: Any = None, *, section: str = DATA) -> Any:
        """Return the value at dot-notation ``key``, or ``default`` if it is absent."""

    @abstractmethod
    def keys(self, key: str | None = None, *, section: str = DATA) -> list[str]:
        """The names under ``key`` (the section's top level if ``None``), in order.

        Empty when ``key`` is absent or its value is not a dict. Lets a reader browse
        a run's store (the REST API's read-only view) without fetching every value:
        large values stay where they are until asked for by their key.
        """

    @abstractmethod
    def set(self, key: str, value: Any, *, section: str = DATA) -> None:
        """Store ``value`` at ``key``, replacing what was there."""

    def set_many(self, values: Mapping[str, Any], *, section: str = DATA) -> None:
        """Store several keys (dot notation, none inside another) in one atomic update.

        Not in the 1.x API: the run record uses it so that a DAG's or run's fields cost
        one store round trip instead of one per field.
        """
        for key, value in values.items():
            self.set(key, value, section=section)

    @abstractmethod
    def push(self, key: str, value: Any, *, section: str = DATA) -> None:
        """Append ``value`` to the list at ``key`` (created if absent)."""

    @abstractmethod
    def extend(self, key: str, values: Iterable[Any], *, section: str = DATA) -> None:
        """Append all ``values`` to the list at ``key`` in one atomic update."""


class DataStore(ABC):
    """A collection of run documents."""

    @abstractmethod
    def add(self, payload: dict[str, Any] | None = None, *, workflow_id: str | None = None) -> str:
        """Create a run document and return its id.

        Args:
            payload: Initial ``{'meta': {...}, 'data': {...}}`` content.
            workflow_id: Use this id instead of generating one.
        """

    @abstractmethod
    def get(self, workflow_id: str) -> DataStoreDocument:
        """Return the document of a run (raises ``StoreError`` if it does not exist)."""

    @abstractmethod
    def exists(self, workflow_id: str) -> bool:
        """Whether a document for the run exists."""

    @abstractmethod
    def remove(self, workflow_id: str) -> None:
        """Delete a run's document and everything stored out of it."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections; the store must not be used afterwards."""
