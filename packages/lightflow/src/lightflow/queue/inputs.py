"""Task inputs and outputs in Redis: where a task's input comes from, and composing it.

A finished task's output (cloudpickled, flattened) is stored at
``lf:run:<id>:out:<instance>:<task>`` while a successor still needs it, and an
instance's start data (``start_dag(data=...)``) at ``...:out:<instance>:^start``. Each
successor composes its input from the outputs of its predecessors (slot aliases
included, :func:`lightflow.execution.compose_input`); the commit that records it
counts it as a consumer, and the commit of the last consumer deletes the output (see
:mod:`.dag_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cloudpickle

from ..engine.dag_run import DagSpec
from ..exceptions import LightflowError
from ..execution import compose_input, initial_data
from ..models.task_data import MultiTaskData
from . import state as rs

START = "^start"  # pseudo-predecessor holding an instance's start data


def output_key(run_id: str, instance: str, task: str) -> str:
    """The key of a task's stored output (or of the start data, for :data:`START`)."""
    return rs.run_key(run_id, "out", instance, task)


def input_keys(run_id: str, instance: str, spec: DagSpec, task: str) -> list[str]:
    """The keys of the stored outputs a task's input is composed from."""
    names = [name for name, _slot in spec.predecessors[task]] or [START]
    return [output_key(run_id, instance, name) for name in names]


def consumers(spec: DagSpec, name: str) -> int:
    """How many tasks consume the stored output of ``name`` (or the start data)."""
    if name == START:
        return sum(1 for task in spec.order if not spec.predecessors[task])
    return len(spec.successors[name])


def compose(
    run_id: str, instance: str, spec: DagSpec, task: str, blobs: Mapping[str, Any]
) -> MultiTaskData:
    """A task's input from the stored outputs of its predecessors (``blobs`` by key)."""
    predecessors = spec.predecessors[task]
    if not predecessors:
        blob = blobs.get(output_key(run_id, instance, START))
        return initial_data(None) if blob is None else cloudpickle.loads(blob)
    outputs: dict[str, MultiTaskData] = {}
    for name, _slot in predecessors:
        blob = blobs.get(output_key(run_id, instance, name))
        if blob is None:
            raise LightflowError(
                f"the output of task '{name}' in DAG '{instance}' is missing from the "
                "state server; was the Redis server restarted?"
            )
        outputs[name] = cloudpickle.loads(blob)
    # Each blob was unpickled for this task alone: hand every dataset over uncopied.
    return compose_input(predecessors, outputs, handed_over=set(outputs))
