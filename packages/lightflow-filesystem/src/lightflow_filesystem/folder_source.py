"""FolderSource: the files that land in a folder, as trigger events (source kind ``folder``).

The ``lightflow fs watch`` command, the ``folder`` entries of the ``triggers:`` section
and ``NotifyTriggerTask`` all watch folders through this class; it only reports what
happens (see :mod:`lightflow.triggers.source` for the contract), the trigger runtime
or the task decides what to do with it.

**When a file has landed** ("complete", event ``closed``; what the runtime hands off
by default, with ``moved_in``):

* with inotify (the default) and no ``settle``: when a writer that had it open for
  writing closes it (``IN_CLOSE_WRITE``). A file renamed or moved into the folder is
  complete at once (``moved_in``: detectors often write ``.name.tmp`` and rename it),
  and so is every file of a folder moved into a recursive watch;
* with ``settle=S`` (seconds): when its size, modification time and inode have not
  changed for ``S`` seconds after the last sign of writing (:mod:`.settle`), for
  writers that close and reopen a file;
* with ``poll=True``: the folder is scanned every ``poll_interval`` seconds instead of
  using inotify, and files complete by ``settle`` (default: one poll interval). Needed
  on network filesystems (NFS, GPFS, Lustre...), where inotify sees only the writes
  made on this host; latency is then up to ``poll_interval + settle``.

Other events, for ``NotifyTriggerTask``'s 1.x flags: ``created``, ``moved_out`` (its
old path) and ``deleted``. Folders themselves are never reported, and neither are
files that do not match ``patterns`` (globs on the file name, or on the path below
the folder when the pattern has a ``/``) or that match ``exclude``/``exclude_regex``.

**Keys.** An event's key is the file's absolute path, so the runtime hands a file
off once whatever happens to it later: a workflow that rewrites its input in place
(compress, repack) does not start itself again, and a file *replaced* under the same
name while the watch runs is not handed off again. When a watch starts, the runtime
forgets the handed-off files that no longer exist (:meth:`FolderSource.forgotten`),
so a file deleted and later written again under its old name is handed off again
then. A file renamed within the folder has a new path, so a new key.

**Order.** Events are reported in the order they happened (inotify's order); files
completing by ``settle`` in the order they settled.

**Restart catch-up.** :meth:`FolderSource.existing` reports the files already there
(sorted by modification time). A file changed in the last ``settle`` seconds (2 s
without ``settle``) may still be being written: it is reported when it is closed or
has stopped changing, not at once.

**Limits.** inotify's queue holds 16384 events by default
(``fs.inotify.max_queued_events``); only the events needed are subscribed to (one
per file written, without ``settle``). In a recursive watch a file written *and
closed* within microseconds of creating its subfolder can be missed, because the
subfolder's watch is added only after its creation is seen; the next start's catch-up
hands it off.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from lightflow.exceptions import ConfigError, LightflowError
from lightflow.triggers import Emit, TriggerEvent, TriggerSource
from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from .inotify import inotify_observer
from .settle import SettleTracker

logger = logging.getLogger("lightflow.filesystem")

#: The events a folder source can report.
EVENTS = ("created", "closed", "moved_in", "moved_out", "deleted")
#: What the trigger runtime hands off: files written and closed, and files moved in.
COMPLETE = ("closed", "moved_in")
#: Quiet period of a file found at start that changed recently, without ``settle``.
RECENT_QUIET = 2.0
DEFAULT_POLL_INTERVAL = 1.0

#: The keys of a ``folder`` entry in ``lightflow.cfg`` (besides the runtime's own).
SETTINGS = ("path", "patterns", "exclude", "recursive", "settle", "poll", "poll_interval")


class FolderSource(TriggerSource):
    """Reports the files that land in a folder; see the module docstring.

    Args:
        path: The folder, an absolute path.
        patterns: Globs a file must match (any of them); none: every file.
        exclude: Globs of files to leave out (``.*``, ``*.tmp``).
        exclude_regex: A regular expression searched in the full path of files to
            leave out (1.x ``exclude_mask``).
        recursive: Watch the subfolders too (new ones included).
        settle: Seconds a file must stay unchanged to be complete; ``None``: 0 with
            inotify (the close is enough), ``poll_interval`` when polling.
        poll: Scan the folder every ``poll_interval`` seconds instead of inotify.
        poll_interval: Seconds between two scans when polling.
        report: Which events to report (see :data:`EVENTS`).

    Raises:
        lightflow.exceptions.ConfigError: A value is invalid (one line naming it).
    """

    kind = "folder"
    parameters = ("files",)
    noun = "file"

    def __init__(
        self,
        path: str,
        *,
        patterns: Sequence[str] = (),
        exclude: Sequence[str] = (),
        exclude_regex: str | None = None,
        recursive: bool = False,
        settle: float | None = None,
        poll: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        report: Iterable[str] = COMPLETE,
    ) -> None:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ConfigError(f"folder trigger: path {path!r} must be an absolute path")
        if not _positive(poll_interval):
            raise ConfigError(
                f"folder trigger: poll_interval must be a number of seconds > 0, "
                f"got {poll_interval!r}"
            )
        if settle is None:
            settle = float(poll_interval) if poll else 0.0
        if not _positive(settle, zero=True):
            raise ConfigError(
                f"folder trigger: settle must be a number of seconds >= 0, got {settle!r}"
            )
        if poll and settle == 0:
            raise ConfigError(
                "folder trigger: polling cannot see a file being closed; give settle > 0 "
                "(seconds a file must stay unchanged to count as complete)"
            )
        unknown = set(report) - set(EVENTS)
        if unknown:
            raise ConfigError(
                f"folder trigger: unknown event(s) {sorted(unknown)}; known: {', '.join(EVENTS)}"
            )
        try:
            self._exclude_regex = re.compile(exclude_regex) if exclude_regex else None
        except (re.error, TypeError) as error:
            raise ConfigError(
                f"folder trigger: exclude regex {exclude_regex!r} is invalid: {error}"
            ) from None
        self.path = os.path.normpath(path)
        self.patterns = _globs(patterns, "patterns")
        self.exclude = _globs(exclude, "exclude")
        self.recursive = bool(recursive)
        self.settle = float(settle)
        self.poll = bool(poll)
        self.poll_interval = float(poll_interval)
        self.report = frozenset(report)
        self._emit: Emit | None = None
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._state = "not started"
        self._observer: Any = None
        self._tracker: SettleTracker | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FolderSource:
        """Build a source from a ``folder`` entry's own keys (:data:`SETTINGS`).

        Raises:
            ConfigError: A key is unknown, ``path`` is missing, or a value is invalid.
        """
        for key in settings:
            if key not in SETTINGS:
                close = difflib.get_close_matches(str(key), SETTINGS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(
                    f"folder trigger: unknown setting '{key}'{hint}; "
                    f"the settings are {', '.join(SETTINGS)}"
                )
        if "path" not in settings:
            raise ConfigError("folder trigger: 'path' is missing; give the folder to watch")
        for key in ("recursive", "poll"):
            if not isinstance(settings.get(key, False), bool):
                raise ConfigError(
                    f"folder trigger: {key} must be true or false, got {settings[key]!r}"
                )
        return cls(
            settings["path"],
            patterns=settings.get("patterns") or (),
            exclude=settings.get("exclude") or (),
            recursive=settings.get("recursive", False),
            settle=settings.get("settle"),
            poll=settings.get("poll", False),
            poll_interval=settings.get("poll_interval", DEFAULT_POLL_INTERVAL),
        )

    def describe(self) -> str:
        """``folder /data/in (*.h5; recursive; polling every 5 s; settle 10 s)``."""
        details = [", ".join(self.patterns) or "all files"]
        if self.recursive:
            details.append("recursive")
        if self.poll:
            details.append(f"polling every {self.poll_interval:g} s")
        if self.settle:
            details.append(f"settle {self.settle:g} s")
        return f"folder {self.path} ({'; '.join(details)})"

    # -- watching ------------------------------------------------------------------------
    def start(self, emit: Emit) -> None:
        """Begin watching; the watch is in place when this returns.

        Raises:
            lightflow.exceptions.LightflowError: The folder is missing or unreadable, or
                inotify refuses the watch (one line, with how to fix it).
        """
        try:
            with os.scandir(self.path):
                pass
        except OSError as error:
            raise LightflowError(
                f"cannot watch folder {self.path}: {error.strerror or error}; "
                "create it or fix the path"
            ) from None
        self._emit = emit
        self._stopped = False
        self._tracker = SettleTracker(self._settled, self._vanished)
        self._tracker.start()
        self._observer = self._make_observer()
        self._observer.schedule(
            _Handler(self), self.path, recursive=self.recursive, event_filter=self._event_types()
        )
        try:
            self._observer.start()
        except OSError as error:
            self._tracker.stop()
            raise LightflowError(
                f"cannot watch folder {self.path} with inotify: {error.strerror or error}; "
                "raise fs.inotify.max_user_watches / max_user_instances, or poll the folder"
            ) from None
        self._state = "watching"

    def stop(self) -> None:
        """Stop watching (within 1 s); nothing is emitted after this returns."""
        with self._emit_lock:
            self._stopped = True
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=1.0)
            self._observer = None
        if self._tracker is not None:
            self._tracker.stop()
        if self._state == "watching":
            self._state = "stopped"

    def existing(self) -> list[TriggerEvent]:
        """The files already in the folder, oldest first; recent ones are tracked instead.

        See the module docstring (restart catch-up).
        """
        quiet = self.settle or RECENT_QUIET
        now = time.time()
        events = []
        for path, stat in sorted(self._files(self.path), key=lambda item: item[1].st_mtime_ns):
            if now - stat.st_mtime >= quiet:  # a future time (clock skew) counts as recent
                events.append(self._event("existing", path, stat.st_mtime))
            elif self._tracker is not None:
                self._tracker.track(path, quiet)
        return events

    def forgotten(self, keys: Iterable[str]) -> list[str]:
        """The handed-off files that are gone (none while the folder itself is missing)."""
        if not os.path.isdir(self.path):
            return []  # an unmounted share is not an empty folder
        return [key for key in keys if not os.path.lexists(key)]

    def arguments(self, events: Sequence[TriggerEvent]) -> dict[str, Any]:
        """``{"files": [absolute paths, in order]}`` (workflow parameter ``files``)."""
        return {"files": [event.values["path"] for event in events]}

    def status(self) -> dict[str, Any]:
        """``state`` (watching, stopped, folder gone), the folder, the mode, files settling."""
        return {
            "state": self._state,
            "path": self.path,
            "mode": f"polling every {self.poll_interval:g} s" if self.poll else "inotify",
            "settling": len(self._tracker) if self._tracker is not None else 0,
        }

    # -- events --------------------------------------------------------------------------
    def on_event(self, event: FileSystemEvent) -> None:
        """Turn one watchdog event into what the source reports (watchdog's thread)."""
        src = os.fsdecode(event.src_path)
        if isinstance(event, DirDeletedEvent) and src == self.path:
            self._state = "folder gone"
            logger.error("%s: the folder was deleted or unmounted; nothing more is seen", self)
        elif isinstance(event, DirMovedEvent):
            self._folder_moved(src, os.fsdecode(event.dest_path))
        elif isinstance(event, FileMovedEvent):
            self._file_moved(src, os.fsdecode(event.dest_path))
        elif not self._wanted(src):
            return
        elif isinstance(event, FileClosedEvent):
            if self.settle:
                self._track(src)
            elif "closed" in self.report:
                self._tracker_discard(src)
                self._report("closed", src)
        elif isinstance(event, FileCreatedEvent):
            self._report("created", src)
            if self.settle:
                self._track(src)
        elif isinstance(event, FileModifiedEvent):
            if self.settle:
                self._track(src)
        elif isinstance(event, FileDeletedEvent):
            self._tracker_discard(src)
            self._report("deleted", src)

    def _folder_moved(self, src: str, dest: str) -> None:
        # A folder moved in from outside: its files are complete, like a file moved in.
        # (Moves within the watch come as one FileMovedEvent per file.)
        if self.recursive and self._inside(dest) and not self._inside(src):
            for path, _ in sorted(self._files(dest)):
                self._report("moved_in", path)

    def _file_moved(self, src: str, dest: str) -> None:
        if src and self._inside(src):
            self._tracker_discard(src)
        if dest and self._inside(dest):
            if self._wanted(dest):
                self._report("moved_in", dest)
        elif src and self._inside(src) and self._wanted(src):
            self._report("moved_out", src)

    def _track(self, path: str) -> None:
        if "closed" in self.report and self._tracker is not None:
            self._tracker.track(path, self.settle)

    def _tracker_discard(self, path: str) -> None:
        if self._tracker is not None:
            self._tracker.discard(path)

    def _settled(self, path: str, stat: os.stat_result) -> None:
        self._report("closed" if self.settle else "settled", path)

    def _vanished(self, path: str) -> None:
        logger.info("%s: %s disappeared before it was complete; not reported", self, path)

    def _report(self, kind: str, path: str) -> None:
        if kind in self.report or kind in ("existing", "settled"):
            self._send(self._event(kind, path, time.time()))

    def _send(self, event: TriggerEvent) -> None:
        with self._emit_lock:  # one call at a time, none after stop()
            if not self._stopped and self._emit is not None:
                self._emit(event)

    @staticmethod
    def _event(kind: str, path: str, when: float) -> TriggerEvent:
        return TriggerEvent(key=path, values={"path": path, "event": kind}, time=when)

    # -- which files -----------------------------------------------------------------------
    def _inside(self, path: str) -> bool:
        parent = os.path.dirname(path)
        if not self.recursive:
            return parent == self.path
        return parent == self.path or parent.startswith(self.path + os.sep)

    def _wanted(self, path: str) -> bool:
        """Whether ``path`` is a file of this watch that matches its patterns."""
        if not self._inside(path):
            return False
        name = os.path.basename(path)
        relative = os.path.relpath(path, self.path)
        if self.patterns and not any(_match(glob, name, relative) for glob in self.patterns):
            return False
        if any(_match(glob, name, relative) for glob in self.exclude):
            return False
        return self._exclude_regex is None or self._exclude_regex.search(path) is None

    def _files(self, folder: str) -> Iterator[tuple[str, os.stat_result]]:
        """The wanted regular files in ``folder`` (and below, when recursive)."""
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as error:
            logger.warning("%s: cannot list %s: %s", self, folder, error.strerror or error)
            return
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if self.recursive:
                        yield from self._files(entry.path)
                elif entry.is_file(follow_symlinks=False) and self._wanted(entry.path):
                    yield entry.path, entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone while listing

    def _event_types(self) -> list[type[FileSystemEvent]]:
        """What to ask inotify for: as little as the mode needs (its queue is bounded)."""
        types: list[type[FileSystemEvent]] = [
            DirDeletedEvent,
            DirMovedEvent,
            FileMovedEvent,
            FileClosedEvent,
        ]
        if self.settle or "created" in self.report:
            types.append(FileCreatedEvent)
        if self.settle:
            types.append(FileModifiedEvent)
        if self.settle or "deleted" in self.report:
            types.append(FileDeletedEvent)
        return types

    def _make_observer(self) -> Any:
        if self.poll:
            from watchdog.observers.polling import PollingObserver

            return PollingObserver(timeout=self.poll_interval)
        # Full events: a file moved in from outside is a move, not a creation.
        return inotify_observer(self.path, full_events=True)

    def __str__(self) -> str:
        return self.describe()


class _Handler(FileSystemEventHandler):
    """Hands every watchdog event to its source."""

    def __init__(self, source: FolderSource) -> None:
        self._source = source

    def dispatch(self, event: FileSystemEvent) -> None:
        self._source.on_event(event)


def _match(glob: str, name: str, relative: str) -> bool:
    return fnmatch.fnmatchcase(relative if "/" in glob else name, glob)


def _globs(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"folder trigger: {what} must be a glob or a list of globs, got {value!r}"
        )
    return tuple(value)


def _positive(value: Any, *, zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 if zero else value > 0
