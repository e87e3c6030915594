"""Running one task and composing its input: the part both engines share.

The state machine in :mod:`lightflow.engine` decides *which* task runs; this module
does what happens around one task: build its input from its predecessors' outputs
(slot aliases included), call ``BaseTask._run``, and turn how it ended into a
:class:`TaskOutcome` the driver feeds back to the state machine. User errors are
reduced to a one-line message plus the traceback of the user's own frames.
"""

from __future__ import annotations

import copy
import linecache
import traceback as _traceback
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine.dag_run import TaskState
from .exceptions import AbortWorkflow, StopTask
from .models.action import Action
from .models.context import TaskContext
from .models.task import BaseTask
from .models.task_data import MultiTaskData, TaskData

_PACKAGE_DIR = Path(__file__).resolve().parent
_DYNAMIC_CODE = "<dynamic-code>"  # cloudpickle's file name for code pickled by value


@dataclass
class TaskOutcome:
    """How a task run ended.

    Attributes:
        state: SUCCEEDED, STOPPED, FAILED or ABORTED.
        data: The output data for the successors (the input, for stopped tasks).
        limit: Successors allowed to run (``None``: all), for SUCCEEDED.
        skip_successors: For STOPPED: whether the successors are skipped.
        message: One-line reason for STOPPED, FAILED, ABORTED.
        traceback: The user's part of the traceback, for FAILED.
    """

    state: TaskState
    data: MultiTaskData
    limit: list[str] | None = None
    skip_successors: bool = True
    message: str = ""
    traceback: str | None = None


def initial_data(data: Any) -> MultiTaskData:
    """Normalise the data given to a DAG's start tasks (``start_dag(data=...)``)."""
    if data is None:
        result = MultiTaskData()
        result.add_dataset("")
        return result
    if isinstance(data, MultiTaskData):
        return data.copy()
    if isinstance(data, TaskData):
        return MultiTaskData(dataset=data.copy())
    if isinstance(data, Mapping):
        return MultiTaskData(dataset=TaskData(copy.deepcopy(dict(data))))
    raise TypeError(
        f"start_dag(data=...) takes MultiTaskData, TaskData or a dict, got {type(data).__name__}"
    )


def compose_input(
    predecessors: tuple[tuple[str, str | None], ...],
    outputs: Mapping[str, MultiTaskData],
    handed_over: Container[str] = (),
) -> MultiTaskData:
    """Build a task's input: one dataset per predecessor, aliased by slot label.

    Args:
        predecessors: ``(name, slot)`` pairs in DAG order (``DagRun.inputs_of``).
        outputs: The flattened output of each finished predecessor.
        handed_over: Predecessors whose output this task is the last to consume: their
            dataset is passed as it is instead of copied, so a large payload is not
            copied on a simple chain. Every other dataset is copied so that successors
            sharing a predecessor never see each other's changes.
    """
    data = MultiTaskData()
    for name, slot in predecessors:
        dataset = outputs[name].default_dataset
        data.add_dataset(
            name,
            dataset if name in handed_over else dataset.copy(),
            aliases=[slot] if slot else None,
        )
    return data


def execute_task(
    task: BaseTask,
    data: MultiTaskData,
    store: Any,
    signal: Any,
    context: TaskContext,
    *,
    source: Path | None = None,
) -> TaskOutcome:
    """Run ``task`` and report how it ended; never raises for task errors.

    Args:
        source: The workflow file, named in tracebacks for code that reached this
            process pickled by value (which loses its file name).
    """
    try:
        action: Action = task._run(data, store, signal, context)
    except StopTask as stop:
        return TaskOutcome(
            TaskState.STOPPED,
            _passed_on(data, task.name),
            skip_successors=stop.skip_successors,
            message=stop.message,
        )
    except AbortWorkflow as abort:
        return TaskOutcome(
            TaskState.ABORTED,
            _passed_on(data, task.name),
            message=abort.message or "the task aborted the workflow",
        )
    except (Exception, SystemExit) as error:
        if _terminated_by_signal(error):
            raise  # the process is going down, not the task: the engine hands it back
        return TaskOutcome(
            TaskState.FAILED,
            data,
            message=_one_line(error),
            traceback=user_traceback(error, source),
        )
    return TaskOutcome(TaskState.SUCCEEDED, action.data, limit=action.limit)


def _terminated_by_signal(error: BaseException) -> bool:
    """Whether ``error`` is the process being terminated, not the task calling exit.

    Celery's pool processes turn a termination signal (a worker's cold shutdown, a
    SIGTERM to the pool) into ``SystemExit(-(256 - signum))`` wherever the process is;
    a task's own ``sys.exit()`` still fails the task.
    """
    code = error.code if isinstance(error, SystemExit) else None
    return isinstance(code, int) and -255 <= code <= -192


def _passed_on(data: MultiTaskData, task_name: str) -> MultiTaskData:
    data.flatten(in_place=True)
    data.add_task_history(task_name)
    return data


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def user_traceback(error: BaseException, source: Path | None = None) -> str:
    """Format ``error`` keeping only frames outside Lightflow's own code.

    Users need the frames of their callback, not of the engine that called it; if the
    error arose inside Lightflow itself (all frames are ours) the full traceback stays.
    Frames of code unpickled by cloudpickle (file ``<dynamic-code>``) are attributed
    to ``source``, with the source line when that file is readable here.
    """
    summary = _traceback.extract_tb(error.__traceback__)
    if source is not None:
        summary = _traceback.StackSummary.from_list(
            [
                _traceback.FrameSummary(
                    str(source),
                    frame.lineno,
                    frame.name,
                    line=linecache.getline(str(source), frame.lineno or 0),
                )
                if frame.filename == _DYNAMIC_CODE
                else frame
                for frame in summary
            ]
        )
    user_frames = [
        frame
        for frame in summary
        if not Path(frame.filename).resolve().is_relative_to(_PACKAGE_DIR)
    ]
    frames = _traceback.StackSummary.from_list(user_frames or summary)
    lines = [
        "Traceback (most recent call last):\n",
        *frames.format(),
        *_traceback.format_exception_only(type(error), error),
    ]
    return "".join(lines)
