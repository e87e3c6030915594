"""The live state of triggers: written by the runtime, read by listings and the REST API.

A running trigger publishes its state (what it watches, counts of events and runs,
its last run, its source's own state) when something changes and at least every
:data:`PUBLISH_INTERVAL` seconds, so a reader can tell a trigger that runs from one
whose process died (:func:`describe`). On a cluster the states are one hash in the
state server (``lf:triggers``: name -> JSON), readable from any host; on the embedded
engine, one JSON file per trigger in the state folder.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .ledger import file_name, process_ended

#: Seconds between two publications of a running trigger's state at most.
PUBLISH_INTERVAL = 5.0
#: A trigger whose state is older than this many seconds is not running any more.
STALE_AFTER = 3 * PUBLISH_INTERVAL
STATUS_KEY = "lf:triggers"


class StatusBoard(abc.ABC):
    """Where trigger states are published and read."""

    @abc.abstractmethod
    def publish(self, name: str, state: dict[str, Any]) -> None:
        """Write the state of trigger ``name`` (plain JSON-able data)."""

    @abc.abstractmethod
    def read(self) -> dict[str, dict[str, Any]]:
        """Every published state, by trigger name."""


class RedisStatusBoard(StatusBoard):
    """States in the cluster's state server."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(self, name: str, state: dict[str, Any]) -> None:
        self._client.hset(STATUS_KEY, name, json.dumps(state, default=repr))

    def read(self) -> dict[str, dict[str, Any]]:
        return {
            (name.decode() if isinstance(name, bytes) else name): json.loads(value)
            for name, value in self._client.hgetall(STATUS_KEY).items()
        }


class FileStatusBoard(StatusBoard):
    """States as ``<folder>/<file name of the trigger>.state.json`` files.

    One writer per trigger at a time (the runtime publishes one state at a time).
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def publish(self, name: str, state: dict[str, Any]) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{file_name(name)}.state.json"
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(state, default=repr))
        os.replace(temporary, path)  # a reader never sees half a file

    def read(self) -> dict[str, dict[str, Any]]:
        states = {}
        for path in sorted(self._folder.glob("*.state.json")):
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(path.read_text())
                states[state["name"]] = state
        return states


def describe(state: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A published state as a reader should see it: ``running`` only while it runs.

    A trigger whose process died without saying so (SIGKILL, a lost host) stops
    publishing; it is shown as ``gone`` instead of ``running`` once its state is
    :data:`STALE_AFTER` seconds old, or at once when its process ran on this host and
    no longer exists.
    """
    now = time.time() if now is None else now
    shown = dict(state)
    if shown.get("state") == "running" and (
        now - float(shown.get("updated", 0)) > STALE_AFTER or _ended_here(shown)
    ):
        shown["state"] = "gone"
    return shown


def _ended_here(state: dict[str, Any]) -> bool:
    """Whether the state's process ran on this host and is no more."""
    try:
        return process_ended(str(state["host"]), int(state["pid"]))
    except (KeyError, TypeError, ValueError):  # not a state this version wrote
        return False
