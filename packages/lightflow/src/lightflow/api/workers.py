"""Workers for API callers: who is there, stopping them, checking the state server.

Worker control goes through the broker (Celery's control messages); an unreachable
broker or refused credentials are one :class:`~lightflow.exceptions.LightflowError`
line (:mod:`lightflow.queue.broker`), never kombu's traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._cluster import cluster, require_broker, with_server_errors

if TYPE_CHECKING:
    from ..config import Config

T = TypeVar("T")


def list_workers(*, config: Config, timeout: float = 2.0) -> list[dict[str, Any]]:
    """Every live worker: ``name``, ``pid``, ``queues``, ``concurrency``, ``state``, and
    ``running`` (its jobs now: ``{"job", "args"}``; ``None`` when not known).

    Workers that answer are ``running``; one told to stop finishes its jobs first and
    answers nothing meanwhile, so it is listed from its own entry in the state server
    as ``stopping`` until it exits.

    Raises:
        NoBrokerError: No broker is configured.
        LightflowError: The broker cannot be reached.
    """
    from ..queue.worker import worker_status

    require_broker(config)
    return _on_broker(config, lambda: worker_status(config, timeout=timeout))


def stop_workers(names: Sequence[str] = (), *, config: Config) -> list[str]:
    """Ask workers (all, or the named ones) to shut down after their current jobs.

    Returns:
        The names of the workers that answered and were told to stop.

    Raises:
        NoBrokerError: No broker is configured.
        LightflowError: The broker cannot be reached.
    """
    from ..queue.worker import stop_workers as stop

    require_broker(config)
    return _on_broker(config, lambda: stop(config, list(names)))


def check_state_server(config: Config) -> None:
    """Make sure the Redis state server answers.

    Raises:
        NoBrokerError: No broker is configured.
        StateServerError: It cannot be reached or refuses the credentials (one line).
    """
    handle = cluster(config)
    with_server_errors(config, lambda: handle.redis.ping())


def _on_broker(config: Config, action: Callable[[], T]) -> T:
    """Run a worker-control call; a broker problem becomes one line.

    Celery's control calls let a refused password out as a traceback
    (``AccessRefused``) and wrap the rest in kombu's errors: every one of them is
    said in one line (:func:`~lightflow.queue.broker.broker_failure`).
    """
    from ..queue.broker import broker_failure

    try:
        return action()
    except Exception as error:
        failure = broker_failure(config, error)
        if failure is None:
            raise
        raise failure from None
