"""What a trigger is: :class:`TriggerSpec`, from code, the command line or ``lightflow.cfg``.

A trigger is a source (what to watch), a workflow to start and how events become
runs. The ``triggers:`` section of ``lightflow.cfg`` declares triggers by name::

    triggers:
      detector:
        source: folder          # a kind an installed extension provides
        workflow: compress      # a workflow name (or file)
        aggregate: 5            # events per run (default 1)
        debounce: 0             # seconds: at most one run per window (default 0: off)
        arguments:              # further workflow arguments, fixed
          beamline: p11
        queue: workflow         # the cluster queue of the workflow job
        keep_data: false        # keep the runs' store data (cluster)
        path: /data/detector    # every other key is the source's (its from_settings)
        patterns: ['*.h5']

:func:`specs_from_config` turns the section into specs; every mistake is one
:class:`~lightflow.exceptions.ConfigError` line naming the trigger and the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError
from .source import TriggerSource

if TYPE_CHECKING:
    from ..config import Config

#: The keys of a ``triggers:`` entry that the runtime reads; the others are the source's.
COMMON_KEYS = ("source", "workflow", "arguments", "aggregate", "debounce", "queue", "keep_data")
STATE_DIR_ENV = "LIGHTFLOW_STATE_DIR"


@dataclass
class TriggerSpec:
    """One trigger: what to watch, what to start, how events become runs.

    Attributes:
        name: Unique among triggers; the trigger's ledger and state are kept under
            it, so a trigger started again under the same name continues where it was.
        source: What to watch.
        workflow: The workflow to start (a name in the workflow folders, or a file).
        arguments: Further workflow arguments, the same for every run (text is
            converted by the workflow's ``Option`` types, as on the command line).
        aggregate: Events per run (``None``: one run per event).
        debounce: Seconds; at most one run per window, the events in between folded.
        queue: The queue of the workflow job (cluster only).
        keep_data: Keep each run's store data after it ends (cluster only).
    """

    name: str
    source: TriggerSource
    workflow: str
    arguments: dict[str, Any] = field(default_factory=dict)
    aggregate: int | None = None
    debounce: float = 0.0
    queue: str = "workflow"
    keep_data: bool = False

    def __post_init__(self) -> None:
        where = f"trigger '{self.name}'"
        if not self.name.strip():
            raise ConfigError("a trigger needs a name")
        if not str(self.workflow).strip():
            raise ConfigError(f"{where}: no workflow to start; name one")
        if self.aggregate is not None and (
            isinstance(self.aggregate, bool)
            or not isinstance(self.aggregate, int)
            or self.aggregate < 1
        ):
            raise ConfigError(
                f"{where}: aggregate must be a whole number of events of at least 1, "
                f"got {self.aggregate!r}"
            )
        if (
            isinstance(self.debounce, bool)
            or not isinstance(self.debounce, (int, float))
            or (self.debounce < 0)
        ):
            raise ConfigError(
                f"{where}: debounce must be a number of seconds (0 for none), got {self.debounce!r}"
            )
        if not isinstance(self.queue, str) or not self.queue.strip():
            raise ConfigError(f"{where}: the queue name must not be empty")
        if not isinstance(self.arguments, Mapping) or not all(
            isinstance(key, str) for key in self.arguments
        ):
            raise ConfigError(f"{where}: arguments must map parameter names to values")
        self.arguments = dict(self.arguments)


def specs_from_config(
    config: Config,
    names: Iterable[str] = (),
    kinds: Mapping[str, type[TriggerSource]] | None = None,
) -> list[TriggerSpec]:
    """The triggers declared in the configuration's ``triggers:`` section.

    Args:
        config: The configuration.
        names: Only these triggers (default: all).
        kinds: Source classes by kind (default: those the installed extensions
            provide through the ``lightflow_trigger_sources`` hook).

    Raises:
        ConfigError: A named trigger is not declared, or an entry is invalid.
    """
    declared = config.triggers
    wanted = list(names) or list(declared)
    for name in wanted:
        if name not in declared:
            known = ", ".join(declared) or "none are declared"
            raise ConfigError(
                f"no trigger named '{name}' in the 'triggers' section of "
                f"{config.source or 'the configuration'} (triggers: {known})"
            )
    if kinds is None:
        from ..plugins.manager import trigger_sources

        kinds = {kind: source for kind, (_plugin, source) in trigger_sources().items()}
    return [_spec(name, declared[name], kinds) for name in wanted]


def _spec(name: str, settings: Any, kinds: Mapping[str, type[TriggerSource]]) -> TriggerSpec:
    where = f"triggers.{name}"
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where} must be a mapping of settings, got {type(settings).__name__}")
    kind = settings.get("source")
    if not isinstance(kind, str) or kind not in kinds:
        available = ", ".join(sorted(kinds)) or "none: install an extension that provides one"
        problem = "has no 'source'" if kind is None else f"has an unknown source '{kind}'"
        raise ConfigError(f"{where} {problem}; the kinds installed are: {available}")
    source_settings = {k: v for k, v in settings.items() if k not in COMMON_KEYS}
    try:
        source = kinds[kind].from_settings(source_settings)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    return TriggerSpec(
        name=name,
        source=source,
        workflow=str(settings.get("workflow") or ""),
        arguments=settings.get("arguments") or {},
        aggregate=settings.get("aggregate"),
        debounce=settings.get("debounce") or 0.0,
        queue=settings.get("queue") or "workflow",
        keep_data=bool(settings.get("keep_data", False)),
    )


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where triggers on the embedded engine keep their ledgers and state.

    ``$LIGHTFLOW_STATE_DIR``, else ``$XDG_STATE_HOME/lightflow/triggers``, else
    ``~/.local/state/lightflow/triggers``.
    """
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV]).expanduser()
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "lightflow" / "triggers"
