"""Following runs for API callers: their events and their log lines, live or after.

Events are :class:`~lightflow.events.RunEvent` objects with an ``id`` that orders
them, so a follower that reconnects (an SSE client's ``Last-Event-ID``) gives the last
id it saw and misses nothing: an event of one run has its position in the run's
history as id (``"0"``, ``"1"``, ...); an event of the stream of all runs has its
entry id in that stream (``"1764000000000-0"``). Nothing here polls: followers block
on the state server until something arrives, waking at least every second to honour
timeouts.

A follower that loses the state server once it is following (a Redis restart) does
not give up: the run goes on without it, and a script trusting ``workflow start
--wait`` would be misled. It logs one warning per outage (``lightflow.api``), tries
again every second and gives up only after :data:`OUTAGE_LIMIT` seconds, with the
one-line error it would have raised at once. A state server that cannot be reached
when following starts is that error at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import FollowTimeout
from ._cluster import cluster, resolve_run_id, with_server_errors

if TYPE_CHECKING:
    from ..config import Config
    from ..events import RunEvent
    from ..records import EventListener

T = TypeVar("T")

#: Seconds a follower blocks on the state server at most before it looks at the time.
WAKE_EVERY = 1.0
#: Seconds a follower waits through an outage of the state server before it gives up
#: (a Redis restart with a large append-only file takes a while to load).
OUTAGE_LIMIT = 600.0

logger = logging.getLogger("lightflow.api")


class _Outage:
    """Rides out an outage of the state server while following: says so once per
    outage, waits a second per try, and re-raises after :data:`OUTAGE_LIMIT`."""

    def __init__(self, config: Config, what: str) -> None:
        self._config = config
        self._what = what
        self._since: float | None = None

    def wait(self, error: Exception) -> None:
        """The state server failed: wait a second, or raise ``error`` if it is over.

        Raises:
            Exception: ``error`` itself, when it is no outage (refused credentials,
                a failing command) or the outage has lasted too long.
        """
        import redis

        outage = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        if isinstance(error, redis.exceptions.AuthenticationError) or not isinstance(error, outage):
            raise error
        now = time.monotonic()
        if self._since is None:
            from ..config import redact_url
            from ..queue.driver import state_url

            self._since = now
            logger.warning(
                "lost the Redis state server at %s (%s); still %s, for up to %g s",
                redact_url(state_url(self._config)),
                str(error).rstrip("."),
                self._what,
                OUTAGE_LIMIT,
            )
        if now - self._since > OUTAGE_LIMIT:
            raise error
        time.sleep(WAKE_EVERY)

    @property
    def ongoing(self) -> bool:
        """Whether the last read failed (the state server may have lost recent writes)."""
        return self._since is not None

    def retry(self, read: Callable[[], T]) -> T:
        """``read()``, tried again through an outage (see :meth:`wait`)."""
        while True:
            try:
                result = read()
            except Exception as error:
                self.wait(error)
                continue
            self.over()
            return result

    def over(self) -> None:
        """The state server answered: an outage, if there was one, has ended."""
        if self._since is not None:
            logger.info(
                "the Redis state server answers again after %.0f s", time.monotonic() - self._since
            )
            self._since = None


def follow_events(
    *,
    config: Config,
    run_id: str | None = None,
    on_event: EventListener,
    stop_when_finished: bool = True,
    timeout: float | None = None,
    after: str | None = None,
    until: Callable[[], bool] | None = None,
) -> dict[str, Any] | None:
    """Deliver run events as they happen: of one run, or of all runs.

    For one run, its past events come first (so nothing is missed between
    :func:`~lightflow.api.start_workflow` and this call), then the live ones; with
    ``stop_when_finished`` following ends with the run's ``workflow_finished`` event.
    For all runs, only events from now on (or after ``after``) come.

    Args:
        config: The configuration.
        run_id: The run to follow (a unique prefix will do); ``None``: every run.
        on_event: Called with each event, in order; ``event.id`` is its position.
        stop_when_finished: For one run, return when it has finished.
        timeout: Give up after this many seconds (for all runs: return then).
        after: The id of the last event already seen; only later ones come.
        until: Checked at least every second: following ends when it returns true
            (a client that went away).

    Returns:
        The run's final record when following one run ended with it, else ``None``.

    Raises:
        RunNotFoundError: No such run.
        FollowTimeout: ``timeout`` passed before the run finished (it goes on).
        StateServerError: The state server cannot be reached when following starts,
            or an outage lasted longer than :data:`OUTAGE_LIMIT` (one shorter than
            that is waited out, with one warning).
    """
    from ..queue import history
    from ..queue import state as rs

    handle = cluster(config)
    client = handle.redis
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = _Outage(config, f"following run {run_id}" if run_id else "following the runs")

    def expired() -> bool:
        """Whether to end following (a client gone, the time up for all runs)."""
        if until is not None and until():
            return True
        if deadline is None or time.monotonic() <= deadline:
            return False
        if run_id is None:
            return True  # following every run has no end of its own: time is up
        raise FollowTimeout(
            f"run {run_id} did not finish within {timeout:g} s; it goes on: "
            "`lightflow workflow status` shows it"
        )

    def follow_all() -> None:
        position = after or rs.event_log_end(client)
        while not expired():
            try:
                entries = rs.read_event_log(client, position, block=WAKE_EVERY)
            except Exception as error:
                outage.wait(error)
                continue
            outage.over()
            for entry, _run, data in entries:
                position = entry
                on_event(_event(data, entry))

    def follow_one(full_id: str) -> dict[str, Any] | None:
        # Where the live stream is before the history is read: an event written in
        # between is in both, and is recognised by its place in the history.
        position = rs.event_log_end(client)
        seen = int(after) + 1 if after is not None else 0
        for data in history.read_events(handle, full_id, seen):
            seen += 1
            if deliver(data, seen - 1):
                return rs.read_run(client, full_id)
        while not expired():
            try:
                entries = rs.read_event_log(client, position, block=WAKE_EVERY)
                # A restarted server may have lost the stream's newest entries (one
                # second of an append-only file): after an outage, read the history.
                mine = outage.ongoing or any(run == full_id for _entry, run, _data in entries)
                recent = history.read_events(handle, full_id, seen) if mine else []
            except Exception as error:
                outage.wait(error)
                continue
            outage.over()
            if entries:
                position = entries[-1][0]
            # The history is the order of record: deliver what it holds beyond `seen`.
            for data in recent:
                seen += 1
                if deliver(data, seen - 1):
                    return outage.retry(lambda: rs.read_run(client, full_id))
        return None

    def deliver(data: dict[str, Any], index: int) -> bool:
        """Hand the event on; True when following should end."""
        event = _event(data, str(index))
        on_event(event)
        return stop_when_finished and event.kind.value == "workflow_finished"

    def follow() -> dict[str, Any] | None:
        if run_id is None:
            follow_all()
            return None
        return follow_one(resolve_run_id(client, run_id))

    return with_server_errors(config, follow)


def _event(data: dict[str, Any], event_id: str) -> RunEvent:
    from ..events import EventKind, RunEvent

    fields = {**data, "kind": EventKind(data["kind"]), "id": event_id}
    return RunEvent(**fields)


def run_logs(
    run_id: str, *, config: Config, offset: int = 0, limit: int | None = None
) -> list[str]:
    """The log lines the run's tasks wrote (print and logging), oldest first.

    Args:
        run_id: The run (a unique prefix will do).
        config: The configuration.
        offset: Skip this many lines first (paging).
        limit: At most this many lines.

    Raises:
        RunNotFoundError: No such run.
    """
    from ..queue import history

    handle = cluster(config)
    client = handle.redis

    def read() -> list[str]:
        lines = history.read_log(handle, resolve_run_id(client, run_id))[0]
        return lines[offset : None if limit is None else offset + limit]

    return with_server_errors(config, read)


def follow_logs(
    run_id: str,
    *,
    config: Config,
    on_line: Callable[[str], None],
    timeout: float | None = None,
    after: int | None = None,
    until: Callable[[], bool] | None = None,
) -> dict[str, Any] | None:
    """Deliver a run's log lines as its tasks write them, until the run has ended.

    The lines written so far come first. Returns the run's final record once it has
    ended and every line of it was delivered (at once for a finished run).

    Args:
        run_id: The run (a unique prefix will do).
        config: The configuration.
        on_line: Called with each line, in order.
        timeout: Give up after this many seconds (the run goes on).
        after: The position of the last line already seen (0 for the first line, as
            :func:`run_logs`'s ``offset`` counts): only later lines come.
        until: Checked at least every second: following ends, returning ``None``,
            when it returns true (a client that went away).

    Raises:
        RunNotFoundError: No such run.
        FollowTimeout: ``timeout`` seconds passed before it ended.
        StateServerError: The state server cannot be reached when following starts,
            or an outage lasted longer than :data:`OUTAGE_LIMIT` (one shorter than
            that is waited out, with one warning).
    """
    from ..queue import history
    from ..queue import state as rs

    handle = cluster(config)
    client = handle.redis
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = _Outage(config, f"following the log of run {run_id}")
    skip = -1 if after is None else after  # positions up to this one are not delivered

    def follow() -> dict[str, Any] | None:
        full_id = resolve_run_id(client, run_id)
        last, position = "0-0", -1
        while True:
            if until is not None and until():
                return None
            try:
                # Read the state first: a task's lines are written before its end, so
                # once the run has ended, the read after it holds every remaining line.
                record = rs.read_run(client, full_id) or {}
                ended = record.get("state") in rs.FINISHED_STATES
                block = None if ended else 0.5
                lines, last = history.read_log(handle, full_id, last, block=block)
            except Exception as error:
                outage.wait(error)
                ended, lines = False, []
            else:
                outage.over()
            for line in lines:
                position += 1
                if position > skip:
                    on_line(line)
            if ended and not lines:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise FollowTimeout(
                    f"run {full_id} did not end within {timeout:g} s; it goes on: "
                    "`lightflow workflow status` shows it"
                )

    return with_server_errors(config, follow)
