"""Reaching the cluster for the API: the broker check, server errors, run ids.

Every function of the API that works on the distributed engine gets its
:class:`~lightflow.queue.driver.Cluster` from :func:`cluster` (which refuses without a
broker), runs its state-server work through :func:`with_server_errors` (connection
failures become one :class:`~lightflow.exceptions.StateServerError` line, see
:func:`lightflow.queue.state.server_errors`) and resolves
run ids with :func:`resolve_run_id` (a unique prefix will do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import LightflowError, NoBrokerError, RunNotFoundError

if TYPE_CHECKING:
    from ..config import Config
    from ..queue.driver import Cluster

T = TypeVar("T")


def require_broker(config: Config) -> Config:
    """``config``, if a broker is configured.

    Raises:
        NoBrokerError: None is. It is never assumed: without one, a 1.x habit like
            ``workflow start`` would otherwise queue work on whatever listens on
            localhost.
    """
    if not config.broker_configured:
        raise NoBrokerError(
            f"no broker configured: set celery.broker_url in {config.file_name} or "
            "LIGHTFLOW_CELERY__BROKER_URL (`lightflow run` runs a workflow here without one)"
        )
    return config


#: Handles kept per configuration object (a few at most: a process uses one or two).
_HANDLES_KEPT = 8
_handles: dict[int, tuple[Config, Cluster]] = {}
_handles_lock = threading.Lock()


def cluster(config: Config) -> Cluster:
    """The process's handle on the cluster of ``config`` (connects lazily).

    One handle per configuration object, so that a long-lived caller (the REST
    server, a trigger) keeps one Redis pool and one MongoDB client instead of opening
    new ones per call; the oldest of more than :data:`_HANDLES_KEPT` is dropped.

    Raises:
        NoBrokerError: No broker is configured.
    """
    from ..queue.driver import Cluster

    require_broker(config)
    with _handles_lock:
        kept = _handles.get(id(config))
        if kept is not None and kept[0] is config:
            return kept[1]
        handle = Cluster(config)
        _handles[id(config)] = (config, handle)  # the config kept too: its id stays its
        while len(_handles) > _HANDLES_KEPT:
            _handles.pop(next(iter(_handles)))
        return handle


def with_server_errors(config: Config, action: Callable[[], T]) -> T:
    """Run ``action``; turn failures of the state server into one-line errors.

    Raises:
        StateServerError: The server cannot be reached, refuses the credentials, or
            failed.
    """
    from ..queue.driver import state_url
    from ..queue.state import server_errors

    return server_errors(state_url(config), action)


def resolve_run_id(client: Any, run_id: str) -> str:
    """The full id of the run ``run_id`` names (itself, or a unique prefix of one).

    Raises:
        RunNotFoundError: No run has that id or prefix.
        LightflowError: The prefix is ambiguous.
    """
    from ..queue import state

    if not run_id.strip():
        raise RunNotFoundError("an empty run id names no run")
    if client.exists(state.run_key(run_id)):
        return run_id
    matches = [rid for rid in state.iter_runs(client) if rid.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError(
            f"no workflow run with id '{run_id}'; `lightflow workflow status` lists the runs"
        )
    raise LightflowError(f"run id prefix '{run_id}' is ambiguous ({len(matches)} runs)")
