"""What running tasks hold that must be let go when their run gives them up.

A task normally cleans up after itself: a ``BashTask`` terminates its command when it
ends or sees a stop, a trigger task stops its watcher. But a run that gives its tasks
up (a second Ctrl-C under ``lightflow run``, the process about to end) does not wait
for them, and what they hold outside the process would outlive it: a command in a
session of its own, an inotify watch, a Channel Access subscription. So a task
registers, for as long as it holds such a thing, how to let go of it at once
(:func:`hold` / :func:`let_go`, or :func:`holding` around a block), and the engine
calls :func:`release_all` when it gives its tasks up. The core's ``BashTask`` and the
extensions' trigger tasks use the same protocol; the engine knows no task type.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator

logger = logging.getLogger("lightflow.tasks")

_held: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_tokens = itertools.count()


def hold(release: Callable[[], None]) -> int:
    """Register ``release``, to be called if the run gives the task up; return a token."""
    with _lock:
        token = next(_tokens)
        _held[token] = release
    return token


def let_go(token: int) -> None:
    """The task let go of it itself: forget the release registered under ``token``."""
    with _lock:
        _held.pop(token, None)


@contextlib.contextmanager
def holding(release: Callable[[], None]) -> Iterator[None]:
    """Keep ``release`` registered while the block runs."""
    token = hold(release)
    try:
        yield
    finally:
        let_go(token)


def release_all() -> None:
    """Call every registered release once, now (a release that fails is logged).

    For a process about to end: what its given-up tasks hold goes first.
    """
    with _lock:
        releases = list(_held.values())
        _held.clear()
    for release in releases:
        try:
            release()
        except Exception as error:  # one failing release must not keep the others
            logger.warning("releasing what a given-up task held failed: %s", error)
