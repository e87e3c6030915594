"""Driving a trigger source from inside a task: the loop of the 1.x trigger tasks.

``NotifyTriggerTask``, ``NewLineTriggerTask`` and ``PvTriggerTask`` (1.x) watch
something for as long as their run lasts and call the user's callback per batch of
events. They share this loop, so each is only its source and its callback's
signature:

* event-driven: the task's thread sleeps until an event arrives or it is time to look
  at the stop flag (every :data:`STOP_CHECK_INTERVAL` seconds), so an idle trigger
  costs ~0% CPU and ``workflow stop``/Ctrl-C ends it within 1 s (1.x polled, busily
  with ``event_trigger_time=None``, and checked for a stop every few events);
* events are handled in the order they happened (1.x popped the newest first);
* the callback runs in the task's own thread (its output is the task's) once per
  ``aggregate`` events; events still waiting in a partial batch when the task stops
  are logged by key, never dropped silently;
* the source is stopped however the loop ends, and also if the run gives the task up
  (:func:`lightflow.tasks.release.holding`).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterable
from typing import Any

from ..tasks.release import holding
from .policy import Batcher, left_over
from .source import TriggerEvent, TriggerSource, event_names

#: Seconds between two looks at the stop flag while no event arrives.
STOP_CHECK_INTERVAL = 0.25

logger = logging.getLogger("lightflow.triggers")


def watch_in_task(
    source: TriggerSource,
    signal: Any,
    handle: Callable[[list[TriggerEvent]], None],
    *,
    aggregate: int | None = None,
    skip_duplicates: bool = False,
    existing: bool = False,
    flush_existing: bool = True,
    describe: Callable[[Iterable[TriggerEvent]], str] | None = None,
) -> None:
    """Watch ``source`` until the task's DAG or workflow is stopped.

    Args:
        source: The source to watch (started and stopped here).
        signal: The task's ``signal`` (its ``is_stopped`` ends the watch).
        handle: Called in this thread with each batch of events, in order.
        aggregate: Events per batch (``None``: one at a time).
        skip_duplicates: Drop an event whose key is already in the open batch.
        existing: Hand the source's :meth:`~TriggerSource.existing` events in first.
        flush_existing: With ``existing``: hand a partial batch of them over at once
            instead of waiting for new events to fill it (1.x ``flush_existing``).
        describe: How to name left-over events in the log (default: their keys).

    Raises:
        Whatever ``handle`` raises (the task fails); the source is stopped first.
    """
    events: queue.SimpleQueue[TriggerEvent] = queue.SimpleQueue()
    batcher = Batcher(aggregate, skip_duplicates=skip_duplicates)
    source.start(events.put)
    with holding(source.stop):
        try:
            if existing:
                for event in source.existing():
                    _add(batcher, event, handle)
                if flush_existing and batcher.pending:
                    handle(batcher.flush())
            while not signal.is_stopped:
                try:
                    event = events.get(timeout=STOP_CHECK_INTERVAL)
                except queue.Empty:
                    continue
                _add(batcher, event, handle)
        finally:
            source.stop()
            _report_left_over(left_over(batcher, events), source, describe)


def _add(
    batcher: Batcher, event: TriggerEvent, handle: Callable[[list[TriggerEvent]], None]
) -> None:
    batch = batcher.add(event)
    if batch:
        handle(batch)


def _report_left_over(
    partial: list[TriggerEvent],
    source: TriggerSource,
    describe: Callable[[Iterable[TriggerEvent]], str] | None,
) -> None:
    """Log the events that were never handed to the callback (one line)."""
    if partial:
        logger.warning(
            "%s: %d %s(s) not handed to the callback when the task stopped: %s",
            source.describe(),
            len(partial),
            source.noun,
            (describe or event_names)(partial),
        )
