"""Triggers: long-running watchers that start workflows when something happens.

Extensions contribute *sources* (a folder, a PV: :class:`TriggerSource`, through the
``lightflow_trigger_sources`` hook); the core decides what to do with their events,
once for every kind: conditions, debouncing and batching (:mod:`.policy`),
exactly-once bookkeeping across restarts and starting runs on either engine
(:mod:`.runtime`). The 1.x trigger tasks drive the same sources from inside a task
(:func:`watch_in_task`).
"""

from .policy import Batcher, Debouncer, Release
from .runtime import TriggerRuntime, run_triggers
from .settings import TriggerSpec, specs_from_config
from .source import Emit, TriggerEvent, TriggerSource, event_names
from .task import watch_in_task

__all__ = [
    "Batcher",
    "Debouncer",
    "Emit",
    "Release",
    "TriggerEvent",
    "TriggerRuntime",
    "TriggerSource",
    "TriggerSpec",
    "event_names",
    "run_triggers",
    "specs_from_config",
    "watch_in_task",
]
