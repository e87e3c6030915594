"""The embedded engine end to end: LocalRun and api.run_workflow on real threads.

Workflows are built in the tests, either as ``Workflow`` objects around ``Dag``s of
``PythonTask``s whose callbacks record what they see, or as small workflow files in
``tmp_path`` run through ``run_workflow`` (which report through a file given as a
parameter). Sleeps are short; waits that could hang are bounded.
"""

from __future__ import annotations

import itertools
import json
import signal as signals
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lightflow.api import run_workflow
from lightflow.events import EventKind, RunEvent
from lightflow.exceptions import ParameterError
from lightflow.local import LocalRun, RunResult, engine
from lightflow.models import (
    AbortWorkflow,
    Action,
    Dag,
    MultiTaskData,
    Parameters,
    StopTask,
    TaskData,
)
from lightflow.store import META
from lightflow.store.memory import MemoryDataStore
from lightflow.tasks import PythonTask
from lightflow.workflows import Workflow

pytestmark = pytest.mark.timeout(60)


# -- helpers -----------------------------------------------------------------------------
def workflow(*dags: Dag, parameters: Parameters | None = None) -> Workflow:
    return Workflow(
        name="wf",
        path=Path("wf.py"),
        docstring="",
        dags={d.name: d for d in dags},
        parameters=parameters or Parameters(),
    )


class Harness:
    """Runs a workflow on the embedded engine and keeps what it needs to inspect."""

    def __init__(
        self, *dags: Dag, workers: int | None = None, arguments: dict[str, Any] | None = None
    ) -> None:
        self.store = MemoryDataStore()
        self.events: list[RunEvent] = []
        self.local = LocalRun(
            workflow(*dags),
            arguments or {},
            store=self.store,
            workers=workers,
            listener=self.events.append,
        )

    def run(self) -> RunResult:
        self.result = self.local.run()
        return self.result

    @property
    def document(self) -> Any:
        return self.store.get(self.local.workflow_id)

    def states(self) -> dict[tuple[str, str], str]:
        return {(t.dag, t.task): t.state for t in self.result.tasks}

    def kinds(self, task: str) -> list[str]:
        return [e.kind.value for e in self.events if e.task == task]


def run(*dags: Dag, **kwargs: Any) -> RunResult:
    return Harness(*dags, **kwargs).run()


def run_bounded(local: LocalRun, seconds: float) -> RunResult | None:
    """Run in a daemon thread; ``None`` if it has not ended after ``seconds``."""
    out: dict[str, RunResult] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", local.run()), daemon=True)
    thread.start()
    thread.join(seconds)
    return out.get("r")


def task(name: str, callback: Any = None, **kwargs: Any) -> PythonTask:
    return PythonTask(name, callback, **kwargs)


def sleeper(seconds: float, spans: dict[str, tuple[float, float]]) -> Any:
    def callback(data, store, signal, context):
        began = time.monotonic()
        time.sleep(seconds)
        spans[context.task_name] = (began, time.monotonic())

    return callback


def overlaps(spans: dict[str, tuple[float, float]]) -> bool:
    ordered = sorted(spans.values())
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))


def write_workflow(tmp_path: Path, body: str, name: str = "flow") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return path


# -- parallelism -------------------------------------------------------------------------
def test_parallel_lanes_really_overlap():
    spans: dict[str, tuple[float, float]] = {}
    lanes = [task(f"lane{i}", sleeper(0.3, spans)) for i in range(3)]
    join = task("join")
    dag = Dag("main", schema={task("start"): lanes, **{lane: join for lane in lanes}})
    began = time.monotonic()
    result = run(dag, workers=3)
    elapsed = time.monotonic() - began
    assert result.succeeded
    assert len(spans) == 3
    latest_start = max(start for start, _ in spans.values())
    earliest_end = min(end for _, end in spans.values())
    assert latest_start < earliest_end, spans  # all three ran at the same time
    assert elapsed < 0.85, f"3 lanes of 0.3 s took {elapsed:.2f}s with 3 workers"


def test_one_worker_serialises_the_lanes():
    spans: dict[str, tuple[float, float]] = {}
    lanes = [task(f"lane{i}", sleeper(0.05, spans)) for i in range(4)]
    dag = Dag("main", schema={task("start"): lanes})
    assert run(dag, workers=1).succeeded
    assert len(spans) == 4
    assert not overlaps(spans), spans


def test_run_workflow_passes_workers(tmp_path):
    out = tmp_path / "spans.json"
    path = write_workflow(
        tmp_path,
        f"""
import json, time
from lightflow.models import Dag
from lightflow.tasks import PythonTask
spans = {{}}
def lane(data, store, signal, context):
    began = time.monotonic()
    time.sleep(0.05)
    spans[context.task_name] = (began, time.monotonic())
def save(data, store, signal, context):
    with open({str(out)!r}, "w") as handle:
        json.dump(spans, handle)
lanes = [PythonTask(f"l{{i}}", lane) for i in range(3)]
saver = PythonTask("save", save)
d = Dag("main", schema={{PythonTask("s"): lanes, **{{l: saver for l in lanes}}}})
""",
    )
    assert run_workflow(str(path), workers=1).succeeded
    spans = {k: tuple(v) for k, v in json.loads(out.read_text()).items()}
    assert len(spans) == 3 and not overlaps(spans)


# -- data passing ------------------------------------------------------------------------
def test_data_flows_along_a_chain():
    def step(data, store, signal, context):
        data["trail"] = [*data.get("trail", []), context.task_name]

    seen = {}

    def last(data, store, signal, context):
        seen["trail"] = data["trail"]
        seen["history"] = list(data.default_dataset.task_history)

    a, b, c, d = task("a", step), task("b", step), task("c", step), task("d", last)
    assert run(Dag("main", schema={a: b, b: c, c: d})).succeeded
    assert seen["trail"] == ["a", "b", "c"]
    assert seen["history"] == ["a", "b", "c"]


def test_alias_slots_and_predecessor_names_reach_a_join():
    def put(value):
        def callback(data, store, signal, context):
            data["v"] = value
            data["n"] = {context.task_name: value}

        return callback

    seen = {}

    def join(data, store, signal, context):
        seen["left"] = data("left")["v"]
        seen["right"] = data("right")["v"]
        seen["by_name"] = data("b")["v"]
        seen["order"] = [d["v"] for d in data]
        seen["default"] = data["v"]

    def after(data, store, signal, context):
        seen["after"] = (len(data), data["v"], data["n"])

    a, b, c = task("a", put("A")), task("b", put("B")), task("c", put("C"))
    j, z = task("join", join), task("after", after)
    dag = Dag("main", schema={a: {j: "left"}, b: {j: "right"}, c: j, j: z})
    assert run(dag).succeeded
    assert seen["left"] == "A" and seen["right"] == "B" and seen["by_name"] == "B"
    assert seen["order"] == ["A", "B", "C"]
    assert seen["default"] == "A"
    # the join's input was flattened: one dataset, the default (first) value wins,
    # nested dicts merged
    assert seen["after"] == (1, "A", {"a": "A", "b": "B", "c": "C"})


def test_returned_action_replaces_the_data():
    seen = {}

    def produce(data, store, signal, context):
        return Action(MultiTaskData(dataset=TaskData({"fresh": 1})))

    def consume(data, store, signal, context):
        seen["data"] = dict(data.default_dataset.items())

    a, b = task("a", lambda d, *_: d.set("old", 1)), task("b", produce)
    assert run(Dag("main", schema={a: b, b: task("c", consume)})).succeeded
    assert seen["data"] == {"fresh": 1}


def test_start_data_reaches_a_started_dag():
    seen = {}

    def starter(data, store, signal, context):
        signal.start_dag("sub", data={"chunk": 7})
        signal.start_dag("sub", data=TaskData({"chunk": 8}))
        signal.start_dag("sub", data=MultiTaskData(dataset=TaskData({"chunk": 9})))
        signal.start_dag("sub")

    def record(data, store, signal, context):
        seen[context.dag_name] = data.get("chunk")

    sub = Dag("sub", autostart=False, schema={task("read", record): None})
    assert run(Dag("main", schema={task("start", starter): None}), sub).succeeded
    assert seen == {"sub": 7, "sub:2": 8, "sub:3": 9, "sub:4": None}


def test_start_data_is_taken_when_start_dag_is_called():
    # The 1.x idiom: one data object changed and passed again for every DAG started.
    # Each DAG gets the data as it was at its start_dag call, as on the cluster.
    seen = []

    def starter(data, store, signal, context):
        names = []
        for batch in (["a.h5"], ["b.h5"], ["c.h5"]):
            data["files"] = batch
            names.append(signal.start_dag("sub", data=data))
        data["files"] = ["changed after the last start"]
        signal.join_dags(names)

    def record(data, store, signal, context):
        seen.append(data["files"])

    sub = Dag("sub", autostart=False, schema={task("read", record): None})
    assert run(Dag("main", schema={task("start", starter): None}), sub, workers=1).succeeded
    assert sorted(seen) == [["a.h5"], ["b.h5"], ["c.h5"]]


def test_start_tasks_of_a_started_dag_get_independent_data():
    seen: dict[str, list[str]] = {}
    both_appended = threading.Barrier(2, timeout=5)
    given = {"items": []}

    def starter(data, store, signal, context):
        signal.join_dags([signal.start_dag("sub", data=given)])

    def append(data, store, signal, context):
        data["items"].append(context.task_name)
        both_appended.wait()
        seen[context.task_name] = list(data["items"])

    sub = Dag("sub", autostart=False, schema={task("s1", append): None, task("s2", append): None})
    assert run(Dag("main", schema={task("start", starter): None}), sub, workers=4).succeeded
    assert seen == {"s1": ["s1"], "s2": ["s2"]}
    assert given == {"items": []}


def test_large_array_along_a_chain_is_not_copied():
    received: list[np.ndarray] = []

    def make(data, store, signal, context):
        data["image"] = np.zeros((1000, 1000))  # 8 MB

    def look(data, store, signal, context):
        received.append(data["image"])
        data["image"][0, len(received)] = 1.0  # in place

    names = ["make"] + [f"t{i}" for i in range(5)]
    tasks = [task("make", make)] + [task(n, look) for n in names[1:]]
    dag = Dag("main", schema={a: b for a, b in itertools.pairwise(tasks)})
    assert run(dag).succeeded
    assert len(received) == 5
    assert len({id(image) for image in received}) == 1
    assert all(np.shares_memory(received[0], image) for image in received)
    assert received[0][0, 1:6].tolist() == [1.0] * 5


def test_large_array_is_copied_for_a_fan_out():
    seen: dict[str, tuple[np.ndarray, float]] = {}
    both_changed = threading.Barrier(2, timeout=5)

    def make(data, store, signal, context):
        data["image"] = np.zeros((500, 500))

    def change(amount):
        def callback(data, store, signal, context):
            data["image"] += amount
            both_changed.wait()  # the other lane has changed its array too
            seen[context.task_name] = (data["image"], float(data["image"].max()))

        return callback

    dag = Dag(
        "main", schema={task("make", make): [task("one", change(1.0)), task("ten", change(10.0))]}
    )
    assert run(dag, workers=2).succeeded
    assert seen["one"][1] == 1.0
    assert seen["ten"][1] == 10.0
    assert not np.shares_memory(seen["one"][0], seen["ten"][0])


def test_fan_out_lanes_do_not_see_each_others_dict_changes():
    seen = {}

    def make(data, store, signal, context):
        data["cfg"] = {"items": []}

    def change(data, store, signal, context):
        data["cfg"]["items"].append(context.task_name)
        seen[context.task_name] = list(data["cfg"]["items"])

    lanes = [task(f"l{i}", change) for i in range(4)]
    assert run(Dag("main", schema={task("make", make): lanes}), workers=1).succeeded
    assert seen == {f"l{i}": [f"l{i}"] for i in range(4)}


# -- limit, skip, stop -------------------------------------------------------------------
def test_limit_runs_only_the_chosen_branch():
    ran = []

    def choose(data, store, signal, context):
        data["x"] = 1
        return Action(data, limit=[right])

    def note(data, store, signal, context):
        ran.append((context.task_name, data["x"]))

    left, right, after = task("left", note), task("right", note), task("after", note)
    h = Harness(
        Dag("main", schema={task("choose", choose): [left, right], left: after, right: after})
    )
    assert h.run().succeeded
    assert sorted(ran) == [("after", 1), ("right", 1)]
    assert h.states()[("main", "left")] == "skipped"
    assert h.kinds("left") == ["task_skipped"]
    assert h.document.get("log.main.tasks.left.status", section=META) == "skipped"


def test_empty_limit_skips_everything_below():
    ran = []
    a = task("a", lambda data, *_: Action(data, limit=[]))
    b, c = task("b", lambda *_: ran.append("b")), task("c", lambda *_: ran.append("c"))
    h = Harness(Dag("main", schema={a: b, b: c}))
    assert h.run().succeeded
    assert ran == []
    assert h.states() == {
        ("main", "a"): "succeeded",
        ("main", "b"): "skipped",
        ("main", "c"): "skipped",
    }


def test_bad_limit_fails_the_run_with_a_message():
    a = task("a", lambda data, *_: Action(data, limit=["ghost"]))
    h = Harness(Dag("main", schema={a: task("b")}))
    result = h.run()
    assert result.outcome == "failed"
    assert result.failed_task == "a" and result.failed_dag == "main"
    assert "'ghost'" in result.error and "not a successor of 'a'" in result.error
    assert h.states()[("main", "b")] == "cancelled"
    assert h.kinds("a") == ["task_started", "task_failed"]


def test_skipped_task_passes_its_input_through():
    seen = {}

    def first(data, store, signal, context):
        data["x"] = "from a"
        return Action(data, limit=[])

    def last(data, store, signal, context):
        seen["x"] = data.get("x")
        seen["b_alias"] = data("b")["x"]

    a, b = task("a", first), task("b", lambda *_: seen.update({"b ran": True}))
    c = task("c", last, force_run=True)
    h = Harness(Dag("main", schema={a: b, b: c}))
    assert h.run().succeeded
    assert "b ran" not in seen
    assert seen == {"x": "from a", "b_alias": "from a"}


def test_skipped_task_without_propagate_skip_lets_successors_run():
    ran = []
    a = task("a", lambda data, *_: Action(data, limit=[]))
    b = task("b", lambda *_: ran.append("b"), propagate_skip=False)
    c = task("c", lambda data, *_: ran.append(("c", data.get("v"))))
    d = task("d", lambda *_: ran.append("d"))
    h = Harness(Dag("main", schema={a: b, b: c, c: d}))
    assert h.run().succeeded
    assert ran == [("c", None), "d"]
    assert h.states()[("main", "b")] == "skipped"


def test_stop_task_skips_successors_and_lets_them_run_when_asked():
    ran = []

    def stop(skip):
        def callback(data, store, signal, context):
            data["seen_by"] = context.task_name
            raise StopTask("enough", skip_successors=skip)

        return callback

    def after(data, store, signal, context):
        ran.append((context.task_name, data.get("seen_by"), data.get("x")))

    start = task("start", lambda data, *_: data.set("x", 1))
    s1, s2 = task("s1", stop(True)), task("s2", stop(False))
    a1, a2 = task("a1", after), task("a2", after)
    h = Harness(Dag("main", schema={start: [s1, s2], s1: a1, s2: a2}))
    result = h.run()
    assert result.succeeded
    assert ran == [("a2", "s2", 1)]  # the stopped task's input went on
    assert h.states()[("main", "s1")] == "stopped"
    assert h.states()[("main", "a1")] == "skipped"
    assert h.kinds("s2") == ["task_started", "task_stopped"]
    assert [e.message for e in h.events if e.kind is EventKind.TASK_STOPPED] == ["enough", "enough"]


def test_stop_dag_is_seen_by_the_task_and_cancels_the_rest():
    seen = {}

    def stopper(data, store, signal, context):
        seen["before"] = signal.is_stopped
        seen["returned"] = signal.stop_dag()
        seen["after"] = signal.is_stopped

    a, b = task("a", stopper), task("b", lambda *_: seen.setdefault("b ran", True))
    h = Harness(Dag("main", schema={a: b}))
    result = h.run()
    assert seen == {"before": False, "returned": True, "after": True}
    assert result.outcome == "stopped"
    assert h.states() == {("main", "a"): "succeeded", ("main", "b"): "cancelled"}


def test_stop_dag_of_an_unknown_name_returns_false():
    seen = {}

    def stop_other(data, store, signal, context):
        seen["r"] = signal.stop_dag("nope")

    a = task("a", stop_other)
    assert run(Dag("main", schema={a: None})).succeeded
    assert seen == {"r": False}


def test_stop_workflow_is_seen_by_a_running_task_in_another_lane():
    seen = {}
    started = threading.Event()

    def watcher(data, store, signal, context):
        started.set()
        deadline = time.monotonic() + 5
        while not signal.is_stopped and time.monotonic() < deadline:
            time.sleep(0.005)
        seen["watcher saw stop"] = signal.is_stopped

    def stopper(data, store, signal, context):
        assert started.wait(5)
        signal.stop_workflow()

    other = Dag("other", schema={task("w", watcher): task("after")})
    main = Dag("main", schema={task("stopper", stopper): task("next")})
    h = Harness(main, other, workers=4)
    result = h.run()
    assert seen == {"watcher saw stop": True}
    assert result.outcome == "stopped"
    assert h.states()[("main", "next")] == "cancelled"
    assert h.states()[("other", "after")] == "cancelled"


def test_stopping_a_dag_before_it_starts_ends_it_at_once():
    seen = {}

    def starter(data, store, signal, context):
        name = signal.start_dag("sub")
        signal.stop_dag(name)
        seen["joined"] = signal.join_dags([name])

    ran = []
    sub = Dag("sub", autostart=False, schema={task("s", lambda *_: ran.append(1)): None})
    h = Harness(Dag("main", schema={task("start", starter): None}), sub)
    result = h.run()
    assert seen == {"joined": False}
    assert ran == []
    assert result.outcome == "stopped"
    assert h.states()[("sub", "s")] == "cancelled"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (None, "DAG 'main' stopped by signal.stop_dag() in DAG 'main'"),
        ("sub", "DAG 'sub' stopped by signal.stop_dag() in DAG 'main'"),
    ],
)
def test_stop_dag_gives_the_run_a_reason_naming_both_dags(target, reason):
    """The run ended stopped with 'no reason given': stop_dag named no culprit."""

    def stopper(data, store, signal, context):
        if target is not None:
            signal.start_dag(target)
        signal.stop_dag(target)

    sub = Dag("sub", autostart=False, schema={task("s"): None})
    h = Harness(Dag("main", schema={task("stopper", stopper): task("next")}), sub)
    result = h.run()
    assert result.outcome == "stopped"
    assert result.error == reason
    assert h.document.get("error", section=META) == reason


def test_stop_dag_of_a_dag_that_already_succeeded_leaves_the_run_without_error():
    """A stop that changed nothing must not put a reason on a successful run."""

    def late_stopper(data, store, signal, context):
        signal.join_dags(["side"])
        signal.stop_dag("side")

    side = Dag("side", schema={task("quick"): None})
    result = run(Dag("main", schema={task("late", late_stopper): None}), side)
    assert result.succeeded
    assert result.error is None


def test_interrupt_gives_up_a_task_that_ignores_the_stop(monkeypatch):
    """A task that never looks at is_stopped must not keep an interrupted run alive."""
    monkeypatch.setattr(engine, "INTERRUPT_GRACE", 0.2)
    started, release = threading.Event(), threading.Event()

    def stubborn(data, store, signal, context):
        started.set()
        release.wait(30)

    h = Harness(Dag("main", schema={task("stubborn", stubborn): task("after")}))

    def interrupt() -> None:
        assert started.wait(10)
        h.local.interrupt(signals.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    began = time.monotonic()
    result = run_bounded(h.local, 10)
    release.set()
    assert result is not None
    assert time.monotonic() - began < 5
    assert result.outcome == "stopped"
    assert result.interrupted_by == signals.SIGINT
    assert result.error == "interrupted by SIGINT"
    records = {t.task: t for t in result.tasks}
    assert records["stubborn"].state == "stopped"
    assert "given up" in (records["stubborn"].message or "")
    assert records["after"].state == "cancelled"


# -- abort and failure -------------------------------------------------------------------
def test_abort_workflow_aborts_the_run_and_running_tasks_see_it():
    seen = {}
    started = threading.Event()

    def watcher(data, store, signal, context):
        started.set()
        deadline = time.monotonic() + 5
        while not signal.is_stopped and time.monotonic() < deadline:
            time.sleep(0.005)
        seen["watcher saw stop"] = signal.is_stopped

    def aborter(data, store, signal, context):
        assert started.wait(5)
        raise AbortWorkflow("sample lost")

    start = task("start")
    w, ab = task("watcher", watcher), task("aborter", aborter)
    h = Harness(
        Dag("main", schema={start: [w, ab], ab: task("never")}),
        Dag("other", schema={task("o"): None}),
        workers=4,
    )
    result = h.run()
    assert seen == {"watcher saw stop": True}
    assert result.outcome == "aborted"
    assert result.failed_task == "aborter"
    assert result.error == "sample lost"
    assert h.states()[("main", "never")] == "cancelled"
    assert h.states()[("main", "aborter")] == "aborted"
    assert h.states()[("main", "watcher")] == "succeeded"  # running tasks finish
    assert h.document.get("status", section=META) == "aborted"


def test_failing_task_fails_the_run_fast():
    ran = []
    slow_runs = threading.Event()

    def slow(data, store, signal, context):
        # still running when the failure is handled: it sees the stop, then finishes
        slow_runs.set()
        deadline = time.monotonic() + 5
        while not signal.is_stopped and time.monotonic() < deadline:
            time.sleep(0.005)
        ran.append(("slow", signal.is_stopped))

    def boom(data, store, signal, context):
        slow_runs.wait(5)  # else the failure may cancel slow before it could start
        raise ValueError("bad frame 7")

    start = task("start")
    s, f = task("slow", slow), task("fails", boom)
    after_slow, after_fail = task("after_slow", lambda *_: ran.append("x")), task("y")
    h = Harness(Dag("main", schema={start: [s, f], s: after_slow, f: after_fail}), workers=4)
    result = h.run()
    assert result.outcome == "failed"
    assert result.failed_task == "fails" and result.failed_dag == "main"
    assert result.error == "ValueError: bad frame 7"
    assert ran == [("slow", True)]  # the running lane finished; nothing new was queued
    assert h.states()[("main", "slow")] == "succeeded"
    assert h.states()[("main", "after_slow")] == "cancelled"
    assert h.states()[("main", "y")] == "cancelled"
    assert h.document.get("log.main.tasks.fails.error", section=META) == "ValueError: bad frame 7"
    assert h.document.get("log.main.status", section=META) == "failed"


def test_traceback_has_the_users_frames_and_not_the_engines(tmp_path):
    path = write_workflow(
        tmp_path,
        """
from lightflow.models import Dag
from lightflow.tasks import PythonTask

def helper(value):
    return 1 / value

def crunch(data, store, signal, context):
    data["r"] = helper(0)

d = Dag("main", schema={PythonTask("first"): PythonTask("crunch", crunch)})
""",
    )
    result = run_workflow(str(path))
    assert result.outcome == "failed"
    assert result.failed_task == "crunch"
    assert result.error == "ZeroDivisionError: division by zero"
    tb = result.traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert str(path) in tb
    assert "in crunch" in tb and "in helper" in tb
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "lightflow/local" not in tb
    assert "lightflow/execution" not in tb
    assert "lightflow/models" not in tb
    assert "lightflow/tasks" not in tb


def test_failing_sub_dag_makes_join_return_false_and_fails_the_run():
    seen = {}

    def starter(data, store, signal, context):
        seen["joined"] = signal.join_dags([signal.start_dag("sub")])

    def boom(*args):
        raise RuntimeError("sub broke")

    sub = Dag("sub", autostart=False, schema={task("s", boom): None})
    h = Harness(Dag("main", schema={task("start", starter): task("after")}), sub)
    result = h.run()
    assert seen == {"joined": False}
    assert result.outcome == "failed"
    assert (result.failed_dag, result.failed_task) == ("sub", "s")
    assert h.states()[("main", "after")] == "cancelled"


def test_sys_exit_in_a_task_fails_the_run_instead_of_hanging():
    # regression: SystemExit used to end the pool thread and LocalRun.run() waited forever
    def leave(*args):
        sys.exit(3)

    local = LocalRun(
        workflow(Dag("main", schema={task("quit", leave): None})), {}, store=MemoryDataStore()
    )
    result = run_bounded(local, 5)
    assert result is not None, "the run did not end"
    assert result.outcome == "failed"
    assert result.failed_task == "quit"
    assert result.error == "SystemExit: 3"


def test_a_failing_listener_does_not_hang_the_run():
    # regression: a listener error on a pool thread used to leave LocalRun.run() waiting
    def listener(event):
        if event.kind is EventKind.TASK_STARTED:
            raise BrokenPipeError("stdout closed")

    local = LocalRun(
        workflow(Dag("main", schema={task("a"): None})),
        {},
        store=MemoryDataStore(),
        listener=listener,
    )
    out: dict[str, Any] = {}

    def target():
        try:
            out["result"] = local.run()
        except Exception as error:  # raising is fine too, as long as it ends
            out["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(5)
    assert out, "the run did not end"
    assert "error" in out or out["result"].succeeded


# -- start_dag / join_dags ---------------------------------------------------------------
def test_start_dag_several_times_gets_distinct_names():
    seen = {}
    contexts = []

    def starter(data, store, signal, context):
        names = [signal.start_dag("sub") for _ in range(3)]
        names.append(signal.start_dag(sub))
        seen["names"] = names
        seen["joined"] = signal.join_dags(names)

    sub = Dag(
        "sub",
        autostart=False,
        schema={task("s", lambda d, s, sig, ctx: contexts.append(ctx.dag_name)): None},
    )
    h = Harness(Dag("main", schema={task("start", starter): None}), sub)
    assert h.run().succeeded
    assert seen["names"] == ["sub", "sub:2", "sub:3", "sub:4"]
    assert seen["joined"] is True
    assert sorted(contexts) == ["sub", "sub:2", "sub:3", "sub:4"]
    assert {t.dag for t in h.result.tasks} == {"main", "sub", "sub:2", "sub:3", "sub:4"}
    assert h.document.get("log.sub:3.tasks.s.status", section=META) == "succeeded"


@pytest.mark.timeout(20)
def test_join_of_five_sub_dags_with_one_worker_does_not_deadlock():
    done = []

    def starter(data, store, signal, context):
        names = [signal.start_dag("sub", data={"i": i}) for i in range(5)]
        done.append(signal.join_dags(names))

    def nested(data, store, signal, context):
        # each sub-DAG waits for a sub-sub-DAG too: blocked threads all the way down
        done.append(signal.join_dags([signal.start_dag("leaf")]))

    sub = Dag("sub", autostart=False, schema={task("n", nested): task("after")})
    leaf = Dag("leaf", autostart=False, schema={task("l"): None})
    local = LocalRun(
        workflow(Dag("main", schema={task("start", starter): None}), sub, leaf),
        {},
        store=MemoryDataStore(),
        workers=1,
    )
    result = run_bounded(local, 15)
    assert result is not None, "join_dags with one worker deadlocked"
    assert result.succeeded
    assert done.count(True) == 6


def test_join_dags_without_names_waits_for_every_other_dag():
    order = []

    def slow(data, store, signal, context):
        time.sleep(0.1)
        order.append("slow")

    def waiter(data, store, signal, context):
        signal.start_dag("late")
        order.append(("joined", signal.join_dags()))

    late = Dag("late", autostart=False, schema={task("z", slow): None})
    result = run(
        Dag("main", schema={task("w", waiter): None}),
        Dag("other", schema={task("s", slow): None}),
        late,
        workers=4,
    )
    assert result.succeeded
    assert order == ["slow", "slow", ("joined", True)]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda signal: signal.join_dags(["ghost"]), "no DAG instance named 'ghost'"),
        (lambda signal: signal.start_dag("ghost"), "no DAG named 'ghost'"),
    ],
)
def test_unknown_dag_names_fail_the_task_with_a_clear_message(call, fragment):
    h = Harness(Dag("main", schema={task("t", lambda d, s, signal, c: call(signal)): None}))
    result = h.run()
    assert result.outcome == "failed"
    assert result.failed_task == "t"
    assert result.error.startswith("SignalError: ")
    assert fragment in result.error


# -- parameters and records --------------------------------------------------------------
def test_parameters_land_in_the_data_section(tmp_path):
    out = tmp_path / "seen.json"
    path = write_workflow(
        tmp_path,
        """
import json
from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([
    Option("out"),
    Option("iterations", default=2, type=int),
    Option("ratio", default=0.5, type=float),
    Option("dry", default=False, type=bool),
])

def report(data, store, signal, context):
    values = {k: store.get(k) for k in ("iterations", "ratio", "dry")}
    with open(store.get("out"), "w") as handle:
        json.dump(values, handle)

d = Dag("main", schema={PythonTask("report", report): None})
""",
    )
    result = run_workflow(str(path), {"out": str(out), "iterations": "5", "dry": "yes"})
    assert result.succeeded
    assert json.loads(out.read_text()) == {"iterations": 5, "ratio": 0.5, "dry": True}
    with pytest.raises(ParameterError, match="parameter 'iterations' expects int"):
        run_workflow(str(path), {"out": str(out), "iterations": "many"})
    with pytest.raises(ParameterError, match="missing required parameter 'out'"):
        run_workflow(str(path), {})


def test_arguments_are_in_the_store_before_the_first_task():
    seen = {}

    def read(data, store, signal, context):
        seen["n"] = store.get("n")

    h = Harness(Dag("main", schema={task("t", read): None}), arguments={"n": 3, "name": "x"})
    assert h.run().succeeded
    assert seen == {"n": 3}
    assert h.document.get("n") == 3 and h.document.get("name") == "x"
    assert h.document.get("arguments", section=META) == {"n": 3, "name": "x"}


def test_meta_records_each_task_dag_and_the_run():
    a, b = task("a", lambda *_: time.sleep(0.02)), task("b")
    h = Harness(Dag("main", schema={a: b}))
    result = h.run()
    doc = h.document
    entry = doc.get("log.main.tasks.a", section=META)
    assert entry["status"] == "succeeded"
    assert 0.015 < entry["duration"] < 5
    assert "lightflow-task" in entry["worker"]
    assert entry["end_time"] >= entry["start_time"]
    assert doc.get("log.main.tasks.b.status", section=META) == "succeeded"
    assert doc.get("log.main.status", section=META) == "succeeded"
    assert doc.get("log.main.duration", section=META) >= entry["duration"]
    assert doc.get("status", section=META) == "succeeded"
    assert doc.get("workflow_id", section=META) == result.workflow_id
    assert doc.get("name", section=META) == "wf"
    records = {t.task: t for t in result.tasks}
    assert records["a"].duration == pytest.approx(entry["duration"])


def test_a_running_tasks_meta_entry_is_there_while_it_runs_as_in_1x():
    """A task that reads the log sees itself and a sibling still running."""
    from lightflow.workflows import load_workflow

    path = Path(__file__).parent.parent / "distributed" / "workflows" / "reads_running_meta.py"
    store = MemoryDataStore()
    local = LocalRun(load_workflow(str(path)), {}, store=store, workers=4)
    assert local.run().succeeded
    seen = store.get(local.workflow_id).get("seen")
    for name in ("probe", "busy"):
        assert seen[name]["status"] == "running", seen
        assert seen[name]["worker"] and seen[name]["start_time"], seen
        assert "end_time" not in seen[name], seen
    final = store.get(local.workflow_id).get("log.main.tasks.busy", section=META)
    assert final["status"] == "succeeded" and "end_time" in final


def test_a_workflow_imports_helper_modules_beside_it_and_is_listed():
    """As in 1.x, a workflow's folder is on the import path when it is loaded."""
    from lightflow.workflows import list_workflows, load_workflow

    folder = Path(__file__).parent.parent / "distributed" / "beside"
    listed = {entry.name: entry for entry in list_workflows([folder])}
    assert listed["counts_frames"].error is None and "_frame_count" not in listed
    store = MemoryDataStore()
    local = LocalRun(load_workflow(str(folder / "counts_frames.py")), {}, store=store)
    assert local.run().succeeded
    assert store.get(local.workflow_id).get("frames") == 4


def test_an_argument_of_no_json_type_reaches_tasks_as_the_object():
    from lightflow.workflows import load_workflow

    loaded = load_workflow(
        str(Path(__file__).parent.parent / "distributed/workflows/path_option.py")
    )
    store = MemoryDataStore()
    arguments = loaded.parameters.consolidate({"where": "/data/scan_0042"})
    local = LocalRun(loaded, arguments, store=store)
    assert local.run().succeeded
    assert store.get(local.workflow_id).get("seen") == {"type": "PosixPath", "name": "scan_0042"}


def test_keep_data_false_removes_the_document():
    store = MemoryDataStore()
    local = LocalRun(
        workflow(Dag("main", schema={task("a"): None})), {}, store=store, keep_data=False
    )
    assert store.exists(local.workflow_id)
    assert local.run().succeeded
    assert not store.exists(local.workflow_id)


def test_event_stream_order():
    lanes = [task(f"l{i}") for i in range(3)]
    join = task("j")
    h = Harness(Dag("main", schema={task("s"): lanes, **{lane: join for lane in lanes}}), workers=3)
    assert h.run().succeeded
    kinds = [e.kind for e in h.events]
    assert kinds[0] is EventKind.WORKFLOW_STARTED
    assert kinds[1] is EventKind.DAG_STARTED
    assert kinds[-2] is EventKind.DAG_FINISHED
    assert kinds[-1] is EventKind.WORKFLOW_FINISHED
    assert h.events[-1].outcome == "succeeded"
    for name in ["s", "l0", "l1", "l2", "j"]:
        assert h.kinds(name) == ["task_started", "task_succeeded"], name
    position = {(e.kind, e.task): i for i, e in enumerate(h.events)}
    for lane in ["l0", "l1", "l2"]:
        assert position[(EventKind.TASK_SUCCEEDED, "s")] < position[(EventKind.TASK_STARTED, lane)]
        assert position[(EventKind.TASK_SUCCEEDED, lane)] < position[(EventKind.TASK_STARTED, "j")]
    assert all(e.workflow_id == h.local.workflow_id for e in h.events)
    assert {e.dag for e in h.events if e.task} == {"main"}


def test_every_task_gets_exactly_one_final_event():
    def stopper(data, store, signal, context):
        signal.stop_dag()

    b = task("b")
    h = Harness(Dag("main", schema={task("a", stopper): b, b: task("c")}))
    assert h.run().outcome == "stopped"
    assert h.kinds("a") == ["task_started", "task_succeeded"]
    assert h.kinds("b") == ["task_cancelled"]
    assert h.kinds("c") == ["task_cancelled"]


def test_composing_the_input_of_a_wide_join_is_fast():
    width = 8_000
    lanes = [task(f"lane{i}") for i in range(width)]
    join = task("join")
    h = Harness(Dag("main", schema={task("start"): lanes, **{lane: join for lane in lanes}}))
    assert h.run().succeeded
    last_lane = max(
        e.time for e in h.events if e.kind is EventKind.TASK_SUCCEEDED and e.task != "join"
    )
    join_started = next(
        e.time for e in h.events if e.kind is EventKind.TASK_STARTED and e.task == "join"
    )
    # linear composition of 8k handed-over datasets takes ~15 ms
    assert join_started - last_lane < 0.25, f"{join_started - last_lane:.3f}s"


def test_join_dags_on_its_own_dag_fails_the_task_instead_of_waiting_forever(tmp_path):
    path = tmp_path / "selfjoin.py"
    path.write_text(
        "from lightflow.models import Dag\n"
        "from lightflow.tasks import PythonTask\n"
        "def wait(data, store, signal, context):\n"
        "    signal.join_dags([context.dag_name])\n"
        "d = Dag('main')\n"
        "d.define({PythonTask('wait', wait): None})\n"
    )
    result = run_workflow(str(path))
    assert result.outcome == "failed"
    assert result.failed_task == "wait"
    assert "cannot wait for itself" in result.error


def test_unpicklable_output_for_a_fan_out_fails_the_task_that_returned_it(tmp_path):
    path = tmp_path / "lock.py"
    path.write_text(
        "import threading\n"
        "from lightflow.models import Dag\n"
        "from lightflow.tasks import PythonTask\n"
        "def keep(data, store, signal, context):\n"
        "    data['lock'] = threading.Lock()\n"
        "first = PythonTask('keep', keep)\n"
        "a, b = PythonTask('a', lambda *args: None), PythonTask('b', lambda *args: None)\n"
        "d = Dag('main')\n"
        "d.define({first: [a, b]})\n"
    )
    result = run_workflow(str(path))
    assert result.outcome == "failed"
    assert result.failed_task == "keep"  # as on a cluster, where it cannot be pickled
    assert "'lock' is a _thread.lock" in result.error and "cannot go to a worker" in result.error


def test_traceback_shows_the_chained_causes_oldest_first(tmp_path):
    path = write_workflow(
        tmp_path,
        """
import json
from lightflow.models import Dag
from lightflow.tasks import PythonTask

def helper(text):
    return json.loads(text)

def configure(data, store, signal, context):
    try:
        helper("{bad")
    except ValueError as e:
        raise RuntimeError("could not parse config") from e

d = Dag("main", schema={PythonTask("configure", configure): None})
""",
    )
    result = run_workflow(str(path))
    assert result.outcome == "failed"
    assert result.error == "RuntimeError: could not parse config"
    tb = result.traceback
    cause, separator, rest = tb.partition(
        "\nThe above exception was the direct cause of the following exception:\n\n"
    )
    assert separator, tb
    assert cause.startswith("Traceback (most recent call last):")
    assert "in helper" in cause and "json.loads(text)" in cause
    assert "JSONDecodeError" in cause.rstrip().splitlines()[-1]
    assert rest.startswith("Traceback (most recent call last):")
    assert "in configure" in rest and "in helper" not in rest
    assert rest.rstrip().endswith("RuntimeError: could not parse config")
    assert "lightflow/local" not in tb and "lightflow/execution" not in tb
    assert "During handling" not in tb  # a cause hides the context, as in Python


def test_traceback_shows_an_implicit_context_and_survives_a_cycle():
    from lightflow.execution import user_traceback

    def handle():
        try:
            {}["missing"]
        except KeyError:
            raise OSError("cleanup failed")  # noqa: B904 - the implicit context is the point

    try:
        handle()
    except OSError as error:
        caught = error
    tb = user_traceback(caught)
    assert tb is not None
    first, separator, last = tb.partition(
        "\nDuring handling of the above exception, another exception occurred:\n\n"
    )
    assert separator, tb
    assert first.rstrip().endswith("KeyError: 'missing'")
    assert last.rstrip().endswith("OSError: cleanup failed")

    context = caught.__context__
    assert context is not None
    context.__context__ = caught  # a cycle: each the context of the other
    tb = user_traceback(caught)
    assert tb is not None and tb.count("OSError: cleanup failed") == 1
    assert tb.count("KeyError: 'missing'") == 1

    caught.__suppress_context__ = True  # `raise ... from None`
    tb = user_traceback(caught)
    assert tb is not None and "KeyError" not in tb and "During handling" not in tb


def test_chained_frames_of_code_pickled_by_value_are_attributed_to_the_workflow(tmp_path):
    from lightflow.execution import user_traceback

    source = tmp_path / "flow.py"
    text = (
        "import json\n"
        "def configure():\n"
        "    try:\n"
        "        json.loads('{bad')\n"
        "    except ValueError as e:\n"
        "        raise RuntimeError('could not parse config') from e\n"
    )
    source.write_text(text)
    namespace: dict[str, Any] = {}
    exec(compile(text, "<dynamic-code>", "exec"), namespace)  # as cloudpickle's code
    try:
        namespace["configure"]()
    except RuntimeError as error:
        caught = error
    tb = user_traceback(caught, source)
    assert tb is not None and "<dynamic-code>" not in tb
    cause, _, rest = tb.partition("The above exception was the direct cause")
    assert f'"{source}", line 4, in configure' in cause and "json.loads('{bad')" in cause
    assert f'"{source}", line 6, in configure' in rest
