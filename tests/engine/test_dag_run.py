"""The pure DAG-run state machine: DagSpec and DagRun, driven by hand (no threads).

Every test plays the driver: it starts tasks the machine hands out and reports how
they ended, then checks the states, the ``Step`` answers and the outcome against the
1.x rules in the module docstring of :mod:`lightflow.engine.dag_run`.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable

import pytest
from lightflow.engine.dag_run import DagRun, DagSpec, Outcome, RunState, Step, Tally, TaskState
from lightflow.models import Dag
from lightflow.models.task import BaseTask

S = TaskState


# -- helpers -----------------------------------------------------------------------------
def make_spec(
    edges: Iterable[tuple],
    *,
    tasks: Iterable[str] = (),
    force_run: Iterable[str] = (),
    no_propagate_skip: Iterable[str] = (),
    name: str = "dag",
) -> DagSpec:
    """A spec from ``(pred, succ)`` or ``(pred, succ, slot)`` edges.

    Task order is ``tasks`` first, then tasks in the order the edges mention them.
    """
    order: list[str] = list(tasks)
    preds: dict[str, list[tuple[str, str | None]]] = {}
    succs: dict[str, list[str]] = {}

    def add(task: str) -> None:
        if task not in order:
            order.append(task)

    for edge in edges:
        pred, succ = edge[0], edge[1]
        slot = edge[2] if len(edge) > 2 else None
        add(pred)
        add(succ)
        preds.setdefault(succ, []).append((pred, slot))
        succs.setdefault(pred, []).append(succ)
    return DagSpec(
        name=name,
        order=tuple(order),
        predecessors={t: tuple(preds.get(t, ())) for t in order},
        successors={t: tuple(succs.get(t, ())) for t in order},
        force_run=frozenset(force_run),
        no_propagate_skip=frozenset(no_propagate_skip),
    )


def chain(*names: str) -> list[tuple[str, str]]:
    return list(itertools.pairwise(names))


def run_task(run: DagRun, task: str, limit: list[str] | None = None) -> Step:
    """Start a queued task and report success."""
    assert run.task_started(task) is True
    return run.task_succeeded(task, limit)


def drive(run: DagRun, results: dict[str, object] | None = None) -> list[str]:
    """Run every ready task in FIFO order until the DAG is done; return the run order.

    ``results[task]`` may be a list (an Action limit), ``'stop'``, ``'stop-run'``
    (StopTask(skip_successors=False)), ``'fail'`` or ``'abort'``; default: success.
    """
    results = results or {}
    ready = list(run.start().ready)
    ran: list[str] = []
    while ready:
        task = ready.pop(0)
        if not run.task_started(task):
            continue
        ran.append(task)
        result = results.get(task)
        if result == "stop":
            step = run.task_stopped(task)
        elif result == "stop-run":
            step = run.task_stopped(task, skip_successors=False)
        elif result == "fail":
            step = run.task_failed(task, "boom")
        elif result == "abort":
            step = run.task_aborted(task, "abort!")
        else:
            step = run.task_succeeded(task, result)  # type: ignore[arg-type]
        ready.extend(step.ready)
    return ran


def states(run: DagRun, *tasks: str) -> list[TaskState]:
    return [run.states[t] for t in tasks]


class Noop(BaseTask):
    def run(self, data, store, signal, context, **kwargs):  # pragma: no cover - not run
        return None


# -- DagSpec -----------------------------------------------------------------------------
def test_spec_from_dag_keeps_order_slots_and_flags():
    a, b, c = Noop("a"), Noop("b", force_run=True), Noop("c", propagate_skip=False)
    d = Noop("d")
    dag = Dag("pipeline", schema={a: {c: "left"}, b: [c, d], c: d})
    spec = DagSpec.from_dag(dag)
    assert spec.name == "pipeline"
    assert spec.order == ("a", "c", "b", "d")
    assert spec.predecessors["c"] == (("a", "left"), ("b", None))
    assert spec.predecessors["d"] == (("b", None), ("c", None))
    assert spec.predecessors["a"] == ()
    assert spec.successors["b"] == ("c", "d")
    assert spec.force_run == frozenset({"b"})
    assert spec.no_propagate_skip == frozenset({"c"})
    assert DagSpec.from_dag(dag, "pipeline:2").name == "pipeline:2"


def test_inputs_of_gives_slot_labels_in_predecessor_order():
    x, y, z, j = Noop("x"), Noop("y"), Noop("z"), Noop("j")
    dag = Dag("d", schema={y: {j: "second"}, x: {j: "first"}, z: j})
    run = DagRun(DagSpec.from_dag(dag))
    assert run.inputs_of("j") == (("y", "second"), ("x", "first"), ("z", None))
    assert run.inputs_of("x") == ()


# -- normal runs -------------------------------------------------------------------------
def test_linear_chain_runs_one_task_at_a_time_in_order():
    run = DagRun(make_spec(chain("a", "b", "c", "d")))
    assert not run.done and run.outcome is None
    step = run.start()
    assert step == Step(ready=["a"])
    assert states(run, "a", "b", "c", "d") == [S.QUEUED, S.PENDING, S.PENDING, S.PENDING]
    assert run.task_started("a")
    assert run.states["a"] is S.RUNNING
    assert run.task_succeeded("a") == Step(ready=["b"])
    assert run_task(run, "b") == Step(ready=["c"])
    assert run_task(run, "c") == Step(ready=["d"])
    assert not run.done
    assert run_task(run, "d") == Step(done=True)
    assert run.done
    assert run.outcome is Outcome.SUCCEEDED
    assert set(run.states.values()) == {S.SUCCEEDED}


def test_fan_out_then_fan_in_waits_for_every_branch():
    run = DagRun(
        make_spec([("a", "b"), ("a", "c"), ("a", "e"), ("b", "d"), ("c", "d"), ("e", "d")])
    )
    run.start()
    assert run_task(run, "a").ready == ["b", "c", "e"]
    assert run_task(run, "c") == Step()
    assert run.states["d"] is S.PENDING
    assert run_task(run, "b") == Step()
    assert run_task(run, "e") == Step(ready=["d"])
    assert run.verdicts["d"] == Tally(received=3)
    assert run_task(run, "d").done
    assert run.outcome is Outcome.SUCCEEDED


def test_several_start_tasks_are_ready_at_once():
    run = DagRun(make_spec([("a", "c"), ("b", "c")], tasks=["lonely"]))
    assert run.start().ready == ["lonely", "a", "b"]


def test_dag_without_tasks_is_done_at_start():
    run = DagRun(make_spec([]))
    assert not run.done
    step = run.start()
    assert step == Step(done=True)
    assert run.done and run.outcome is Outcome.SUCCEEDED


def test_start_twice_raises():
    run = DagRun(make_spec(chain("a", "b")))
    run.start()
    with pytest.raises(RuntimeError, match="already started"):
        run.start()


# -- limit -------------------------------------------------------------------------------
def test_limit_to_a_subset_skips_the_other_branches():
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("a", "d")]))
    run.start()
    step = run_task(run, "a", limit=["c"])
    assert step.ready == ["c"]
    assert step.skipped == ["b", "d"]
    assert states(run, "b", "c", "d") == [S.SKIPPED, S.QUEUED, S.SKIPPED]
    assert run.verdicts["b"] == Tally(received=1, excluded=1)
    assert run_task(run, "c").done
    assert run.outcome is Outcome.SUCCEEDED


def test_empty_limit_skips_all_successors_and_ends_the_dag():
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("b", "d")]))
    run.start()
    step = run_task(run, "a", limit=[])
    assert step.ready == []
    assert sorted(step.skipped) == ["b", "c", "d"]
    assert step.done
    assert run.outcome is Outcome.SUCCEEDED


def test_limit_none_runs_all_successors():
    run = DagRun(make_spec([("a", "b"), ("a", "c")]))
    run.start()
    assert run_task(run, "a", limit=None).ready == ["b", "c"]


def test_limit_with_every_successor_runs_them_all():
    run = DagRun(make_spec([("a", "b"), ("a", "c")]))
    run.start()
    assert run_task(run, "a", limit=["c", "b", "c"]).ready == ["b", "c"]


def test_join_after_a_limited_branch_still_runs():
    # a -> [b, c] -> d with limit=['b']: c is skipped, d runs (not all preds skipped).
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]))
    run.start()
    step = run_task(run, "a", limit=["b"])
    assert step.skipped == ["c"]
    assert run.verdicts["d"] == Tally(received=1, skipped=1)
    assert run_task(run, "b").ready == ["d"]
    assert run_task(run, "d").done
    assert run.states["c"] is S.SKIPPED
    assert run.outcome is Outcome.SUCCEEDED


def test_successor_is_skipped_if_any_predecessor_excluded_it():
    # d has two predecessors; b runs it, c excludes it: d is skipped.
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("c", "e")]))
    run.start()
    run_task(run, "a")
    assert run_task(run, "b") == Step()
    step = run_task(run, "c", limit=["e"])
    assert step.skipped == ["d"] and step.ready == ["e"]
    assert run.verdicts["d"] == Tally(received=2, excluded=1)


def test_exclusion_wins_regardless_of_the_order_predecessors_finish():
    run = DagRun(make_spec([("a", "d"), ("b", "d"), ("b", "x")]))
    run.start()
    assert run_task(run, "b", limit=["x"]) == Step(ready=["x"])
    assert run.states["d"] is S.PENDING
    assert run_task(run, "a").skipped == ["d"]


def test_skip_propagates_through_several_levels():
    run = DagRun(make_spec([*chain("a", "b", "c", "d", "e"), ("c", "f")]))
    run.start()
    step = run_task(run, "a", limit=[])
    assert step.skipped == ["b", "c", "d", "e", "f"]
    assert step.done
    assert run.verdicts["d"] == Tally(received=1, skipped=1)
    assert run.verdicts["b"] == Tally(received=1, excluded=1)


def test_successor_of_only_skipped_predecessors_is_skipped():
    # a limits to nothing: b and c skipped; d's predecessors are all skipped -> skipped.
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]))
    run.start()
    assert run_task(run, "a", limit=[]).skipped == ["b", "c", "d"]


def test_mixed_skip_and_run_verdicts_let_the_task_run():
    # x is skipped (propagating), y runs and passes: j has one skip + one run -> runs.
    run = DagRun(make_spec([("s", "x"), ("s", "y"), ("x", "j"), ("y", "j")]))
    run.start()
    run_task(run, "s", limit=["y"])
    assert run_task(run, "y").ready == ["j"]


def test_propagate_skip_false_lets_successors_run():
    run = DagRun(make_spec(chain("a", "b", "c", "d"), no_propagate_skip={"b"}))
    run.start()
    step = run_task(run, "a", limit=[])
    assert step.skipped == ["b"]
    assert step.ready == ["c"]
    assert run.verdicts["c"] == Tally(received=1)
    assert run_task(run, "c").ready == ["d"]


def test_propagate_skip_false_deeper_in_a_skipped_chain():
    # a excludes b; b propagates to c; c does not propagate: d runs.
    run = DagRun(make_spec(chain("a", "b", "c", "d"), no_propagate_skip={"c"}))
    run.start()
    step = run_task(run, "a", limit=[])
    assert step.skipped == ["b", "c"]
    assert step.ready == ["d"]


def test_propagate_skip_false_on_a_task_that_runs_changes_nothing():
    run = DagRun(make_spec(chain("a", "b", "c"), no_propagate_skip={"b"}))
    assert drive(run) == ["a", "b", "c"]


def test_force_run_after_an_excluded_edge():
    run = DagRun(make_spec([("a", "b"), ("a", "c")], force_run={"c"}))
    run.start()
    step = run_task(run, "a", limit=["b"])
    assert step.ready == ["b", "c"]
    assert step.skipped == []
    assert run.verdicts["c"] == Tally(received=1, excluded=1)


def test_force_run_below_a_skipped_chain():
    run = DagRun(make_spec(chain("a", "b", "c", "d"), force_run={"c"}))
    run.start()
    step = run_task(run, "a", limit=[])
    assert step.skipped == ["b"]
    assert step.ready == ["c"]
    assert run_task(run, "c").ready == ["d"]


def test_force_run_after_a_stopped_predecessor():
    run = DagRun(make_spec(chain("a", "b", "c"), force_run={"b"}))
    run.start()
    run.task_started("a")
    assert run.task_stopped("a").ready == ["b"]


def test_force_run_does_not_overrule_a_halt():
    run = DagRun(make_spec(chain("a", "b"), force_run={"b"}))
    run.start()
    run.task_started("a")
    step = run.task_failed("a", "boom")
    assert step.cancelled == ["b"]
    assert run.outcome is Outcome.FAILED


# -- StopTask ----------------------------------------------------------------------------
def test_stop_task_skips_successors_by_default():
    run = DagRun(make_spec(chain("a", "b", "c")))
    run.start()
    run.task_started("a")
    step = run.task_stopped("a")
    assert step.skipped == ["b", "c"]
    assert step.done
    assert run.states["a"] is S.STOPPED
    assert run.outcome is Outcome.SUCCEEDED


def test_stop_task_without_skipping_successors_lets_them_run():
    run = DagRun(make_spec([("a", "b"), ("a", "c")]))
    run.start()
    run.task_started("a")
    step = run.task_stopped("a", skip_successors=False)
    assert step.ready == ["b", "c"]
    assert step.skipped == []
    assert run.verdicts["b"] == Tally(received=1)


def test_stopped_task_counts_as_finished_for_a_join():
    run = DagRun(make_spec([("a", "j"), ("b", "j")]))
    run.start()
    run.task_started("a")
    assert run.task_stopped("a", skip_successors=False) == Step()
    assert run_task(run, "b").ready == ["j"]


# -- failure, abort, stop ----------------------------------------------------------------
def test_failure_cancels_pending_and_queued_but_running_tasks_finish():
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("a", "q"), ("b", "d"), ("c", "e")]))
    run.start()
    assert run_task(run, "a").ready == ["b", "c", "q"]
    run.task_started("b")
    run.task_started("c")
    step = run.task_failed("b", "ValueError: bad input")
    assert run.halt is Outcome.FAILED
    assert sorted(step.cancelled) == ["d", "e", "q"]
    assert not step.done
    assert run.states["c"] is S.RUNNING
    assert run.task_started("q") is False  # the driver still held q: drop it
    assert run.states["q"] is S.CANCELLED
    # the running task may still finish; nothing new is queued afterwards
    step = run.task_succeeded("c")
    assert step.ready == []
    assert step.done
    assert run.outcome is Outcome.FAILED
    assert run.errors == {"b": "ValueError: bad input"}
    assert states(run, "a", "b", "c", "d", "e", "q") == [
        S.SUCCEEDED,
        S.FAILED,
        S.SUCCEEDED,
        S.CANCELLED,
        S.CANCELLED,
        S.CANCELLED,
    ]


def test_failure_of_the_last_task_is_done_at_once():
    run = DagRun(make_spec(chain("a", "b")))
    run.start()
    run_task(run, "a")
    run.task_started("b")
    step = run.task_failed("b", "boom")
    assert step.done and step.cancelled == []
    assert run.outcome is Outcome.FAILED


def test_running_task_can_still_stop_or_fail_after_a_halt():
    run = DagRun(make_spec([("s", "a"), ("s", "b"), ("s", "c")]))
    run.start()
    run_task(run, "s")
    for task in "abc":
        run.task_started(task)
    run.task_failed("a", "first")
    run.task_stopped("b")
    step = run.task_failed("c", "second")
    assert step.done
    assert run.outcome is Outcome.FAILED
    assert run.errors == {"a": "first", "c": "second"}


def test_after_a_halt_already_cancelled_tasks_are_not_reported_again():
    # s -> [b, c], c -> e. b fails while c runs: e is cancelled by the halt.
    run = DagRun(make_spec([("s", "b"), ("s", "c"), ("c", "e")]))
    run.start()
    run_task(run, "s")
    run.task_started("b")
    run.task_started("c")
    assert run.task_failed("b", "boom").cancelled == ["e"]
    step = run.task_succeeded("c")
    assert step.done
    assert step.cancelled == []  # e was cancelled before; this step changed nothing for it


def test_abort_halts_with_outcome_aborted_and_keeps_the_message():
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("b", "d")]))
    run.start()
    run_task(run, "a")
    run.task_started("b")
    step = run.task_aborted("b", "the sample is gone")
    assert step.cancelled == ["c", "d"]
    assert step.done
    assert run.outcome is Outcome.ABORTED
    assert run.errors == {"b": "the sample is gone"}
    assert run.states["b"] is S.ABORTED


def test_abort_without_message_records_no_error():
    run = DagRun(make_spec(chain("a", "b")))
    run.start()
    run.task_started("a")
    run.task_aborted("a")
    assert run.errors == {}
    assert run.outcome is Outcome.ABORTED


def test_first_halt_reason_wins():
    run = DagRun(make_spec([("s", "a"), ("s", "b")]))
    run.start()
    run_task(run, "s")
    run.task_started("a")
    run.task_started("b")
    run.task_failed("a", "boom")
    run.stop(Outcome.ABORTED)
    run.task_aborted("b", "late")
    assert run.outcome is Outcome.FAILED


def test_stop_while_running_cancels_the_rest():
    run = DagRun(make_spec(chain("a", "b", "c")))
    run.start()
    run.task_started("a")
    step = run.stop()
    assert step.cancelled == ["b", "c"]
    assert not step.done
    assert run.task_succeeded("a").done
    assert run.outcome is Outcome.STOPPED
    assert run.states["a"] is S.SUCCEEDED


def test_stop_with_another_outcome():
    run = DagRun(make_spec(chain("a", "b")))
    run.start()
    step = run.stop(Outcome.ABORTED)
    assert step.cancelled == ["a", "b"] and step.done
    assert run.outcome is Outcome.ABORTED


def test_stop_before_start_is_done_at_once():
    run = DagRun(make_spec(chain("a", "b", "c")))
    step = run.stop()
    assert step.done
    assert step.cancelled == ["a", "b", "c"]
    assert run.started and run.done
    assert run.outcome is Outcome.STOPPED
    with pytest.raises(RuntimeError):
        run.start()


def test_stop_of_an_empty_dag_before_start_is_done():
    run = DagRun(make_spec([]))
    assert run.stop().done
    assert run.outcome is Outcome.STOPPED


def test_stop_after_done_keeps_the_outcome():
    run = DagRun(make_spec(chain("a", "b")))
    drive(run)
    step = run.stop()
    assert step == Step(done=True)
    assert run.outcome is Outcome.SUCCEEDED


def test_task_started_on_a_cancelled_task_returns_false():
    run = DagRun(make_spec([("a", "b")], tasks=["x"]))
    assert run.start().ready == ["x", "a"]
    run.stop()
    assert run.task_started("x") is False
    assert run.task_started("a") is False
    assert run.states["x"] is S.CANCELLED


# -- bad limit ---------------------------------------------------------------------------
def test_limit_naming_an_unknown_task_fails_the_task_with_a_message():
    run = DagRun(make_spec([("a", "b"), ("a", "c"), ("b", "d")]))
    run.start()
    run.task_started("a")
    step = run.task_succeeded("a", limit=["b", "nope"])
    assert run.states["a"] is S.FAILED
    assert step.done and sorted(step.cancelled) == ["b", "c", "d"]
    assert run.outcome is Outcome.FAILED
    message = run.errors["a"]
    assert "'nope'" in message
    assert "not a successor of 'a'" in message
    assert "b, c" in message


def test_limit_naming_a_grandchild_is_rejected_too():
    run = DagRun(make_spec(chain("a", "b", "c")))
    run.start()
    run.task_started("a")
    run.task_succeeded("a", limit=["c"])
    assert run.states["a"] is S.FAILED
    assert "'c'" in run.errors["a"]


def test_limit_on_a_task_without_successors_says_none():
    run = DagRun(make_spec([], tasks=["a"]))
    run.start()
    run.task_started("a")
    run.task_succeeded("a", limit=["ghost"])
    assert "'ghost'" in run.errors["a"] and "none" in run.errors["a"]
    # while an empty limit on a task without successors is fine
    run = DagRun(make_spec([], tasks=["a"]))
    run.start()
    assert run_task(run, "a", limit=[]).done
    assert run.outcome is Outcome.SUCCEEDED


# -- events from wrong states ------------------------------------------------------------
@pytest.mark.parametrize("event", ["succeeded", "stopped", "failed", "aborted"])
def test_results_from_a_task_that_is_not_running_raise(event):
    run = DagRun(make_spec(chain("a", "b")))
    run.start()
    report = {
        "succeeded": lambda t: run.task_succeeded(t),
        "stopped": lambda t: run.task_stopped(t),
        "failed": lambda t: run.task_failed(t, "x"),
        "aborted": lambda t: run.task_aborted(t),
    }[event]
    with pytest.raises(RuntimeError, match="from state queued"):
        report("a")  # queued, not started
    with pytest.raises(RuntimeError, match="from state pending"):
        report("b")
    run_task(run, "a")
    with pytest.raises(RuntimeError, match=r"'a'.*from state succeeded"):
        report("a")  # twice
    assert run.states["a"] is S.SUCCEEDED and run.states["b"] is S.QUEUED


def test_task_started_from_a_wrong_state_raises():
    run = DagRun(make_spec(chain("a", "b")))
    with pytest.raises(RuntimeError, match="cannot start from state pending"):
        run.task_started("a")  # not started yet
    run.start()
    with pytest.raises(RuntimeError, match="'b' cannot start from state pending"):
        run.task_started("b")
    run.task_started("a")
    with pytest.raises(RuntimeError, match="from state running"):
        run.task_started("a")
    run.task_succeeded("a")
    with pytest.raises(RuntimeError, match="from state succeeded"):
        run.task_started("a")


def test_unknown_task_names_raise_key_error():
    run = DagRun(make_spec(chain("a", "b")))
    run.start()
    with pytest.raises(KeyError):
        run.task_started("zzz")


# -- the state, kept apart from the machine -----------------------------------------------
def test_a_machine_rebuilt_over_the_same_state_continues_identically():
    """The distributed engine builds a new DagRun over its stored state for each event."""
    spec = make_spec(
        [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("a", "x")],
        no_propagate_skip={"x"},
    )
    run = DagRun(spec)
    run.start()
    run_task(run, "a", limit=["b", "c"])  # x skipped, but does not propagate
    run.task_started("b")
    assert run.states["b"] is S.RUNNING and run.states["x"] is S.SKIPPED
    assert run.verdicts["d"] == Tally() and run.halt is None and run.started
    assert DagRun(spec, run.state).task_succeeded("b") == Step()
    assert run_task(DagRun(spec, run.state), "c") == Step(ready=["d"])
    assert run_task(DagRun(spec, run.state), "d") == Step(ready=["e"])
    assert run_task(DagRun(spec, run.state), "e") == Step(done=True)
    assert run.done and run.outcome is Outcome.SUCCEEDED


def test_halt_and_errors_live_in_the_state():
    spec = make_spec([("a", "b"), ("a", "c"), ("c", "d")])
    state = RunState(spec)
    run = DagRun(spec, state)
    run.start()
    run_task(run, "a")
    run.task_started("b")
    run.task_started("c")
    run.task_failed("b", "boom")
    assert state.halt is Outcome.FAILED and state.errors == {"b": "boom"}
    resumed = DagRun(spec, state)
    assert not resumed.done
    assert resumed.task_succeeded("c").done
    assert resumed.outcome is Outcome.FAILED
    assert resumed.states["d"] is S.CANCELLED


def test_a_deferred_sweep_cancels_the_waiting_tasks_in_a_step_of_its_own():
    # a -> [b, c, d]; b -> e; c -> f. b fails while c and d wait in the queue.
    spec = make_spec([("a", "b"), ("a", "c"), ("a", "d"), ("b", "e"), ("c", "f")])
    run = DagRun(spec, sweep_on_halt=False)
    run.start()
    run_task(run, "a")
    run.task_started("b")
    run.task_started("c")
    step = run.task_failed("b", "boom")
    assert step == Step(sweep_due=True) and run.halt is Outcome.FAILED
    assert states(run, "d", "e", "f") == [S.QUEUED, S.PENDING, S.PENDING]
    # until the sweep: a queued task that is started is cancelled instead ...
    assert not run.task_started("d") and run.states["d"] is S.CANCELLED
    # ... and a task decided is cancelled
    assert run.task_succeeded("c") == Step(cancelled=["f"])
    assert not run.done
    assert run.sweep() == Step(cancelled=["e"], done=True)
    assert run.outcome is Outcome.FAILED
    assert run.sweep() == Step(done=True)  # a second sweep finds nothing to do


def test_a_stop_before_the_start_with_a_deferred_sweep_ends_the_run():
    run = DagRun(make_spec(chain("a", "b")), sweep_on_halt=False)
    assert run.stop() == Step(sweep_due=True)
    assert run.started and not run.done
    assert run.sweep() == Step(cancelled=["a", "b"], done=True)
    assert run.outcome is Outcome.STOPPED


# -- scale -------------------------------------------------------------------------------
def fan(n: int) -> tuple[DagSpec, tuple[str, ...]]:
    names = tuple(f"t{i}" for i in range(n))
    spec = DagSpec(
        name="fan",
        order=("start", *names, "join"),
        predecessors={
            "start": (),
            **{t: (("start", None),) for t in names},
            "join": tuple((t, None) for t in names),
        },
        successors={"start": names, **{t: ("join",) for t in names}, "join": ()},
    )
    return spec, names


def test_ten_thousand_task_fan_out_runs_in_the_machine_alone_quickly():
    spec, names = fan(10_000)
    began = time.perf_counter()
    run = DagRun(spec)
    run.start()
    step = run_task(run, "start")
    assert step.ready == list(names)
    for task in names[:-1]:
        assert run_task(run, task) == Step()
    assert run_task(run, names[-1]).ready == ["join"]
    assert run_task(run, "join").done
    elapsed = time.perf_counter() - began
    assert run.outcome is Outcome.SUCCEEDED
    assert elapsed < 2.0, f"10k fan-out took {elapsed:.2f}s in the state machine"


def test_limit_check_is_linear_in_the_fan_out():
    spec, names = fan(8_000)

    def succeed_start(limit):
        run = DagRun(spec)
        run.start()
        run.task_started("start")
        began = time.perf_counter()
        step = run.task_succeeded("start", limit)
        elapsed = time.perf_counter() - began
        assert len(step.ready) == len(names)
        return elapsed

    plain = min(succeed_start(None) for _ in range(3))
    limited = min(succeed_start(list(names)) for _ in range(2))
    assert limited < 5 * plain + 0.02, f"limit: {limited:.3f}s, no limit: {plain:.3f}s"


# -- property-style: random DAGs, random outcomes ----------------------------------------
def random_spec(rng: random.Random, size: int) -> DagSpec:
    names = [f"n{i}" for i in range(size)]
    edges = []
    for j in range(1, size):
        for i in range(j):
            if rng.random() < 0.25:
                edges.append((names[i], names[j], rng.choice([None, None, f"s{i}"])))
    return make_spec(
        edges,
        tasks=names,
        force_run={n for n in names if rng.random() < 0.1},
        no_propagate_skip={n for n in names if rng.random() < 0.2},
    )


def expected_decision(
    spec: DagSpec, run: DagRun, task: str, said: dict[str, dict[str, str]]
) -> str:
    """The 1.x rule, recomputed from what the test reported, independent of verdicts."""
    if task in spec.force_run:
        return "run"
    verdicts = [said[p][task] for p, _ in spec.predecessors[task]]
    if "excluded" in verdicts:
        return "skip"
    if verdicts and all(v == "skip" for v in verdicts):
        return "skip"
    return "run"


@pytest.mark.parametrize("sweep_on_halt", [True, False])
@pytest.mark.parametrize("seed", range(60))
def test_random_dags_keep_the_invariants(seed, sweep_on_halt):
    rng = random.Random(seed)
    spec = random_spec(rng, rng.randint(1, 25))
    run = DagRun(spec, sweep_on_halt=sweep_on_halt)
    sweep_due = False
    said: dict[str, dict[str, str]] = {t: {} for t in spec.order}  # pred -> succ -> verdict
    reported: dict[str, set[str]] = {t: set() for t in spec.order}
    started_order: list[str] = []
    external_stop = rng.random() < 0.1
    halted_by: str | None = None

    def record(step: Step) -> None:
        for kind in ("ready", "skipped", "cancelled"):
            for task in getattr(step, kind):
                reported[task].add(kind)
        for task in step.skipped:
            verdict = "run" if task in spec.no_propagate_skip else "skip"
            for succ in spec.successors[task]:
                said[task][succ] = verdict
        for task in step.ready + step.skipped:
            # decided only once every predecessor finished, and by the 1.x rule
            for pred, _ in spec.predecessors[task]:
                assert run.states[pred].finished, (task, pred, run.states[pred])
            decision = expected_decision(spec, run, task, said)
            assert decision == ("run" if task in step.ready else "skip"), task
            assert run.halt is None
        open_tasks = [t for t, s in run.states.items() if not s.terminal]
        assert step.done == run.done == (run.started and not open_tasks)
        nonlocal sweep_due
        sweep_due = sweep_due or step.sweep_due
        assert not (step.sweep_due and sweep_on_halt)

    record(run.start())
    queued = [t for t, s in run.states.items() if s is S.QUEUED]
    running: list[str] = []
    for _ in range(10 * len(spec.order) + 10):
        if run.done:
            break
        if sweep_due and (rng.random() < 0.3 or not (queued or running)):
            sweep_due = False  # the driver's own step, after any number of other events
            record(run.sweep())
            continue
        if external_stop and rng.random() < 0.05:
            halted_by = halted_by or "stop"
            record(run.stop())
            continue
        if queued and (not running or rng.random() < 0.5):
            task = queued.pop(rng.randrange(len(queued)))
            was_queued = run.states[task] is S.QUEUED
            if run.task_started(task):
                # a task never runs before all its predecessors finished
                for pred, _ in spec.predecessors[task]:
                    assert run.states[pred].finished, (pred, task)
                started_order.append(task)
                running.append(task)
            else:
                assert run.halt is not None
                if was_queued:  # halted, sweep still due: cancelled now
                    reported[task].add("cancelled")
                    assert run.states[task] is S.CANCELLED
            continue
        if not running:
            break
        task = running.pop(rng.randrange(len(running)))
        successors = list(spec.successors[task])
        roll = rng.random()
        if roll < 0.02:
            halted_by = halted_by or "fail"
            step = run.task_failed(task, "boom")
        elif roll < 0.03:
            halted_by = halted_by or "abort"
            step = run.task_aborted(task, "abort")
        elif roll < 0.15:
            skip = rng.random() < 0.5
            for succ in successors:
                said[task][succ] = "excluded" if skip else "run"
            step = run.task_stopped(task, skip_successors=skip)
        else:
            limit = None
            if successors and rng.random() < 0.4:
                limit = rng.sample(successors, rng.randint(0, len(successors)))
            for succ in successors:
                said[task][succ] = "run" if limit is None or succ in limit else "excluded"
            step = run.task_succeeded(task, limit)
        record(step)
        queued.extend(step.ready)

    # every task ends terminal, the run is done, and the outcome fits what happened
    assert run.done, run.states
    assert all(s.terminal for s in run.states.values())
    expected = {
        None: Outcome.SUCCEEDED,
        "stop": Outcome.STOPPED,
        "fail": Outcome.FAILED,
        "abort": Outcome.ABORTED,
    }[halted_by]
    assert run.outcome is expected
    if halted_by is None:
        assert not any(s in (S.CANCELLED, S.FAILED, S.ABORTED) for s in run.states.values())
    assert len(started_order) == len(set(started_order))
    # every task was reported exactly one way, matching its final state
    for task, state in run.states.items():
        kinds = reported[task]
        if state is S.SKIPPED:
            assert kinds == {"skipped"}
        elif state is S.CANCELLED:
            assert "cancelled" in kinds and "skipped" not in kinds
        else:
            assert kinds == {"ready"}, (task, state, kinds)


def test_the_worst_outcome_decides_a_workflow() -> None:
    assert Outcome.worst([]) is Outcome.SUCCEEDED
    assert Outcome.worst(["succeeded", "stopped"]) is Outcome.STOPPED
    assert Outcome.worst([Outcome.STOPPED, Outcome.FAILED]) is Outcome.FAILED
    assert Outcome.worst(["failed", "aborted", "succeeded"]) is Outcome.ABORTED
