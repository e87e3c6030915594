"""Trigger sources: what extensions implement to make things start workflows.

A source watches one thing (a folder, a PV) and reports what happens there as
:class:`TriggerEvent` objects; it decides nothing. Batching (``aggregate``), rate
limiting (``debounce``), conditions, exactly-once bookkeeping and starting runs are
the trigger runtime's (:mod:`lightflow.triggers.runtime`), written once for every
kind of source; the 1.x trigger tasks (``NotifyTriggerTask``, ``PvTriggerTask``)
drive the same sources from inside a task (:mod:`lightflow.triggers.task`).

An extension contributes source classes through the ``lightflow_trigger_sources``
hook; each class has a :attr:`TriggerSource.kind`, the ``source:`` value of a
``triggers:`` entry in ``lightflow.cfg``.

Contract of a source, which the runtime relies on:

* :meth:`~TriggerSource.start` returns at once; events are then passed to ``emit``
  from any thread, **in the order they happened**, never two calls at once.
* :meth:`~TriggerSource.existing` lists, at start, what is already there and would
  have been reported had the source been watching (the files in a folder): the
  runtime hands off those its ledger has not seen, so a restart misses nothing.
* :meth:`~TriggerSource.stop` returns within 1 s; ``emit`` is not called after it.
* Events with a ``key`` are handed off exactly once per key (the ledger records keys);
  events without one (a PV's value changes) are never deduplicated.
* :meth:`~TriggerSource.accept` is the trigger's condition (``value > 3``), parsed
  by the source from its settings; the runtime applies it to every event first.
* :meth:`~TriggerSource.arguments` turns the events of one batch into the started
  run's workflow arguments (Python objects, validated by the workflow's
  ``Parameters`` like any other argument); the run gets those of
  :attr:`~TriggerSource.parameters` its workflow declares.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class TriggerEvent:
    """One thing a source saw happen.

    Attributes:
        key: What the event is about, for exactly-once hand-off (a file's path), or
            ``None`` for events that are never deduplicated (a PV's new value).
        values: What the event says, as plain data (``path``; ``pvname``, ``value``,
            ``timestamp``, ``severity``...).
        time: When it happened, seconds since the epoch.
    """

    key: str | None
    values: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0


Emit = Callable[[TriggerEvent], None]


class TriggerSource(abc.ABC):
    """Watches one thing and reports events; see the module docstring for the contract."""

    #: The ``source:`` value naming this kind in ``lightflow.cfg`` (``folder``, ``pv``).
    kind: ClassVar[str] = ""
    #: The workflow parameters :meth:`arguments` may fill (``files``; ``pvname``,
    #: ``value``...). A run gets those its workflow declares; a workflow that declares
    #: none of them is refused when the trigger starts.
    parameters: ClassVar[tuple[str, ...]] = ()
    #: What one event is, for log lines (``started run ... for 5 files``).
    noun: ClassVar[str] = "event"

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TriggerSource:
        """Build a source from the source-specific keys of a ``triggers:`` entry.

        Raises:
            lightflow.exceptions.ConfigError: A key is unknown, missing or invalid (one
                line naming the key and what is accepted).
        """

    @abc.abstractmethod
    def describe(self) -> str:
        """A short human description for logs and listings (``folder /data (*.h5)``)."""

    @abc.abstractmethod
    def start(self, emit: Emit) -> None:
        """Begin watching; return at once and pass every event to ``emit`` in order.

        Raises:
            lightflow.exceptions.LightflowError: The source cannot watch at all (the
                folder does not exist...): one line saying what and how to fix it.
        """

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop watching within 1 s; ``emit`` is not called after this returns."""

    def existing(self) -> Iterable[TriggerEvent]:
        """Events for what is already there when watching starts (none by default).

        Called once, after :meth:`start` (so nothing falls between the two; an item
        reported by both is handed off once, by its key).
        """
        return ()

    def arguments(self, events: Sequence[TriggerEvent]) -> dict[str, Any]:
        """The workflow arguments of a run started for ``events`` (one batch).

        By default the values of the last event (a PV's ``pvname``, ``value``...).
        """
        return dict(events[-1].values) if events else {}

    def forgotten(self, keys: Iterable[str]) -> Iterable[str]:
        """Of the keys handed off earlier, those whose item is gone for good.

        Called when the trigger starts, with every key of its ledger: the ledger drops
        the keys returned, so it holds what is there rather than everything that ever
        was, and an item that comes again under the same key is handed off again. A
        folder source returns the files that no longer exist (but none while the
        folder itself is missing: an unmounted share is not an empty one). By
        default nothing is forgotten.
        """
        return ()

    def accept(self, event: TriggerEvent) -> bool:
        """Whether ``event`` may start a run: the trigger's condition (default: all).

        Called by the runtime for every event, in order, in one thread, before
        debouncing and batching; a condition that needs the previous value (``rising``)
        may keep it on the source.
        """
        return True

    def status(self) -> dict[str, Any]:
        """What the source is doing now, as plain data (``{"state": "watching"}``).

        Listed by ``lightflow triggers list`` and the REST API; a source that can lose
        its connection says so (``"state": "disconnected"``).
        """
        return {"state": "watching"}


def event_names(events: Iterable[TriggerEvent]) -> str:
    """The events for a log line: their keys, or their values where they have none."""
    return ", ".join(str(e.key if e.key is not None else dict(e.values)) for e in events)
