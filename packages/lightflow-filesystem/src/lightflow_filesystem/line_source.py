"""LineSource: the lines appended to a text file, as trigger events (``NewLineTriggerTask``).

* A line is reported once it is complete (its newline written), with its newline, as
  1.x passed it; text that is not UTF-8 is replaced, never fatal.
* Reading starts after the last complete line present when watching starts;
  :meth:`LineSource.existing` gives the complete lines before that point, so a line
  being written at start is reported once, when it is complete.
* With inotify (default) the file's folder is watched, so a new line is read as soon
  as it is written and a file replaced under the same name (log rotation) is seen;
  with ``poll=True`` the file is looked at every ``poll_interval`` seconds (network
  filesystems, where inotify misses other hosts' writes).
* A file that shrank or was replaced is read again from its start (logged).

It is not a kind of the trigger runtime: lines have no identity that survives a
restart, so a restarted watcher could neither catch up nor avoid repeats.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lightflow.exceptions import ConfigError, LightflowError
from lightflow.triggers import Emit, TriggerEvent, TriggerSource
from watchdog.events import (
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from .inotify import inotify_observer

logger = logging.getLogger("lightflow.filesystem")

DEFAULT_POLL_INTERVAL = 0.5


class LineSource(TriggerSource):
    """Reports each line appended to a file; see the module docstring.

    Args:
        path: The file, an absolute path.
        poll: Look at the file every ``poll_interval`` seconds instead of inotify.
        poll_interval: Seconds between two looks when polling.

    Raises:
        lightflow.exceptions.ConfigError: A value is invalid.
    """

    parameters = ("lines",)
    noun = "line"

    def __init__(
        self, path: str, *, poll: bool = False, poll_interval: float = DEFAULT_POLL_INTERVAL
    ) -> None:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ConfigError(f"line trigger: path {path!r} must be an absolute path")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
            raise ConfigError(
                f"line trigger: poll_interval must be a number, got {poll_interval!r}"
            )
        if poll_interval <= 0:
            raise ConfigError(f"line trigger: poll_interval must be > 0, got {poll_interval!r}")
        self.path = os.path.normpath(path)
        self.poll = bool(poll)
        self.poll_interval = float(poll_interval)
        self._emit: Emit | None = None
        self._lock = threading.Lock()  # one reader at a time; guards the fields below
        self._stopped = threading.Event()
        self._start_offset = 0
        self._offset = 0
        self._inode: int | None = None
        self._observer: Any = None
        self._poller: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LineSource:
        """Build a source from ``path``, ``poll`` and ``poll_interval``.

        Raises:
            ConfigError: A key is unknown, ``path`` is missing, or a value is invalid.
        """
        unknown = set(settings) - {"path", "poll", "poll_interval"}
        if unknown:
            raise ConfigError(
                f"line trigger: unknown setting(s) {sorted(unknown)}; "
                "the settings are path, poll, poll_interval"
            )
        if "path" not in settings:
            raise ConfigError("line trigger: 'path' is missing; give the file to watch")
        return cls(
            settings["path"],
            poll=settings.get("poll", False),
            poll_interval=settings.get("poll_interval", DEFAULT_POLL_INTERVAL),
        )

    def describe(self) -> str:
        """``lines of /var/log/scan.log`` (and how it is watched)."""
        how = f" (polling every {self.poll_interval:g} s)" if self.poll else ""
        return f"lines of {self.path}{how}"

    def start(self, emit: Emit) -> None:
        """Begin watching after the last complete line.

        Raises:
            lightflow.exceptions.LightflowError: The file is missing or unreadable.
        """
        try:
            with open(self.path, "rb") as file:
                content = file.read()
                inode = os.fstat(file.fileno()).st_ino
        except OSError as error:
            raise LightflowError(
                f"cannot watch the lines of {self.path}: {error.strerror or error}; "
                "create the file first or fix the path"
            ) from None
        with self._lock:
            self._emit = emit
            self._start_offset = self._offset = content.rfind(b"\n") + 1
            self._inode = inode
        self._stopped.clear()
        if self.poll:
            self._poller = threading.Thread(target=self._poll, name="lightflow-lines", daemon=True)
            self._poller.start()
            return
        self._observer = inotify_observer(self.path)
        self._observer.schedule(
            _Handler(self),
            os.path.dirname(self.path),
            event_filter=[FileModifiedEvent, FileCreatedEvent, FileMovedEvent],
        )
        self._observer.start()

    def stop(self) -> None:
        """Stop watching (within 1 s); nothing is emitted after this returns."""
        self._stopped.set()
        with self._lock:
            self._emit = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=1.0)
            self._observer = None
        if self._poller is not None:
            self._poller.join(timeout=1.0)
            self._poller = None

    def existing(self) -> list[TriggerEvent]:
        """The complete lines the file held when watching started."""
        try:
            with open(self.path, "rb") as file:
                content = file.read(self._start_offset)
        except OSError as error:
            logger.warning("%s: cannot read the existing lines: %s", self, error.strerror)
            return []
        return [self._event(line) for line in content.splitlines(keepends=True)]

    def arguments(self, events: Sequence[TriggerEvent]) -> dict[str, Any]:
        """``{"lines": [the lines, in order]}``."""
        return {"lines": [event.values["line"] for event in events]}

    def on_change(self) -> None:
        """The file may have grown or been replaced: report its new complete lines."""
        with self._lock:
            if self._emit is None:
                return
            try:
                with open(self.path, "rb") as file:
                    stat = os.fstat(file.fileno())
                    if stat.st_ino != self._inode or stat.st_size < self._offset:
                        logger.info("%s: the file was replaced or truncated; reading it anew", self)
                        self._inode, self._offset = stat.st_ino, 0
                    file.seek(self._offset)
                    new = file.read()
            except FileNotFoundError:
                return  # removed; a new file of that name is read from its start
            except OSError as error:
                logger.warning("%s: cannot read the file: %s", self, error.strerror or error)
                return
            complete = new[: new.rfind(b"\n") + 1]
            self._offset += len(complete)
            for line in complete.splitlines(keepends=True):
                self._emit(self._event(line))

    def _poll(self) -> None:
        while not self._stopped.wait(self.poll_interval):
            self.on_change()

    def _event(self, raw: bytes) -> TriggerEvent:
        line = raw.decode("utf-8", errors="replace")
        return TriggerEvent(key=None, values={"path": self.path, "line": line}, time=time.time())

    def __str__(self) -> str:
        return self.describe()


class _Handler(FileSystemEventHandler):
    """Reads the file when an event in its folder concerns it."""

    def __init__(self, source: LineSource) -> None:
        self._source = source

    def dispatch(self, event: FileSystemEvent) -> None:
        paths = (os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or ""))
        if self._source.path in paths:
            self._source.on_change()
