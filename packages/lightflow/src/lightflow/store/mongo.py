"""The MongoDB data store: one document per run, large values in GridFS.

A run is the document ``{_id: workflow_id, meta: {...}, data: {...}}`` in one collection
(``workflows`` by default). ``set`` is a ``$set`` on the dot path ``<section>.<key>``,
``push`` a ``$push`` and ``extend`` a ``$push`` with ``$each``, so each is one atomic
update however many workers write to the run at once.

How values are stored, so that other tools can read the run and any value round-trips:

* Plain values (``str``, ``int`` within 64 bits, ``float``, ``bool``, ``None``, UTC
  datetimes with whole milliseconds, and lists and string-keyed dicts of these) are
  stored natively.
* Anything else (numpy arrays, DataFrames, bytes, sets, tuples, other objects, dicts
  with non-string keys) is pickled with cloudpickle into the tagged subdocument
  ``{__lightflow__: 'pickle', type: ..., data: <binary>}``. A datetime that BSON would
  truncate (microseconds, a time zone other than UTC, no time zone) is pickled as well
  and keeps its instant readable in the extra field ``at``.
* A value whose stored form exceeds :data:`GRIDFS_THRESHOLD` is pickled whole into a
  GridFS file (bucket ``<collection>_fs``) whose metadata names the run and key; the
  document holds ``{__lightflow__: 'gridfs', type: ..., file_id: ..., size: ...}``.
  This keeps runs far below MongoDB's 16 MB document limit and lets single values be
  larger than it. Names inside such a value cannot be addressed with dot keys.

``get`` decodes all of this transparently, also inside lists and dicts. Overwriting a
GridFS-backed value deletes its file; ``remove`` deletes the run's document, its task
records and every GridFS file of the run. pymongo is imported only when a store is
created, so importing :mod:`lightflow.store` stays cheap for the embedded engine.

Two kinds of a run's records live beside its document, so that no document grows with
the width of a run: each task's META record (``log.<dag>.tasks.<task>``) is a document
of its own (:mod:`lightflow.store.task_records`; the keys read and write as in 1.x),
and the events and log lines of a finished run are archived in chunks
(:mod:`lightflow.store.archive`, :attr:`MongoDataStore.archive`).
"""

from __future__ import annotations

import contextlib
import pickle
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import timezone
from typing import Any

from ..exceptions import StoreError
from .archive import RunArchive
from .base import DATA, META, DataStore, DataStoreDocument
from .memory import (
    check_payload,
    check_section,
    existing_run,
    missing_run,
    not_a_dict,
    split_key,
)
from .mongo_codec import (
    GRIDFS_THRESHOLD,
    MISSING,
    TAG,
    driver_reason,
    dumps,
    encode_inline,
    file_ids,
    is_tag,
    one_line,
    stored_kind,
    too_large,
    type_name,
    uri_hosts,
    walk,
)
from .task_records import TaskRecords, holds_records, task_key, with_records

# Server error codes for an update whose path runs through a non-dict (28) or that
# pushes onto a non-list (2): answered with the same message as the memory store.
_PATH_ERRORS = (2, 28)
# Server error codes for a document that would exceed 16 MB.
_TOO_LARGE_ERRORS = (10334, 17419)


class MongoDataStore(DataStore):
    """Run documents in a MongoDB collection (the distributed engine's store).

    Args:
        uri: A ``mongodb://`` or ``mongodb+srv://`` URI; replaces ``host`` and ``port``.
            The other arguments still apply (they override the URI's options).
        host: Server host name.
        port: Server port.
        database: Database holding the collection and its GridFS bucket.
        username: User to log in as (no login if ``None``).
        password: The user's password.
        auth_source: Database that holds the user.
        auth_mechanism: e.g. ``SCRAM-SHA-256``; the server's default if ``None``.
        tls: Connect with TLS.
        tls_ca_file: CA bundle to check the server's certificate against.
        tls_certificate_key_file: Client certificate and key (PEM) for mutual TLS.
        tls_allow_invalid_certificates: Skip certificate checks (testing only).
        timeout: Seconds to wait for the server to be reachable and to answer a
            request; an unreachable server is reported after this long, never a hang.
        collection: Collection of the run documents.

    Raises:
        StoreError: The settings are invalid, the server cannot be reached within
            ``timeout`` or refuses the login.
    """

    def __init__(
        self,
        *,
        uri: str | None = None,
        host: str = "localhost",
        port: int = 27017,
        database: str = "lightflow",
        username: str | None = None,
        password: str | None = None,
        auth_source: str = "admin",
        auth_mechanism: str | None = None,
        tls: bool = False,
        tls_ca_file: str | None = None,
        tls_certificate_key_file: str | None = None,
        tls_allow_invalid_certificates: bool = False,
        timeout: float = 5.0,
        collection: str = "workflows",
    ) -> None:
        import gridfs
        import pymongo
        from bson.codec_options import CodecOptions

        self._timeout = float(timeout)
        self._address = uri_hosts(uri) if uri else f"{host}:{port}"
        milliseconds = self._timeout * 1000
        options: dict[str, Any] = {
            "serverSelectionTimeoutMS": milliseconds,
            "connectTimeoutMS": milliseconds,
            "socketTimeoutMS": milliseconds,
        }
        if username is not None:
            options.update(username=username, password=password, authSource=auth_source)
        if auth_mechanism is not None:
            options["authMechanism"] = auth_mechanism
        if tls:
            options["tls"] = True
        if tls_ca_file is not None:
            options["tlsCAFile"] = tls_ca_file
        if tls_certificate_key_file is not None:
            options["tlsCertificateKeyFile"] = tls_certificate_key_file
        if tls_allow_invalid_certificates:
            options["tlsAllowInvalidCertificates"] = True
        try:
            self._client: Any = pymongo.MongoClient(uri or host, port, **options)
        except (pymongo.errors.ConfigurationError, ValueError, TypeError) as error:
            reason = one_line(str(error)).rstrip(".")
            raise StoreError(
                f"invalid MongoDB settings for {self._address}: {reason}; check the store's "
                "uri and connection options"
            ) from None
        try:
            with self._errors("connect"):
                self._client.admin.command("ping")
        except StoreError:
            self._client.close()
            raise
        # Datetimes come back aware in UTC, as the records write them.
        db = self._client.get_database(
            database, codec_options=CodecOptions(tz_aware=True, tzinfo=timezone.utc)
        )
        self._collection = db[collection]
        self._bucket = gridfs.GridFSBucket(db, bucket_name=f"{collection}_fs")
        self._files = db[f"{collection}_fs.files"]
        with self._errors("open the collections of task records and run histories"):
            self._tasks = TaskRecords(db[f"{collection}_tasks"])
            #: Finished runs' events and log lines (see :mod:`lightflow.store.archive`).
            self.archive = RunArchive(db[f"{collection}_history"])

    def add(self, payload: dict[str, Any] | None = None, *, workflow_id: str | None = None) -> str:
        """Create a run document and return its id (see :meth:`DataStore.add`).

        Raises:
            StoreError: The payload is invalid, the id is taken or the server fails.
        """
        from pymongo.errors import DuplicateKeyError

        sections = check_payload(payload)
        workflow_id = uuid.uuid4().hex if workflow_id is None else workflow_id
        document: dict[str, Any] = {"_id": workflow_id}
        with self._errors(f"add run '{workflow_id}'"), self._uploads() as uploads:
            for section, content in sections.items():
                document[section] = {
                    key: self._encode(value, workflow_id, section, key, uploads)
                    for key, value in content.items()
                }
            try:
                self._collection.insert_one(document)
            except DuplicateKeyError:
                raise existing_run(workflow_id) from None
        return workflow_id

    def get(self, workflow_id: str) -> MongoDataStoreDocument:
        """Return the document of a run.

        Raises:
            StoreError: The run has no document or the server fails.
        """
        if not self.exists(workflow_id):
            raise missing_run(workflow_id)
        return MongoDataStoreDocument(self, workflow_id)

    def exists(self, workflow_id: str) -> bool:
        """Whether a document for the run exists."""
        with self._errors(f"look up run '{workflow_id}'"):
            return self._collection.find_one({"_id": workflow_id}, {"_id": 1}) is not None

    def remove(self, workflow_id: str) -> None:
        """Delete a run's document, its task records and all its GridFS files.

        A no-op if it is absent.
        """
        with self._errors(f"remove run '{workflow_id}'"):
            self._collection.delete_one({"_id": workflow_id})
            self._tasks.remove(workflow_id)
            files = self._files.find({"metadata.workflow_id": workflow_id}, {"_id": 1})
            self._delete_files(file["_id"] for file in files)

    def close(self) -> None:
        """Close the connections to the server."""
        self._client.close()

    # -- encoding ----------------------------------------------------------------------
    def _encode(
        self, value: Any, workflow_id: str, section: str, key: str, uploads: list[Any]
    ) -> Any:
        """Return the stored form of ``value``, uploading it to GridFS if it is large.

        Every new GridFS file id is appended to ``uploads`` so that the caller can delete
        the files if the update that would refer to them fails.
        """
        import bson

        path = f"{section}.{key}"
        encoded = encode_inline(value, key)
        if is_tag(encoded):
            blob = encoded["data"]
            if len(blob) <= GRIDFS_THRESHOLD:
                return encoded
        elif len(bson.encode({"v": encoded})) <= GRIDFS_THRESHOLD:
            return encoded
        else:
            blob = dumps(value, key)
        file_id = self._bucket.upload_from_stream(
            f"{workflow_id}/{path}", blob, metadata={"workflow_id": workflow_id, "key": path}
        )
        uploads.append(file_id)
        return {TAG: "gridfs", "type": type_name(value), "file_id": file_id, "size": len(blob)}

    def _decode(self, value: Any) -> Any:
        """Return the Python value of a stored form (raises ``NoFile`` if a file is gone)."""
        kind = type(value)
        if kind is list:
            return [self._decode(item) for item in value]
        if kind is not dict:
            return value
        tag = value.get(TAG)
        if tag is None:
            return {name: self._decode(item) for name, item in value.items()}
        if tag == "pickle":
            blob = value["data"]
        elif tag == "gridfs":
            blob = self._bucket.open_download_stream(value["file_id"]).read()
        else:
            raise StoreError(
                f"cannot read a stored value tagged {tag!r}: a newer Lightflow wrote it; "
                "upgrade Lightflow where the run is read"
            )
        try:
            return pickle.loads(blob)
        except Exception as error:
            raise StoreError(
                f"cannot read the stored {value.get('type', 'value')}: {one_line(str(error))}"
                "; install what it needs (e.g. the module defining it) where it is read"
            ) from error

    @contextlib.contextmanager
    def _uploads(self) -> Iterator[list[Any]]:
        """Collect GridFS uploads; delete them if the block fails.

        Deleting is best effort: a file left behind by a failing server still carries
        the run's id in its metadata, so ``remove`` deletes it with the run.
        """
        from pymongo.errors import PyMongoError

        uploads: list[Any] = []
        try:
            yield uploads
        except BaseException:
            with contextlib.suppress(PyMongoError):
                self._delete_files(uploads)
            raise

    def _delete_files(self, file_ids: Iterable[Any]) -> None:
        from gridfs.errors import NoFile

        for file_id in file_ids:
            # A concurrent overwrite or remove may have deleted it already.
            with contextlib.suppress(NoFile):
                self._bucket.delete(file_id)

    # -- errors ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn driver errors raised while doing ``action`` into one-line StoreErrors."""
        from bson.errors import InvalidDocument
        from pymongo.errors import (
            ConnectionFailure,
            DocumentTooLarge,
            OperationFailure,
            PyMongoError,
        )

        try:
            yield
        except ConnectionFailure as error:
            raise StoreError(
                f"cannot reach MongoDB at {self._address} within {self._timeout} s: "
                f"{driver_reason(error)}; check the store settings (uri/host/port) and that "
                "the server runs"
            ) from None
        except OperationFailure as error:
            if error.code == 18:
                raise StoreError(
                    f"MongoDB at {self._address} refused the login: {driver_reason(error)}; "
                    "check the store's username, password and auth_source"
                ) from None
            if error.code == 13:
                raise StoreError(
                    f"MongoDB at {self._address} refused to {action}: {driver_reason(error)}; "
                    "set the store's username and password"
                ) from None
            if error.code in _TOO_LARGE_ERRORS:
                raise too_large(action) from None
            raise StoreError(f"cannot {action}: {driver_reason(error)}") from None
        except InvalidDocument as error:
            if isinstance(error, DocumentTooLarge):
                raise too_large(action) from None
            raise StoreError(f"cannot {action}: {one_line(str(error))}") from None
        except PyMongoError as error:
            raise StoreError(f"cannot {action}: {driver_reason(error)}") from None


class MongoDataStoreDocument(DataStoreDocument):
    """The document of one run in a :class:`MongoDataStore`."""

    def __init__(self, store: MongoDataStore, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self._store = store

    def keys(self, key: str | None = None, *, section: str = DATA) -> list[str]:
        """The names under ``key`` (top level if ``None``); empty if it is no dict.

        Only the stored forms are read: values kept in GridFS are not fetched.
        """
        parts = [] if key is None else split_key(key)
        check_section(section)
        where = f"the {section} section of run '{self.workflow_id}'"
        with self._store._errors(f"list '{key or ''}' in {where}"):
            value = self._stored(key, parts, section)
        if type(value) is not dict or TAG in value:
            return []
        return list(value)

    def get(self, key: str, default: Any = None, *, section: str = DATA) -> Any:
        """Return the value at ``key`` (decoded), or ``default`` if it is absent."""
        from gridfs.errors import NoFile

        parts = split_key(key)
        check_section(section)
        store = self._store
        with store._errors(f"get '{key}' in the {section} section of run '{self.workflow_id}'"):
            # A GridFS file may vanish between reading the document and the file when
            # another worker overwrites the value; reading again returns the new value.
            for _ in range(2):
                value = self._stored(key, parts, section)
                if value is MISSING:
                    return default
                try:
                    return store._decode(value)
                except NoFile:
                    continue
            raise StoreError(
                f"cannot get '{key}' in the {section} section of run '{self.workflow_id}': "
                "its GridFS file is gone; it is being overwritten constantly or was "
                "deleted outside Lightflow"
            )

    def set(self, key: str, value: Any, *, section: str = DATA) -> None:
        """Store ``value`` at ``key``, creating intermediate dicts.

        A GridFS file of the value replaced (or of values nested in it) is deleted.

        Raises:
            StoreError: A name on the way to ``key`` holds something that is not a dict.
        """
        if section == META and task_key(split_key(key)) is not None:
            self.set_many({key: value}, section=section)
            return
        old = self._update("set", key, section, "$set", value)
        with self._store._errors(f"delete the value replaced at '{key}'"):
            self._store._delete_files(file_ids(old))

    def set_many(self, values: Mapping[str, Any], *, section: str = DATA) -> None:
        """Store several values with one ``$set``; GridFS files they replace are deleted.

        Raises:
            StoreError: A name on the way to a key holds something that is not a dict,
                or one key lies inside another.
        """
        from pymongo import ReturnDocument
        from pymongo.errors import OperationFailure

        check_section(section)
        items = [(key, split_key(key), value) for key, value in values.items()]
        if section == META:
            records = [(key, task_key(parts), value) for key, parts, value in items]
            items = [
                item
                for item, (_key, routed, _value) in zip(items, records, strict=True)
                if routed is None
            ]
            self._set_records([(k, r, v) for k, r, v in records if r is not None], bool(items))
        if not items:
            return
        store = self._store
        guard: dict[str, Any] = {"_id": self.workflow_id}
        for _key, parts, _value in items:
            for depth in range(1, len(parts)):
                guard[f"{section}.{'.'.join(parts[:depth])}.{TAG}"] = {"$exists": False}
        names = ", ".join(f"'{key}'" for key in values)
        action = f"set {names} in the {section} section of run '{self.workflow_id}'"
        with store._errors(action), store._uploads() as uploads:
            update = {
                "$set": {
                    f"{section}.{key}": store._encode(
                        value, self.workflow_id, section, key, uploads
                    )
                    for key, _parts, value in items
                }
            }
            try:
                raw = store._collection.find_one_and_update(
                    guard,
                    update,
                    projection={f"{section}.{key}": 1 for key, _p, _v in items},
                    return_document=ReturnDocument.BEFORE,
                )
            except OperationFailure as error:
                if error.code not in _PATH_ERRORS:
                    raise
                raw = None
            if raw is None:
                refused = (
                    self._reason_refused("set", key, section, parts) for key, parts, _value in items
                )
                raise next(
                    (error for error in refused if error is not None),
                    self._refusal("set", items[0][0], section, items[0][1]),
                )
        with store._errors(f"delete the values replaced at {names}"):
            for _key, parts, _value in items:
                store._delete_files(file_ids(walk(raw, section, parts)))

    def push(self, key: str, value: Any, *, section: str = DATA) -> None:
        """Append ``value`` to the list at ``key`` (created if absent).

        Raises:
            StoreError: ``key`` holds something that is not a list.
        """
        if not self._push_record(key, section, [value]):
            self._update("push to", key, section, "$push", value)

    def extend(self, key: str, values: Iterable[Any], *, section: str = DATA) -> None:
        """Append all ``values`` to the list at ``key`` in one atomic ``$push``.

        Raises:
            StoreError: ``key`` holds something that is not a list.
        """
        values = list(values)
        if not self._push_record(key, section, values):
            self._update("extend", key, section, "$push", values, each=True)

    def _stored(self, key: str | None, parts: list[str], section: str) -> Any:
        """The stored form at ``key`` (``MISSING`` if absent), task records included."""
        routed = task_key(parts) if section == META else None
        if routed is not None and (entry := self._task_entry(routed)) is not None:
            return walk({"entry": entry}, "entry", routed[2])
        path = section if key is None else f"{section}.{key}"
        raw = self._store._collection.find_one({"_id": self.workflow_id}, {path: 1})
        if raw is None:
            raise missing_run(self.workflow_id)
        value = walk(raw, section, parts)
        if section == META and holds_records(parts):
            value = with_records(value, parts, self._records(parts))
        return value

    # -- per-task META records (see lightflow.store.task_records) ------------------------
    def _task_entry(self, routed: tuple[str, str, list[str]]) -> dict[str, Any] | None:
        return self._store._tasks.entry(self.workflow_id, routed[0], routed[1])

    def _records(self, parts: list[str]) -> dict[str, dict[str, Any]]:
        """The run's task records below META ``parts`` (see :func:`holds_records`)."""
        return self._store._tasks.of_run(self.workflow_id, parts[1] if len(parts) > 1 else None)

    def _set_records(
        self, records: list[tuple[str, tuple[str, str, list[str]], Any]], checked: bool
    ) -> None:
        """Write task records; ``checked``: the run document's own update follows.

        Without a write to the run's document to fail for a removed run, the run is
        looked up first, and again after: records written while it was being removed
        are removed too.
        """
        if not records:
            return
        store = self._store
        names = ", ".join(f"'{key}'" for key, _routed, _value in records)
        with store._errors(f"set {names} in the meta section of run '{self.workflow_id}'"):
            if not checked and not store.exists(self.workflow_id):
                raise missing_run(self.workflow_id)
            with store._uploads() as uploads:
                encoded = [
                    (dag, task, rest, store._encode(value, self.workflow_id, META, key, uploads))
                    for key, (dag, task, rest), value in records
                ]
                store._tasks.set_many(self.workflow_id, encoded)
            if not checked and not store.exists(self.workflow_id):
                store._tasks.remove(self.workflow_id)
                raise missing_run(self.workflow_id)

    def _push_record(self, key: str, section: str, values: list[Any]) -> bool:
        """Append to a list inside a task record; ``False`` if ``key`` is no such place."""
        routed = task_key(split_key(key)) if section == META else None
        if routed is None or not routed[2]:
            return False
        store = self._store
        with store._errors(f"push to '{key}' in the meta section of run '{self.workflow_id}'"):
            if not store.exists(self.workflow_id):
                raise missing_run(self.workflow_id)
            with store._uploads() as uploads:
                encoded = [store._encode(v, self.workflow_id, META, key, uploads) for v in values]
                store._tasks.push(self.workflow_id, routed[0], routed[1], routed[2], encoded)
        return True

    def _update(
        self, verb: str, key: str, section: str, operator: str, value: Any, *, each: bool = False
    ) -> Any:
        """Apply ``{operator: {path: value}}`` atomically; return what ``$set`` replaced.

        With ``each``, ``value`` is a list whose items are pushed with ``$each``. The
        filter refuses the update if a name on the way to ``key`` holds an encoded value:
        ``$set`` would otherwise write into the tag subdocument and corrupt it. ``$set``
        needs the stored form it replaces (to delete its GridFS files), so only it pays
        for returning it; a push must not send the whole list back.
        """
        from pymongo import ReturnDocument
        from pymongo.errors import OperationFailure

        parts = split_key(key)
        check_section(section)
        path = f"{section}.{key}"
        store = self._store
        guard: dict[str, Any] = {"_id": self.workflow_id}
        for depth in range(1, len(parts)):
            guard[f"{section}.{'.'.join(parts[:depth])}.{TAG}"] = {"$exists": False}
        action = f"{verb} '{key}' in the {section} section of run '{self.workflow_id}'"
        with store._errors(action), store._uploads() as uploads:
            if each:
                encoded = {
                    "$each": [
                        store._encode(item, self.workflow_id, section, key, uploads)
                        for item in value
                    ]
                }
            else:
                encoded = store._encode(value, self.workflow_id, section, key, uploads)
            update = {operator: {path: encoded}}
            try:
                if operator == "$set":
                    raw = store._collection.find_one_and_update(
                        guard,
                        update,
                        projection={path: 1},
                        return_document=ReturnDocument.BEFORE,
                    )
                    matched = raw is not None
                else:
                    raw = None
                    matched = store._collection.update_one(guard, update).matched_count == 1
            except OperationFailure as error:
                if error.code not in _PATH_ERRORS:
                    raise
                matched = False
            if not matched:
                raise self._refusal(verb, key, section, parts)
        return MISSING if raw is None else walk(raw, section, parts)

    def _refusal(self, verb: str, key: str, section: str, parts: list[str]) -> StoreError:
        """Why an update matched nothing, in the words the memory store uses."""
        return self._reason_refused(verb, key, section, parts) or StoreError(
            f"cannot {verb} '{key}' in the {section} section of run '{self.workflow_id}': "
            "the document changed during the update; try again"
        )

    def _reason_refused(
        self, verb: str, key: str, section: str, parts: list[str]
    ) -> StoreError | None:
        """What in the stored document refuses an update of ``key``, if anything."""
        # Projected on the first name: a projection on the whole key leaves out a value
        # on the way that is not a dict, which is exactly what this looks for.
        raw = self._store._collection.find_one(
            {"_id": self.workflow_id}, {f"{section}.{parts[0]}": 1}
        )
        if raw is None:
            return missing_run(self.workflow_id)
        current: Any = raw.get(section, {})
        for depth, part in enumerate(parts, start=1):
            if part not in current:
                break
            current = current[part]
            if depth < len(parts) and (type(current) is not dict or TAG in current):
                return not_a_dict(
                    verb, key, section, self.workflow_id, parts[:depth], stored_kind(current)
                )
            if depth == len(parts) and verb != "set" and type(current) is not list:
                return StoreError(
                    f"cannot {verb} '{key}' in the {section} section of run "
                    f"'{self.workflow_id}': it holds a {stored_kind(current)}, not a list; set it "
                    "to a list first"
                )
        return None
