"""Running one task and composing its input: the part both engines share.

The state machine in :mod:`lightflow.engine` decides *which* task runs; this module
does what happens around one task: build its input from its predecessors' outputs
(slot aliases included), call ``BaseTask._run``, and turn how it ended into a
:class:`TaskOutcome` the driver feeds back to the state machine. User errors are
reduced to a one-line message plus the traceback of the user's own frames.
"""

from __future__ import annotations

import copy
import functools
import inspect
import linecache
import re
import sysconfig
import traceback as _traceback
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from .engine.dag_run import TaskState
from .exceptions import AbortWorkflow, LightflowError, StopTask
from .models.action import Action
from .models.context import TaskContext
from .models.task import BaseTask
from .models.task_data import MultiTaskData, TaskData

_PACKAGE_DIR = Path(__file__).resolve().parent
_STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"]).resolve()
_CLOUDPICKLE_DIR = Path(cloudpickle.__file__).resolve().parent
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
            traceback=user_traceback(error, source, task),
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


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def user_traceback(
    error: BaseException, source: Path | None = None, task: BaseTask | None = None
) -> str | None:
    """Format ``error`` keeping only frames outside Lightflow's own code.

    Users need the frames of their callback, not of the engine that called it, nor of
    what Lightflow called for them (``store.set`` copying or pickling a value: the
    frames of ``copy``, ``pickle``, cloudpickle): a frame of user code ends where it
    calls Lightflow, and the standard library's and cloudpickle's frames right under
    Lightflow's are not the user's. If the error arose inside Lightflow itself (no
    frame is the user's) the full traceback stays, unless it is one of Lightflow's
    own checks of the user's code (a :class:`~lightflow.exceptions.LightflowError`,
    e.g. a callback that returned neither ``None`` nor an ``Action``) or the call of
    the task's callback itself failed (a callback with the wrong signature): the
    one-line message says it all, so the report is only where the task's code is
    (``None`` when that is not known). An exception of the chain that was raised
    from or during another one shows its line alone when no frame of it is the
    user's.
    Frames of code unpickled by cloudpickle (file ``<dynamic-code>``) are attributed
    to ``source``, with the source line when that file is readable here.

    Like Python's own traceback, the exceptions ``error`` was raised from
    (``__cause__``) or while handling (``__context__``, unless suppressed) come first,
    oldest first, each with its frames filtered the same way.
    """
    chain = _exception_chain(error)
    where = _user_code(task, source) if task is not None else None
    if len(chain) == 1 and _own_check(error, where) and not _user_frames(error, source):
        return "".join(_traceback.StackSummary.from_list([where]).format()) if where else None
    parts: list[str] = []
    for exc, separator in chain:
        parts.append(_format_exception(exc, source, where, last=exc is error))
        if separator:
            parts.append(separator)
    return "".join(parts)


def _exception_chain(error: BaseException) -> list[tuple[BaseException, str | None]]:
    """``error`` and the exceptions it was raised from or during, oldest first.

    Each with the separator printed after it (``None`` for ``error`` itself); an
    exception already in the chain ends it (a cycle).
    """
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    separator: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, separator))
        if current.__cause__ is not None:
            current, separator = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, separator = current.__context__, _CONTEXT
        else:
            current = None
    return chain[::-1]


def _frames(error: BaseException, source: Path | None) -> list[_traceback.FrameSummary]:
    return [_attributed(frame, source) for frame in _traceback.extract_tb(error.__traceback__)]


def _user_frames(error: BaseException, source: Path | None) -> list[_traceback.FrameSummary]:
    """The frames of ``error`` in the user's code, in order (see :func:`user_traceback`)."""
    kept: list[_traceback.FrameSummary] = []
    for frame in _frames(error, source):
        if _is_ours(frame.filename):
            if kept:  # the user's code called Lightflow: what follows is not theirs
                break
        elif kept or not _is_library(frame.filename):
            kept.append(frame)
    return kept


def _own_check(error: BaseException, where: _traceback.FrameSummary | None) -> bool:
    """Whether ``error`` is Lightflow's check of the task's code or the failed call of it.

    A callback with the wrong signature fails in Lightflow's frame that calls it, with
    Python's ``cb() takes 2 positional arguments but 4 were given``.
    """
    if isinstance(error, LightflowError):
        return True
    if where is None or not isinstance(error, TypeError):
        return False
    return re.match(rf"([\w.]+\.)?{re.escape(where.name)}\(\) ", str(error)) is not None


def _format_exception(
    error: BaseException,
    source: Path | None,
    where: _traceback.FrameSummary | None,
    *,
    last: bool,
) -> str:
    """One exception of a chain: its user frames (all, if none is the user's) and line.

    One of Lightflow's own checks (a ``LightflowError`` with no user frame) or a failed
    call of the task's code shows ``where`` the task's code is instead, when that is
    known. An exception before the ``last`` with no user frame is its line alone.
    """
    frames = _user_frames(error, source)
    if not frames:
        if not last:
            return "".join(_traceback.format_exception_only(type(error), error))
        frames = [where] if where and _own_check(error, where) else _frames(error, source)
    lines = [
        "Traceback (most recent call last):\n",
        *_traceback.StackSummary.from_list(frames).format(),
        *_traceback.format_exception_only(type(error), error),
    ]
    return "".join(lines)


def _is_ours(filename: str) -> bool:
    """Whether ``filename`` is Lightflow's: the core's or an installed extension's."""
    from .plugins.manager import extension_folders  # the plugins import the tasks

    path = Path(filename).resolve()
    return any(path.is_relative_to(folder) for folder in (_PACKAGE_DIR, *extension_folders()))


def _is_library(filename: str) -> bool:
    """Whether ``filename`` is the standard library's or cloudpickle's (what Lightflow
    calls to copy and pickle the user's values)."""
    path = Path(filename).resolve()
    return (path.is_relative_to(_STDLIB_DIR) and "site-packages" not in path.parts) or (
        path.is_relative_to(_CLOUDPICKLE_DIR)
    )


def _attributed(frame: _traceback.FrameSummary, source: Path | None) -> _traceback.FrameSummary:
    """``frame``, with code pickled by value attributed to the workflow file ``source``."""
    if source is None or frame.filename != _DYNAMIC_CODE:
        return frame
    return _traceback.FrameSummary(
        str(source),
        frame.lineno,
        frame.name,
        line=linecache.getline(str(source), frame.lineno or 0),
    )


def _user_code(task: BaseTask, source: Path | None) -> _traceback.FrameSummary | None:
    """Where the user's code of ``task`` starts: its callback, or its own ``run``.

    A frame for the first line of that function, for a report that points at the user's
    file rather than Lightflow's; ``None`` when the task runs only Lightflow's code.
    """
    candidates = [getattr(task, "_callback", None), getattr(type(task), "run", None)]
    for function in candidates:
        while isinstance(function, functools.partial):
            function = function.func
        code = getattr(inspect.unwrap(function), "__code__", None) if function else None
        if code is None or _is_ours(code.co_filename):
            continue
        frame = _traceback.FrameSummary(
            code.co_filename,
            code.co_firstlineno,
            code.co_name,
            line=linecache.getline(code.co_filename, code.co_firstlineno),
        )
        return _attributed(frame, source)
    return None
