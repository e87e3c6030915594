"""PythonTask: the callback's result, data pass-through and the life-cycle callbacks."""

from __future__ import annotations

from typing import Any

import pytest
from lightflow.exceptions import StopTask, TaskDefinitionError
from lightflow.models import Action, MultiTaskData, TaskData, TaskStatus
from lightflow.tasks import PythonTask

from .helpers import make_args


def test_without_callback_passes_the_data_on() -> None:
    data, store, signal, context = make_args({"x": 1})
    result = PythonTask("relay")._run(data, store, signal, context)
    assert result.data["x"] == 1
    assert result.limit is None
    assert result.data.default_dataset.task_history == ["relay"]


def test_callback_receives_the_run_arguments_and_its_changes_flow_on() -> None:
    data, store, signal, context = make_args({"x": 1})
    seen: list[tuple[Any, ...]] = []

    def callback(d: Any, s: Any, sig: Any, ctx: Any) -> None:
        seen.append((d, s, sig, ctx))
        d["x"] += 1
        s.set("visited", True)

    result = PythonTask("inc", callback)._run(data, store, signal, context)
    assert seen == [(data, store, signal, context)]
    assert result.data["x"] == 2
    assert store.get("visited") is True


def test_callback_action_is_the_result() -> None:
    data, store, signal, context = make_args()
    other = MultiTaskData(dataset=TaskData({"y": 2}))
    task = PythonTask("branch", lambda *args: Action(other, limit=["left"]))
    result = task._run(data, store, signal, context)
    assert result.data["y"] == 2
    assert result.limit == ["left"]


def succeed(*args: Any) -> None:
    return None


def stop(*args: Any) -> None:
    raise StopTask("nothing to do")


def fail(*args: Any) -> None:
    raise ZeroDivisionError("boom")


@pytest.mark.parametrize(
    ("callback", "expected_error", "expected_status"),
    [
        (succeed, None, TaskStatus.Success),
        (stop, StopTask, TaskStatus.Stopped),
        (fail, ZeroDivisionError, TaskStatus.Error),
    ],
)
def test_callback_finally_gets_the_status(
    callback: Any, expected_error: Any, expected_status: TaskStatus
) -> None:
    data, store, signal, context = make_args()
    calls: list[str] = []
    statuses: list[TaskStatus] = []

    def run(*args: Any) -> None:
        calls.append("run")
        callback(*args)

    task = PythonTask(
        "t",
        run,
        callback_init=lambda *args: calls.append("init"),
        callback_finally=lambda status, *args: statuses.append(status),
    )
    if expected_error is None:
        task._run(data, store, signal, context)
    else:
        with pytest.raises(expected_error):
            task._run(data, store, signal, context)
    assert calls == ["init", "run"]
    assert statuses == [expected_status]


def test_a_non_callable_callback_is_rejected_at_definition() -> None:
    with pytest.raises(TaskDefinitionError, match="task 'bad': callback must be a function"):
        PythonTask("bad", "not a function")  # type: ignore[arg-type]
