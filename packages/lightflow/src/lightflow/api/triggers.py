"""Triggers for API callers: the kinds installed, the triggers declared and running."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cluster import cluster, with_server_errors

if TYPE_CHECKING:
    from ..config import Config


def trigger_kinds() -> list[str]:
    """The kinds of trigger source the installed extensions provide (``folder``, ``pv``)."""
    from ..plugins.manager import trigger_sources

    return sorted(trigger_sources())


def list_triggers(*, config: Config, state_dir: Path | None = None) -> list[dict[str, Any]]:
    """Triggers declared in the configuration and those running, with their state.

    A declared trigger that no process runs has state ``not running``; one whose
    process stopped publishing (killed) is ``gone``. The states come from the embedded
    engine's state folder (``state_dir``, default
    :func:`lightflow.triggers.settings.default_state_dir`) and, with a broker
    configured, from the state server (where cluster triggers publish; a trigger
    run ``--embedded`` on the same configuration still publishes to the folder).
    Each entry holds at least ``name``, ``kind``, ``workflow`` and ``state``; a
    trigger that ran also its counts (``events``, ``runs``, ``folded``...), its
    ``last_run`` and ``error`` (see :mod:`lightflow.triggers.runtime`).

    Raises:
        StateServerError: The state server cannot be reached.
    """
    from ..triggers import status
    from ..triggers.settings import default_state_dir

    states = status.FileStatusBoard(state_dir or default_state_dir()).read()
    if config.broker_configured:
        client = cluster(config).redis
        states.update(with_server_errors(config, lambda: status.RedisStatusBoard(client).read()))
    listed: list[dict[str, Any]] = []
    for name, settings in config.triggers.items():
        entry: dict[str, Any] = {"name": name, "state": "not running"}
        if isinstance(settings, Mapping):
            entry.update(kind=settings.get("source"), workflow=settings.get("workflow"))
        if name in states:
            entry.update(status.describe(states.pop(name)))
        listed.append(entry)
    listed.extend(status.describe(state) for state in states.values())
    return listed
