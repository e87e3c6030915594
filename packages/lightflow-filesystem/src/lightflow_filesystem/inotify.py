"""watchdog's inotify observer, as both sources use it.

watchdog 7 logs an ERROR line ("InotifyEmitter.queue_events() called when the thread
is inactive") when an event arrives in the instant its observer is being stopped: a
race inside watchdog that loses nothing (the source stops listening first), but the
line would reach the console of every ``lightflow run`` whose trigger stops while
files arrive. It is filtered out here, and only it.
"""

from __future__ import annotations

import logging
from typing import Any

from lightflow.exceptions import LightflowError

_STOP_RACE = "InotifyEmitter.queue_events() called when the thread is inactive"


class _StopRaceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _STOP_RACE


def inotify_observer(path: str, *, full_events: bool = False) -> Any:
    """A new, not yet started ``InotifyObserver`` for watching ``path``.

    Args:
        path: What will be watched (for the error message).
        full_events: Report a file moved in from outside as a move (watchdog's
            ``generate_full_events``), not as a creation.

    Raises:
        LightflowError: inotify is not available on this system.
    """
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:
        raise LightflowError(
            f"cannot watch {path}: inotify is not available on this system; poll instead"
        ) from None
    watchdog_logger = logging.getLogger("watchdog.observers.inotify")
    if not any(isinstance(f, _StopRaceFilter) for f in watchdog_logger.filters):
        watchdog_logger.addFilter(_StopRaceFilter())
    return InotifyObserver(generate_full_events=full_events)
