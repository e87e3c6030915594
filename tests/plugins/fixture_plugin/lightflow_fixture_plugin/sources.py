"""``lines``: a trigger source fed through a Unix datagram socket, for the runtime's tests.

Each datagram is one event: ``KEY`` (an item handed off once per key) or ``!TEXT``
(an event without a key, never deduplicated). The items already there when watching
starts are the lines of the ``backlog`` file, if one is set, which is how a test shows
that a restarted trigger catches up. Runs receive ``items``, the texts of a batch, and
``first``, the first of them (text, for a workflow whose ``Option`` type may refuse
it). Stopping the source removes its socket file, so a test sees that it was stopped
even after the process ended.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightflow.exceptions import ConfigError, LightflowError
from lightflow.triggers import Emit, TriggerEvent, TriggerSource


class LineSource(TriggerSource):
    """Events from datagrams on the socket ``path``; see the module docstring."""

    kind = "lines"
    parameters = ("items", "first")
    noun = "item"

    def __init__(self, path: str, backlog: str | None = None, only: str | None = None) -> None:
        self.path = path
        self.backlog = backlog
        self.only = only  # accept only texts starting with this
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LineSource:
        unknown = sorted(set(settings) - {"path", "backlog", "only"})
        if unknown:
            raise ConfigError(f"unknown setting '{unknown[0]}' of a lines source")
        if not settings.get("path"):
            raise ConfigError("a lines source needs a 'path' for its socket")
        return cls(str(settings["path"]), settings.get("backlog"), settings.get("only"))

    def describe(self) -> str:
        return f"lines on {self.path}"

    def start(self, emit: Emit) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a process that was killed
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._socket.bind(self.path)
        except OSError as error:
            self._socket.close()
            raise LightflowError(f"cannot listen on {self.path}: {error.strerror}") from None
        self._socket.settimeout(0.1)
        self._thread = threading.Thread(target=self._receive, args=(emit,), daemon=True)
        self._thread.start()

    def _receive(self, emit: Emit) -> None:
        assert self._socket is not None
        while not self._stopping.is_set():
            try:
                text = self._socket.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            emit(_event(text))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._socket is not None:
            self._socket.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def existing(self) -> Iterable[TriggerEvent]:
        if not self.backlog or not Path(self.backlog).exists():
            return []
        return [_event(line) for line in Path(self.backlog).read_text().splitlines() if line]

    def forgotten(self, keys: Iterable[str]) -> Iterable[str]:
        if not self.backlog or not Path(self.backlog).exists():
            return []
        present = set(Path(self.backlog).read_text().splitlines())
        return [key for key in keys if key not in present]

    def accept(self, event: TriggerEvent) -> bool:
        return self.only is None or str(event.values["item"]).startswith(self.only)

    def arguments(self, events: Sequence[TriggerEvent]) -> dict[str, Any]:
        items = [event.values["item"] for event in events]
        return {"items": items, "first": items[0]}


def _event(text: str) -> TriggerEvent:
    if text.startswith("!"):
        return TriggerEvent(None, {"item": text[1:]}, time.time())
    return TriggerEvent(text, {"item": text}, time.time())


def send(path: str | Path, *texts: str) -> None:
    """Send each text as one datagram to the source listening on ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for text in texts:
            sender.sendto(text.encode(), str(path))
