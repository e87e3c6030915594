"""The embedded in-memory data store, and the key rules every backend shares.

``lightflow run`` without servers keeps each run's document in a
:class:`MemoryDataStore` inside the process. It follows the contract of
:mod:`lightflow.store.base` exactly as the MongoDB backend does, so a workflow that
works embedded works distributed: values are copied in and out (a task never shares a
mutable object with the store or with another task), and keys, sections and payloads
are checked by the same functions (:func:`split_key`, :func:`check_section`,
:func:`check_payload`), which live here, next to the reference implementation.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..exceptions import StoreError
from .base import DATA, META, DataStore, DataStoreDocument

SECTIONS = (META, DATA)

# Values of these types cannot change, so they are stored without copying them.
_IMMUTABLE = (str, int, float, bool, bytes, type(None), datetime)


def split_key(key: str) -> list[str]:
    """Split a dot-notation key into its names.

    Names are checked here rather than left to a backend so that a key that MongoDB
    would reject (an empty name, a leading ``$``) is refused by every backend alike.

    Raises:
        StoreError: The key is not a string or has an empty or ``$``-prefixed name.
    """
    parts = key.split(".") if isinstance(key, str) else []
    if not parts or any(not part or part.startswith("$") for part in parts):
        raise StoreError(
            f"invalid store key {key!r}: use names joined by dots, none empty and none "
            "starting with '$' (e.g. 'result.images')"
        )
    return parts


def check_section(section: str) -> None:
    """Refuse a section other than ``meta`` and ``data``.

    Raises:
        StoreError: ``section`` is not a known section.
    """
    if section not in SECTIONS:
        raise StoreError(f"unknown store section {section!r}: use {META!r} or {DATA!r}")


def check_payload(payload: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Return the initial sections of a new document from ``add``'s ``payload``.

    Raises:
        StoreError: The payload is not ``{'meta': {...}, 'data': {...}}`` (both
            optional) or a top-level key is not a single valid name.
    """
    payload = {} if payload is None else payload
    if not isinstance(payload, dict) or not set(payload) <= set(SECTIONS):
        raise StoreError(
            f"invalid store payload {payload!r:.80}: use a dict with the keys "
            f"{META!r} and/or {DATA!r}, each holding a dict"
        )
    sections: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        content = payload.get(section, {})
        if not isinstance(content, dict):
            raise StoreError(
                f"invalid store payload: the {section!r} section is a "
                f"{type(content).__name__}; give it as a dict"
            )
        for key in content:
            if len(split_key(key)) != 1:
                raise StoreError(
                    f"invalid payload key {key!r} in the {section!r} section: give "
                    "nested values as nested dicts, not as dotted keys"
                )
        sections[section] = content
    return sections


def missing_run(workflow_id: str) -> StoreError:
    """The error for an operation on a run that has no document."""
    return StoreError(
        f"no data store document for run '{workflow_id}'; check the run id, or the run "
        "was removed (e.g. it ran without keeping its data)"
    )


def existing_run(workflow_id: str) -> StoreError:
    """The error for ``add`` with the id of a run that already has a document."""
    return StoreError(
        f"a data store document for run '{workflow_id}' already exists; pass another "
        "workflow_id or remove the old run first"
    )


def _copy(value: Any, key: str) -> Any:
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict and all(type(item) in _IMMUTABLE for item in value.values()):
        return dict(value)  # a run record's entry: no deepcopy machinery needed
    try:
        return copy.deepcopy(value)
    except Exception as error:
        raise StoreError(
            f"cannot store the {type(value).__name__} at '{key}': it cannot be copied "
            f"({error}); store plain data instead"
        ) from error


class MemoryDataStore(DataStore):
    """Run documents in a dict guarded by one lock (the embedded engine's store).

    One lock for all documents is enough: every operation is a few dict lookups plus a
    copy, so contention is negligible next to the work tasks do, and the lock makes
    each ``set``/``push``/``extend`` atomic as the contract requires. The store holds
    a lock and is never pickled; tasks reach it through the threads of one process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str, dict[str, dict[str, Any]]] = {}

    def add(self, payload: dict[str, Any] | None = None, *, workflow_id: str | None = None) -> str:
        """Create a run document and return its id (see :meth:`DataStore.add`).

        Raises:
            StoreError: The payload is invalid or the id is taken.
        """
        sections = {
            section: _copy(content, section) for section, content in check_payload(payload).items()
        }
        workflow_id = uuid.uuid4().hex if workflow_id is None else workflow_id
        with self._lock:
            if workflow_id in self._documents:
                raise existing_run(workflow_id)
            self._documents[workflow_id] = sections
        return workflow_id

    def get(self, workflow_id: str) -> MemoryDataStoreDocument:
        """Return the document of a run.

        Raises:
            StoreError: The run has no document.
        """
        with self._lock:
            if workflow_id not in self._documents:
                raise missing_run(workflow_id)
        return MemoryDataStoreDocument(self, workflow_id)

    def exists(self, workflow_id: str) -> bool:
        """Whether a document for the run exists."""
        with self._lock:
            return workflow_id in self._documents

    def remove(self, workflow_id: str) -> None:
        """Delete a run's document (nothing happens if it does not exist)."""
        with self._lock:
            self._documents.pop(workflow_id, None)

    def _section(self, workflow_id: str, section: str) -> dict[str, Any]:
        """The live section dict of a run; the caller must hold the lock."""
        try:
            return self._documents[workflow_id][section]
        except KeyError:
            raise missing_run(workflow_id) from None


class MemoryDataStoreDocument(DataStoreDocument):
    """The document of one run in a :class:`MemoryDataStore`."""

    def __init__(self, store: MemoryDataStore, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self._store = store

    def keys(self, key: str | None = None, *, section: str = DATA) -> list[str]:
        """The names under ``key`` (top level if ``None``); empty if it is no dict."""
        parts = [] if key is None else split_key(key)
        check_section(section)
        with self._store._lock:
            current: Any = self._store._section(self.workflow_id, section)
            for part in parts:
                if type(current) is not dict or part not in current:
                    return []
                current = current[part]
            return list(current) if type(current) is dict else []

    def get(self, key: str, default: Any = None, *, section: str = DATA) -> Any:
        """Return a copy of the value at ``key``, or ``default`` if it is absent."""
        parts = split_key(key)
        check_section(section)
        with self._store._lock:
            current: Any = self._store._section(self.workflow_id, section)
            for part in parts:
                if type(current) is not dict or part not in current:
                    return default
                current = current[part]
            # Copied under the lock: a concurrent push must not change the list mid-copy.
            return _copy(current, key)

    def set(self, key: str, value: Any, *, section: str = DATA) -> None:
        """Store a copy of ``value`` at ``key``, creating intermediate dicts.

        Raises:
            StoreError: A name on the way to ``key`` holds something that is not a dict.
        """
        parts = split_key(key)
        check_section(section)
        value = _copy(value, key)
        with self._store._lock:
            parent = self._parent(parts, key, section, "set")
            parent[parts[-1]] = value

    def set_many(self, values: Mapping[str, Any], *, section: str = DATA) -> None:
        """Store copies of several values in one step (atomic under the store's lock)."""
        check_section(section)
        items = [(split_key(key), key, _copy(value, key)) for key, value in values.items()]
        with self._store._lock:
            for parts, key, _value in items:  # all checked before anything changes
                self._parent(parts, key, section, "set", create=False)
            for parts, key, value in items:
                self._parent(parts, key, section, "set")[parts[-1]] = value

    def push(self, key: str, value: Any, *, section: str = DATA) -> None:
        """Append a copy of ``value`` to the list at ``key`` (created if absent).

        Raises:
            StoreError: ``key`` holds something that is not a list.
        """
        self._append(key, [_copy(value, key)], section, "push to")

    def extend(self, key: str, values: Iterable[Any], *, section: str = DATA) -> None:
        """Append copies of all ``values`` to the list at ``key`` at once.

        Raises:
            StoreError: ``key`` holds something that is not a list.
        """
        self._append(key, [_copy(value, key) for value in values], section, "extend")

    def _append(self, key: str, values: list[Any], section: str, verb: str) -> None:
        parts = split_key(key)
        check_section(section)
        with self._store._lock:
            parent = self._parent(parts, key, section, verb)
            target = parent.setdefault(parts[-1], [])
            if type(target) is not list:
                raise StoreError(
                    f"cannot {verb} '{key}' in the {section} section of run "
                    f"'{self.workflow_id}': it holds a {type(target).__name__}, not a "
                    "list; set it to a list first"
                )
            target.extend(values)

    def _parent(
        self, parts: list[str], key: str, section: str, verb: str, *, create: bool = True
    ) -> dict[str, Any]:
        """The dict that holds the last name of ``key``, created as needed (locked).

        With ``create=False`` nothing is created: the path is only checked.
        """
        current = self._store._section(self.workflow_id, section)
        for depth, part in enumerate(parts[:-1], start=1):
            current = current.setdefault(part, {}) if create else current.get(part, {})
            if type(current) is not dict:
                raise not_a_dict(
                    verb, key, section, self.workflow_id, parts[:depth], type(current).__name__
                )
        return current


def not_a_dict(
    verb: str, key: str, section: str, workflow_id: str, prefix: list[str], kind: str
) -> StoreError:
    """The error for a key that passes through a value that is not a dict."""
    where = ".".join(prefix)
    return StoreError(
        f"cannot {verb} '{key}' in the {section} section of run '{workflow_id}': "
        f"'{where}' holds a {kind}, not a dict; store '{where}' as a whole instead"
    )
