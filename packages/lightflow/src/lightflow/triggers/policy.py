"""Deciding when events become a hand-off: batches of N, and at most one per window.

Pure bookkeeping with an injected clock, shared by the trigger runtime and the 1.x
trigger tasks, so ``aggregate`` and ``debounce`` mean the same everywhere:

* :class:`Batcher` groups events into batches of ``size`` (``aggregate``), in arrival
  order; with ``skip_duplicates`` an event whose key is already in the open batch is
  dropped (1.x ``skip_duplicate``). What is left at the end is :meth:`Batcher.flush`-ed
  or reported by the caller (:func:`left_over`), never dropped silently.
* :class:`Debouncer` lets the first event of a quiet period through at once (no added
  latency), folds the events that follow within ``window`` seconds, and at the
  window's end lets the newest folded one through with the number folded and the
  keys of the others (a run started for the newest file of a burst is the hand-off
  of the files folded into it too). So a value flapping at 100 Hz starts at most one
  run per window and the last value is never lost: what a stopping trigger still
  holds (:attr:`Debouncer.pending`) is reported with its open batch
  (:func:`left_over`).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from .source import TriggerEvent


class Batcher:
    """Groups events into batches of ``size`` (``None`` or 1: every event alone)."""

    def __init__(self, size: int | None = None, *, skip_duplicates: bool = False) -> None:
        if size is not None and size < 1:
            raise ValueError(f"a batch holds at least one event, got aggregate={size}")
        self.size = size or 1
        self.skip_duplicates = skip_duplicates
        self._events: list[TriggerEvent] = []
        self._keys: set[str] = set()

    @property
    def pending(self) -> list[TriggerEvent]:
        """The events of the open, not yet full batch."""
        return list(self._events)

    def add(self, event: TriggerEvent) -> list[TriggerEvent] | None:
        """Add one event; return the batch it completes, else ``None``."""
        if self.skip_duplicates and event.key is not None:
            if event.key in self._keys:
                return None
            self._keys.add(event.key)
        self._events.append(event)
        if len(self._events) >= self.size:
            return self.flush()
        return None

    def flush(self) -> list[TriggerEvent]:
        """Close the open batch and return it (possibly empty or partial)."""
        batch, self._events, self._keys = self._events, [], set()
        return batch


@dataclass(frozen=True)
class Release:
    """An event the debouncer lets through, and what it folded into it.

    Attributes:
        event: The event let through.
        folded: How many events of its window were dropped in its favour.
        folded_keys: The keys of those that had one: handed off with ``event``.
    """

    event: TriggerEvent
    folded: int = 0
    folded_keys: tuple[str, ...] = ()


class Debouncer:
    """At most one event per ``window`` seconds; see the module docstring.

    ``window`` 0 (or less) lets every event through.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._closes_at: float | None = None  # end of the current window
        self._latest: TriggerEvent | None = None  # newest event folded in this window
        self._folded = 0
        self._folded_keys: list[str] = []  # keys of the events folded before it

    def offer(self, event: TriggerEvent) -> Release | None:
        """An event arrived: return it if it may go now, else fold it."""
        if self.window <= 0:
            return Release(event)
        now = self._clock()
        released = self.expire(now)
        if released is not None:  # the window closed unnoticed: its event goes first
            self._latest, self._folded = event, 1
            return released
        if self._closes_at is None:
            self._closes_at = now + self.window
            return Release(event)
        if self._latest is not None and self._latest.key is not None:
            self._folded_keys.append(self._latest.key)
        self._latest = event
        self._folded += 1
        return None

    @property
    def pending(self) -> TriggerEvent | None:
        """The event waiting for its window's end, if any (what a stop would lose)."""
        return self._latest

    def due(self) -> float | None:
        """Seconds until the open window closes (``None``: no window open)."""
        if self._closes_at is None:
            return None
        return max(self._closes_at - self._clock(), 0.0)

    def expire(self, now: float | None = None) -> Release | None:
        """Close the window if its time is up: the newest folded event, if any, goes.

        The event let through opens the next window, so releases stay a window apart.
        """
        if self._closes_at is None:
            return None
        now = self._clock() if now is None else now
        if now < self._closes_at:
            return None
        latest, folded, keys = self._latest, self._folded, tuple(self._folded_keys)
        self._latest, self._folded, self._folded_keys = None, 0, []
        if latest is None:
            self._closes_at = None
            return None
        self._closes_at = now + self.window
        return Release(latest, folded - 1, keys)


def left_over(
    batcher: Batcher,
    events: queue.SimpleQueue[TriggerEvent],
    debouncer: Debouncer | None = None,
) -> list[TriggerEvent]:
    """What a stopping trigger never handed on, in order.

    Its open batch, the event its debouncer holds back, then its queued events.
    """
    left = batcher.flush()
    if debouncer is not None and debouncer.pending is not None:
        left.append(debouncer.pending)
    while True:
        try:
            left.append(events.get_nowait())
        except queue.Empty:
            return left
