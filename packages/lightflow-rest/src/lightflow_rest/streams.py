"""Server-Sent Event streams: every run's events, one run's events, one run's log.

**Every run** (``GET /api/v2/events``): one :class:`EventHub` per server process
follows the state server's stream of all runs' events (``api.follow_events`` with no
run) on one thread and hands each event to every open stream's queue, so a hundred
dashboards cost one Redis reader, not a hundred. A client that reconnects with
``Last-Event-ID`` (an entry id of that stream) is subscribed first, then what it
missed is read back from the state server up to where its queue begins, and the
queue's events it has already had are dropped by id: nothing is lost or repeated.
A client too slow to keep up (:data:`QUEUE_LIMIT` events behind) is ended, and
resumes the same way when it reconnects.

**One run** (``/runs/<id>/events``, ``/runs/<id>/logs/stream``): a reader thread per
stream follows the run (``api.follow_events`` by position in its history, which is
what ``Last-Event-ID`` means there; the log by line number) and the stream ends with
an ``end`` event when the run has ended.

Every stream sends a comment line after ``heartbeat`` idle seconds, so proxies keep
it open, and notices within about a second a client that went away (the server's
socket is watched where the server exposes it, gunicorn's ``gunicorn.socket``; a
failed write otherwise) or a server shutting down, and then frees its thread.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from lightflow import api
from lightflow.config import Config
from lightflow.exceptions import LightflowError

logger = logging.getLogger("lightflow_rest")

#: Events a stream's queue may hold before its client counts as too slow.
QUEUE_LIMIT = 10_000
#: Seconds a stream waits for an event before it looks at its client again.
WAKE_EVERY = 1.0


def event_id_key(event_id: str) -> tuple[int, int]:
    """An entry id of the stream of all runs (``1764000000000-3``) as a sortable key."""
    milliseconds, _, sequence = event_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def message(data: Any, *, event_id: str | None = None, event: str | None = None) -> str:
    """One SSE message: optional ``id:`` and ``event:`` lines, the data as JSON or text."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    lines.extend(f"data: {part}" for part in text.split("\n"))
    return "\n".join(lines) + "\n\n"


def client_watch(environ: dict[str, Any]) -> Callable[[], bool]:
    """A check of whether the client of a request has closed its connection.

    Under gunicorn the request's socket is at hand: a socket that is readable but
    yields no byte was closed by the client. Elsewhere the check says no, and a
    stream learns of the client's absence from its next failed write.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):  # reset, or already closed by the server
            return True

    return gone


class Subscription:
    """One open stream's queue of the events the hub hands it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_LIMIT)
        self.overflowed = False

    def put(self, event: Any) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.overflowed = True

    def get(self, timeout: float) -> Any | None:
        """The next event, or ``None`` after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def first_id(self) -> str | None:
        """The id of the oldest event waiting, if any."""
        with self._queue.mutex:
            return self._queue.queue[0].id if self._queue.queue else None


class EventHub:
    """Follows every run's events on one thread and fans them out to subscriptions.

    Args:
        config: The configuration (the state server).
        retry: Seconds between attempts while the state server cannot be reached.
    """

    def __init__(self, config: Config, *, retry: float = 2.0) -> None:
        self.config = config
        self.retry = retry
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._position: str | None = None

    def subscribe(self) -> Subscription:
        """A new subscription; every event the hub reads from now on goes to it."""
        subscription = Subscription()
        with self._lock:
            self._subscriptions.add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._follow, name="lightflow-rest-events", daemon=True
                )
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def _follow(self) -> None:
        while True:
            try:
                api.follow_events(config=self.config, on_event=self._publish, after=self._position)
            except LightflowError as error:
                logger.warning("following run events: %s; trying again in %g s", error, self.retry)
                time.sleep(self.retry)

    def _publish(self, event: Any) -> None:
        with self._lock:
            self._position = event.id
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.put(event)


class Stream:
    """What every stream needs: its heartbeat, and whether to go on.

    Args:
        heartbeat: Seconds of silence after which a comment line is sent.
        gone: Whether the client has gone.
        alive: Whether the server process is still serving (false while it shuts down).
    """

    def __init__(
        self, heartbeat: float, gone: Callable[[], bool], alive: Callable[[], bool]
    ) -> None:
        self.heartbeat = heartbeat
        self.gone = gone
        self.alive = alive
        self._last = time.monotonic()

    def ended(self) -> bool:
        """Whether to stop streaming: the client went away or the server is stopping."""
        return self.gone() or not self.alive()

    def idle(self) -> str | None:
        """A heartbeat comment when one is due (else ``None``)."""
        if time.monotonic() - self._last < self.heartbeat:
            return None
        return self.sent(": heartbeat\n\n")

    def sent(self, text: str) -> str:
        """``text``, noting that the stream was just written to."""
        self._last = time.monotonic()
        return text


def all_runs(hub: EventHub, stream: Stream, after: str | None) -> Iterator[str]:
    """The SSE messages of every run's events (after the entry id ``after``, if given)."""
    subscription = hub.subscribe()
    try:
        last = after
        if after is not None:
            for event in _missed(hub.config, subscription, after, stream):
                last = event.id
                yield stream.sent(message(event.to_dict(), event_id=event.id))
        yield stream.sent(": following every run\n\n")
        while not stream.ended():
            if subscription.overflowed:
                yield message("too far behind; reconnect with Last-Event-ID", event="error")
                return
            event = subscription.get(WAKE_EVERY)
            if event is None:
                beat = stream.idle()
                if beat:
                    yield beat
                continue
            if last is not None and event_id_key(event.id) <= event_id_key(last):
                continue  # already sent from the replay
            last = event.id
            yield stream.sent(message(event.to_dict(), event_id=event.id))
    finally:
        hub.unsubscribe(subscription)


def _missed(config: Config, subscription: Subscription, after: str, stream: Stream) -> list[Any]:
    """The events after ``after`` that came before ``subscription`` began to fill.

    Read until the replay reaches the subscription's first event, or the state
    server has nothing more (a read that waited and found nothing).
    """
    missed: list[Any] = []
    checks = {"count": 0, "seen": 0}

    def caught_up() -> bool:
        checks["count"] += 1
        if stream.ended() or (checks["count"] > 1 and len(missed) == checks["seen"]):
            return True
        checks["seen"] = len(missed)
        first = subscription.first_id()
        return (
            bool(missed)
            and first is not None
            and event_id_key(missed[-1].id) >= event_id_key(first)
        )

    api.follow_events(config=config, on_event=missed.append, after=after, until=caught_up)
    return missed


def one_run(config: Config, run_id: str, stream: Stream, after: int | None) -> Iterator[str]:
    """The SSE messages of one run's events (after position ``after``), then ``end``."""

    def follow(deliver: Callable[[Any], None], done: Callable[[], bool]) -> Any:
        return api.follow_events(
            config=config,
            run_id=run_id,
            on_event=deliver,
            after=None if after is None else str(after),
            until=done,
        )

    return _threaded(follow, stream, lambda event: message(event.to_dict(), event_id=event.id))


def run_log(config: Config, run_id: str, stream: Stream, after: int | None) -> Iterator[str]:
    """The SSE messages of one run's log lines (after line ``after``), then ``end``.

    Each message's id is the line's position, what ``api.follow_logs`` resumes after.
    """

    def follow(deliver: Callable[[Any], None], done: Callable[[], bool]) -> Any:
        position = -1 if after is None else after

        def line(text: str) -> None:
            nonlocal position
            position += 1
            deliver((position, text))

        return api.follow_logs(run_id, config=config, on_line=line, after=after, until=done)

    return _threaded(follow, stream, lambda line: message(line[1], event_id=str(line[0])))


class _End:
    """The last item of a threaded follow: the run's final record, or an error."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


def _threaded(
    follow: Callable[[Callable[[Any], None], Callable[[], bool]], Any],
    stream: Stream,
    render: Callable[[Any], str],
) -> Iterator[str]:
    """Run a blocking follow on a reader thread; the SSE messages of what it delivers.

    Yields ``render(item)`` for each delivered item, heartbeats in between, and last
    an ``end`` event with the run's final state (or ``{"error": ...}``). Stops the
    reader, within about a second, when the consumer stops (the client went away).
    """
    items: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stop = threading.Event()

    def read() -> None:
        try:
            record = follow(items.put, stop.is_set)
            items.put(_End({"state": (record or {}).get("state")}))
        except LightflowError as error:
            items.put(_End({"error": str(error)}))

    reader = threading.Thread(target=read, name="lightflow-rest-follow", daemon=True)
    reader.start()
    try:
        while not stream.ended():
            try:
                item = items.get(timeout=WAKE_EVERY)
            except queue.Empty:
                beat = stream.idle()
                if beat:
                    yield beat
                continue
            stream.sent("")
            if isinstance(item, _End):
                yield message(item.data, event="end")
                return
            yield render(item)
    finally:
        stop.set()
