"""What a trigger has handed off: the record that makes hand-offs exactly-once.

A trigger hands off a *batch* of events (files) by starting one run for it. To start
nothing twice and miss nothing across restarts, even after a SIGKILL, every hand-off
is written ahead:

1. :meth:`Ledger.begin` records the batch (its id, which becomes the run's id, the
   keys of its events and the run's arguments) *before* the run is started;
2. the run is started under that id (starting is idempotent per id: see
   :func:`lightflow.api.start_workflow` and the embedded launcher's start markers);
3. :meth:`Ledger.finish` records that it was started.

Keys of begun batches count as handed off at once, so an event seen again (a file
reported by the watch and by the scan at start) is not handed off twice. A batch
begun but not finished (the trigger died in between) is in :meth:`Ledger.unfinished`
when the trigger starts again and is started again under the same id, which starts
it only if it had not started.

The ledger keeps one entry per key handed off. :meth:`Ledger.forget` drops keys that
no longer exist (the files a scan no longer finds), so the ledger holds what is there
rather than everything that ever was, and a file removed and written again under the
same name is handed off again.

Two backends, one contract:

* :class:`RedisLedger` on a cluster: hashes in the state server, so a trigger moved
  to another host continues where it was;
* :class:`FileLedger` for the embedded engine: an append-only journal in a local state
  folder (one JSON line per change; a write reaches the kernel before the call
  returns, which is what survives a SIGKILL), compacted when the trigger starts.

Each also holds the trigger's *ownership* while it runs (a Redis key that expires
unless renewed, or an exclusive ``flock`` on the journal), so two processes never
watch the same trigger and start runs twice. A Redis ownership whose process was
killed on this host is taken over at once rather than after it expired.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import secrets
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..exceptions import LightflowError

#: Seconds a cluster trigger's ownership lasts unless renewed (it is renewed every
#: third of that): a trigger whose process died is free again after this long.
OWNER_TTL = 15.0


@dataclass(frozen=True)
class Batch:
    """One hand-off: the run's id, the keys of its events, the run's arguments."""

    id: str
    keys: list[str]
    arguments: dict[str, Any]

    def encode(self) -> str:
        """As one line of text (the arguments pickled: PV values may be arrays)."""
        blob = base64.b64encode(pickle.dumps(self.arguments)).decode()
        return json.dumps({"begin": self.id, "keys": self.keys, "arguments": blob})

    @classmethod
    def decode(cls, text: str | bytes) -> Batch:
        entry = json.loads(text)
        arguments = pickle.loads(base64.b64decode(entry["arguments"]))
        return cls(entry["begin"], entry["keys"], arguments)


class Ledger(abc.ABC):
    """The hand-off record of one trigger; see the module docstring.

    Safe to call from several threads (the trigger's own, and a launcher's that
    reports started runs).
    """

    def __init__(self, trigger: str) -> None:
        self.trigger = trigger
        self._handed: set[str] = set()
        self._lock = threading.Lock()

    def handed(self, key: str) -> bool:
        """Whether an event with this key was handed off (begun) already."""
        return key in self._handed

    def begin(self, batch: Batch) -> None:
        """Record that ``batch`` is about to start (its keys count as handed off)."""
        with self._lock:
            self._write_begin(batch)
            self._handed.update(batch.keys)

    def finish(self, batch_id: str) -> None:
        """Record that the run of the batch ``batch_id`` was started."""
        with self._lock:
            self._write_finish(batch_id)

    @abc.abstractmethod
    def unfinished(self) -> list[Batch]:
        """Batches begun but not finished, oldest first."""

    def forget(self, keys: Iterable[str]) -> None:
        """Drop keys that no longer exist (a file gone), so they can come again."""
        with self._lock:
            gone = [key for key in keys if key in self._handed]
            if gone:
                self._write_forget(gone)
                self._handed.difference_update(gone)

    @property
    def keys(self) -> set[str]:
        """Every key handed off (a copy)."""
        return set(self._handed)

    @abc.abstractmethod
    def renew(self) -> None:
        """Keep the trigger's ownership (called regularly while it runs).

        Raises:
            LightflowError: Another process took the trigger over.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Give the trigger's ownership up."""

    @abc.abstractmethod
    def _write_begin(self, batch: Batch) -> None: ...

    @abc.abstractmethod
    def _write_finish(self, batch_id: str) -> None: ...

    @abc.abstractmethod
    def _write_forget(self, keys: list[str]) -> None: ...


def _owner() -> str:
    """Who holds a trigger: ``host/pid#token`` (two runtimes of one process are two)."""
    return f"{socket.gethostname()}/{os.getpid()}#{secrets.token_hex(3)}"


def owner_ended(owner: str) -> bool:
    """Whether the process of an owner id (``host/pid...``) ran on this host and is gone."""
    host, _, rest = owner.partition("/")
    pid = rest.split("#", 1)[0]
    return pid.isdigit() and process_ended(host, int(pid))


def process_ended(host: str, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` is known to be gone (only this host's can be)."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's
        return False
    return False


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


#: Keep the ownership (KEYS[1]) for ARGV[1] another ARGV[2] ms; return the other holder.
_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
return false
"""
#: Give the ownership (KEYS[1]) held by ARGV[1] to ARGV[2] for ARGV[3] ms; 1 if done.
_TAKE_OVER = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[2], 'px', ARGV[3])
return 1
"""
#: Give the ownership (KEYS[1]) up if ARGV[1] still holds it.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return 0
"""


class RedisLedger(Ledger):
    """The ledger in the cluster's state server (``lf:trigger:<name>:...``).

    ``handed`` is a hash key -> batch id, ``pending`` a hash batch id -> encoded
    :class:`Batch` of the batches begun and not finished, ``order`` the list of their
    ids in the order begun (a hash keeps none), ``owner`` the process watching the
    trigger.

    Raises:
        LightflowError: Another live process watches this trigger.
    """

    def __init__(self, trigger: str, client: Any) -> None:
        super().__init__(trigger)
        self._client = client
        self._prefix = f"lf:trigger:{trigger}"
        self._owner_id = _owner()
        self._take_ownership()
        self._handed = {
            key.decode() if isinstance(key, bytes) else key
            for key in client.hkeys(f"{self._prefix}:handed")
        }

    def _take_ownership(self) -> None:
        """Own the trigger: free, or held by a process of this host that is gone."""
        owner_key, ttl = f"{self._prefix}:owner", int(OWNER_TTL * 1000)
        holder = None
        for _attempt in range(3):  # the holder's key may expire between two commands
            if self._client.set(owner_key, self._owner_id, nx=True, px=ttl):
                return
            holder = _text(self._client.get(owner_key))
            if holder is None:
                continue
            if owner_ended(holder) and self._client.eval(
                _TAKE_OVER, 1, owner_key, holder, self._owner_id, ttl
            ):
                return  # killed on this host: no need to wait for its key to expire
            break
        raise LightflowError(
            f"trigger '{self.trigger}' is already watched by {holder or 'another process'}; "
            f"stop that process, or wait {OWNER_TTL:g} s if it died on another host"
        )

    def _write_begin(self, batch: Batch) -> None:
        pipe = self._client.pipeline(transaction=True)
        if batch.keys:
            pipe.hset(f"{self._prefix}:handed", mapping=dict.fromkeys(batch.keys, batch.id))
        pipe.hset(f"{self._prefix}:pending", batch.id, batch.encode())
        pipe.rpush(f"{self._prefix}:order", batch.id)
        pipe.execute()

    def _write_finish(self, batch_id: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.hdel(f"{self._prefix}:pending", batch_id)
        pipe.lrem(f"{self._prefix}:order", 1, batch_id)
        pipe.execute()

    def unfinished(self) -> list[Batch]:
        ids = self._client.lrange(f"{self._prefix}:order", 0, -1)
        if not ids:
            return []
        raw = self._client.hmget(f"{self._prefix}:pending", ids)
        return [Batch.decode(value) for value in raw if value is not None]

    def _write_forget(self, keys: list[str]) -> None:
        self._client.hdel(f"{self._prefix}:handed", *keys)

    def renew(self) -> None:
        # One script: between a read and a write the key could expire and be taken.
        holder = self._client.eval(
            _RENEW, 1, f"{self._prefix}:owner", self._owner_id, int(OWNER_TTL * 1000)
        )
        if holder:
            raise LightflowError(f"trigger '{self.trigger}' was taken over by {_text(holder)}")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the server may be gone; the key expires
            self._client.eval(_RELEASE, 1, f"{self._prefix}:owner", self._owner_id)


class FileLedger(Ledger):
    """The ledger as a journal ``<folder>/<trigger>.ledger`` (one JSON object a line).

    Lines are an encoded :class:`Batch` (``{"begin": id, ...}``), ``{"finish": id}``
    and ``{"forget": [...]}``. A last line cut short by a crash is ignored.

    Raises:
        LightflowError: The folder cannot be written, or another process watches this
            trigger (it holds the journal's lock).
    """

    def __init__(self, trigger: str, folder: Path) -> None:
        super().__init__(trigger)
        self.path = folder / f"{file_name(trigger)}.ledger"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = self._lock_journal()
        except OSError as error:
            raise LightflowError(
                f"cannot keep the record of trigger '{trigger}' in {folder}: "
                f"{error.strerror or error}; give a writable --state-dir"
            ) from None
        self._pending: dict[str, Batch] = {}
        self._replay()
        self._compact()

    def _lock_journal(self) -> IO[str]:
        """Open the journal and take its lock, or say who holds it.

        The owner may compact the journal (a new file renamed over it) between our
        open and our lock: a lock on the file it replaced guards nothing, so the
        journal is opened again until the locked file is the one at ``path``.
        """
        while True:
            journal = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(journal, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                journal.close()
                raise LightflowError(
                    f"trigger '{self.trigger}' is already watched by another process on "
                    f"this host (it holds {self.path}); stop that process first"
                ) from None
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(journal.fileno()).st_ino:
                return journal
            journal.close()

    def _replay(self) -> None:
        self._file.seek(0)
        for line in self._file:
            try:
                entry = json.loads(line)
                if "begin" in entry:
                    batch = Batch.decode(line)
                    self._pending[batch.id] = batch
                    self._handed.update(batch.keys)
                elif "finish" in entry:
                    self._pending.pop(entry["finish"], None)
                elif "forget" in entry:
                    self._handed.difference_update(entry["forget"])
            except (ValueError, KeyError, pickle.UnpicklingError):
                continue  # the last line of a process killed while writing it

    def _compact(self) -> None:
        """Rewrite the journal as its current state (atomically, by rename)."""
        temporary = self.path.with_suffix(".ledger.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            pending = {key for batch in self._pending.values() for key in batch.keys}
            handed = sorted(self._handed - pending)
            if handed:
                out.write(Batch("", handed, {}).encode() + "\n")
                out.write(json.dumps({"finish": ""}) + "\n")
            for batch in self._pending.values():
                out.write(batch.encode() + "\n")
            out.flush()
            os.fsync(out.fileno())
        # The lock stays on the open file; the new journal is locked before it is
        # swapped in, so no other process can take the trigger in between.
        new = open(temporary, "a+", encoding="utf-8")
        fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(temporary, self.path)
        self._file.close()
        self._file = new

    def _append(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()  # in the kernel: survives the process being killed

    def _write_begin(self, batch: Batch) -> None:
        self._append(batch.encode())
        self._pending[batch.id] = batch

    def _write_finish(self, batch_id: str) -> None:
        self._append(json.dumps({"finish": batch_id}))
        self._pending.pop(batch_id, None)

    def unfinished(self) -> list[Batch]:
        with self._lock:
            return list(self._pending.values())

    def _write_forget(self, keys: list[str]) -> None:
        self._append(json.dumps({"forget": keys}))

    def renew(self) -> None:
        """Nothing to renew: the lock lasts as long as the process."""

    def close(self) -> None:
        self._file.close()


def file_name(trigger: str) -> str:
    """A file name for a trigger name, distinct for distinct names ('/' and ':' too)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in trigger)
    if safe == trigger:
        return safe
    return f"{safe}-{hashlib.sha1(trigger.encode()).hexdigest()[:8]}"
