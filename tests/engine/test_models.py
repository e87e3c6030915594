"""The 1.x workflow model: Dag schemas, task data, parameters, actions and BaseTask."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightflow.exceptions import (
    AbortWorkflow,
    DagDefinitionError,
    LightflowError,
    ParameterError,
    StopTask,
    TaskDefinitionError,
    WorkflowDefinitionError,
)
from lightflow.models import (
    Action,
    BaseTask,
    Dag,
    MultiTaskData,
    Option,
    Parameters,
    TaskContext,
    TaskData,
    TaskParameters,
    TaskStatus,
)


class Task(BaseTask):
    """A BaseTask whose run is a plain function (or passes the data on)."""

    def __init__(self, name: str, body: Any = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.body = body

    def run(self, data, store, signal, context, **kwargs):
        return self.body(data, store, signal, context) if self.body else None


CONTEXT = TaskContext(
    task_name="t", dag_name="d", workflow_name="wf", workflow_id="id-1", worker_hostname="host"
)


def edges(dag: Dag) -> dict[tuple[str, str], str | None]:
    return {(a, b): slot for a, b, slot in dag.graph.edges(data="slot")}


# -- Dag.define ----------------------------------------------------------------------------
def test_define_single_successor():
    a, b = Task("a"), Task("b")
    dag = Dag("d", schema={a: b})
    assert edges(dag) == {("a", "b"): None}
    assert dag.tasks == {"a": a, "b": b}
    assert dag.task("b") is b


def test_define_list_of_successors():
    a, b, c = Task("a"), Task("b"), Task("c")
    dag = Dag("d")
    dag.define({a: [b, c], b: c})
    assert edges(dag) == {("a", "b"): None, ("a", "c"): None, ("b", "c"): None}
    assert list(dag.tasks) == ["a", "b", "c"]


def test_define_tuple_of_successors():
    a, b, c = Task("a"), Task("b"), Task("c")
    dag = Dag("d", schema={a: (b, c)})
    assert set(edges(dag)) == {("a", "b"), ("a", "c")}


def test_define_none_makes_a_lonely_task():
    a, b = Task("a"), Task("b")
    dag = Dag("d", schema={a: None, b: None})
    assert list(dag.tasks) == ["a", "b"]
    assert dag.graph.number_of_edges() == 0


def test_define_dict_with_slot_labels():
    a, b, c = Task("a"), Task("b"), Task("c")
    dag = Dag("d", schema={a: {b: "alias", c: None}})
    assert edges(dag) == {("a", "b"): "alias", ("a", "c"): None}


def test_empty_slot_label_means_none():
    a, b = Task("a"), Task("b")
    assert edges(Dag("d", schema={a: {b: ""}})) == {("a", "b"): None}


def test_non_string_slot_label_is_rejected():
    a, b = Task("a"), Task("b")
    with pytest.raises(DagDefinitionError, match=r"slot label for 'a' -> 'b'.*got 5"):
        Dag("d", schema={a: {b: 5}})


def test_a_wide_join_is_defined_in_linear_time():
    """A DAG over a dataset's frames (thousands of lanes into one join) loads at once:
    finding a repeated edge used to scan the join's predecessors for every lane."""
    lanes = [Task(f"frame{i}") for i in range(20_000)]
    start, join = Task("start"), Task("join")
    began = time.perf_counter()
    dag = Dag("d", schema={start: lanes, **{lane: join for lane in lanes}})
    assert time.perf_counter() - began < 2.0
    assert len(dag.predecessors("join")) == 20_000


def test_an_edge_given_twice_is_one_edge_in_its_place():
    a, b, c = Task("a"), Task("b"), Task("c")
    dag = Dag("d", schema={a: [c, b, c], b: c})
    assert dag.successors("a") == ["c", "b"]
    assert dag.predecessors("c") == [("a", None), ("b", None)]


def test_task_order_is_the_order_of_first_mention():
    a, b, c, d = Task("a"), Task("b"), Task("c"), Task("d")
    dag = Dag("dag", schema={c: [a, d], b: a})
    assert list(dag.tasks) == ["c", "a", "d", "b"]


def test_define_replaces_the_previous_definition():
    a, b, c = Task("a"), Task("b"), Task("c")
    dag = Dag("d", schema={a: b})
    dag.define({c: None})
    assert list(dag.tasks) == ["c"]
    assert dag.graph.number_of_edges() == 0


def test_failed_define_keeps_the_previous_definition():
    a, b = Task("a"), Task("b")
    dag = Dag("d", schema={a: b})
    with pytest.raises(DagDefinitionError):
        dag.define({a: b, b: a})
    assert edges(dag) == {("a", "b"): None}


def test_tasks_property_is_a_copy():
    a = Task("a")
    dag = Dag("d", schema={a: None})
    dag.tasks.clear()
    assert dag.tasks == {"a": a}


def test_cycle_is_rejected_and_named():
    a, b, c = Task("a"), Task("b"), Task("c")
    with pytest.raises(DagDefinitionError) as info:
        Dag("loopy", schema={a: b, b: c, c: a})
    message = str(info.value)
    assert "Dag 'loopy' has a cycle" in message
    # the cycle is named as a closed path, whichever task networkx starts at
    assert any(
        path in message for path in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c")
    )


def test_cycle_in_part_of_a_larger_dag_names_only_the_cycle():
    s, a, b, e = Task("s"), Task("a"), Task("b"), Task("e")
    with pytest.raises(DagDefinitionError) as info:
        Dag("d", schema={s: a, a: [b, e], b: a})
    message = str(info.value)
    assert "a -> b -> a" in message or "b -> a -> b" in message
    assert "s ->" not in message and "e" not in message.split("cycle:")[1].split(";")[0]


def test_self_loop_is_rejected():
    a = Task("a")
    with pytest.raises(DagDefinitionError, match="cycle: a -> a"):
        Dag("d", schema={a: a})
    with pytest.raises(DagDefinitionError, match="cycle: a -> a"):
        Dag("d", schema={a: {a: "me"}})


def test_two_tasks_with_one_name_are_rejected():
    first, second, other = Task("dup"), Task("dup"), Task("x")
    with pytest.raises(DagDefinitionError, match="two different tasks are named 'dup'"):
        Dag("d", schema={first: other, other: second})


def test_the_same_task_object_twice_in_one_dag_is_fine():
    a, b, c = Task("a"), Task("b"), Task("c")
    dag = Dag("d", schema={a: [b, c], b: c, c: None})
    assert list(dag.tasks) == ["a", "b", "c"]


def test_the_same_task_object_in_two_dags_is_fine():
    shared, a, b = Task("shared"), Task("a"), Task("b")
    one = Dag("one", schema={a: shared})
    two = Dag("two", schema={shared: b})
    assert one.task("shared") is two.task("shared") is shared
    assert list(one.graph.predecessors("shared")) == ["a"]
    assert list(two.graph.successors("shared")) == ["b"]


@pytest.mark.parametrize(
    "schema",
    [
        {"a": None},
        {Task("a"): "b"},
        {Task("a"): [Task("b"), 5]},
        {Task("a"): {"b": "slot"}},
        {Task("a"): print},
    ],
)
def test_non_task_schema_entries_are_rejected(schema):
    with pytest.raises(DagDefinitionError, match="schema entries must be tasks"):
        Dag("d", schema=schema)


@pytest.mark.parametrize("schema", [[1, 2], "a -> b", 3])
def test_schema_must_be_a_dict(schema):
    with pytest.raises(DagDefinitionError, match=r"define\(\) takes a dict"):
        Dag("d", schema=schema)


def test_dag_errors_are_workflow_definition_errors_with_one_line():
    with pytest.raises(WorkflowDefinitionError) as info:
        Dag("d", schema={Task("a"): 1})
    assert isinstance(info.value, LightflowError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["", None, 3])
def test_dag_and_task_names_must_be_non_empty_strings(name):
    with pytest.raises(DagDefinitionError):
        Dag(name)
    with pytest.raises(TaskDefinitionError):
        Task(name)


def test_dag_options():
    dag = Dag("d", autostart=False, queue="special")
    assert (dag.name, dag.autostart, dag.queue) == ("d", False, "special")
    assert Dag("e").autostart is True
    assert "Dag('d'" in repr(dag)


# -- TaskData ------------------------------------------------------------------------------
def test_task_data_is_a_dict_with_history():
    data = TaskData({"a": 1})
    data["b"] = 2
    data.set("c", 3)
    assert data.get("c") == 3 and data.get("zz", "dflt") == "dflt"
    assert sorted(data) == ["a", "b", "c"] and len(data) == 3 and "a" in data
    del data["a"]
    assert "a" not in data
    assert dict(data.items()) == {"b": 2, "c": 3}
    data.add_task_history("t1")
    data.add_task_history("t2")
    assert data.task_history == ["t1", "t2"]


def test_task_data_merge_deep_merges_dicts_and_keeps_history_unique():
    target = TaskData({"x": 1, "n": {"a": 1, "deep": {"k": 1}}, "keep": 0}, task_history=["s", "t"])
    source = TaskData(
        {"x": 2, "n": {"b": 2, "deep": {"j": 2}}, "new": [1]}, task_history=["t", "u"]
    )
    target.merge(source)
    assert target.data == {
        "x": 2,
        "n": {"a": 1, "b": 2, "deep": {"k": 1, "j": 2}},
        "keep": 0,
        "new": [1],
    }
    assert target.task_history == ["s", "t", "u"]


def test_merge_replaces_a_non_dict_by_a_dict_and_back():
    target = TaskData({"a": 1, "b": {"x": 1}})
    target.merge(TaskData({"a": {"y": 2}, "b": 5}))
    assert target.data == {"a": {"y": 2}, "b": 5}


def test_merge_does_not_alias_nested_dicts_of_the_source():
    source = TaskData({"n": {"a": 1}})
    target = TaskData()
    target.merge(source)
    target["n"]["b"] = 2
    assert source.data == {"n": {"a": 1}}


def test_flatten_not_in_place_leaves_the_original_alone():
    multi = MultiTaskData()
    multi.add_dataset("x", TaskData({"n": {"a": 1}}))
    multi.add_dataset("y", TaskData({"n": {"b": 2}}))
    flat = multi.flatten(in_place=False)
    assert flat.default_dataset.data == {"n": {"a": 1, "b": 2}}
    assert multi.get_by_alias("x").data == {"n": {"a": 1}}
    assert multi.get_by_alias("y").data == {"n": {"b": 2}}


def test_task_data_copy_is_independent():
    original = TaskData({"list": [1], "n": {"a": 1}}, task_history=["a"])
    clone = original.copy()
    clone["list"].append(2)
    clone["n"]["b"] = 2
    clone.add_task_history("b")
    assert original.data == {"list": [1], "n": {"a": 1}}
    assert original.task_history == ["a"]


# -- MultiTaskData -------------------------------------------------------------------------
def three_inputs() -> MultiTaskData:
    multi = MultiTaskData()
    multi.add_dataset("first", TaskData({"v": 1, "only1": True}), aliases=["left"])
    multi.add_dataset("second", TaskData({"v": 2, "only2": True}))
    multi.add_dataset("third", TaskData({"v": 3}), aliases=["right", "extra"])
    return multi


def test_add_dataset_aliases_include_the_predecessor_name():
    multi = three_inputs()
    assert multi.aliases == {"first": 0, "left": 0, "second": 1, "third": 2, "right": 2, "extra": 2}
    assert len(multi) == 3
    assert multi.get_by_alias("left") is multi.get_by_alias("first")
    assert multi.get_by_alias("extra")["v"] == 3
    assert multi("right")["v"] == 3
    assert multi.get_by_index(1)["v"] == 2
    assert multi.get_by_index(-1)["v"] == 3
    assert [d["v"] for d in multi] == [1, 2, 3]
    assert [d["v"] for d in multi.datasets] == [1, 2, 3]


def test_task_name_alias_does_not_steal_an_existing_alias():
    multi = MultiTaskData()
    multi.add_dataset("a", TaskData({"v": 1}), aliases=["b"])
    multi.add_dataset("b", TaskData({"v": 2}))
    assert multi("b")["v"] == 1  # the slot label was there first
    multi.add_dataset("c", TaskData({"v": 3}), aliases=["a"])
    assert multi("a")["v"] == 3  # slot labels always win


def test_add_dataset_without_data_creates_an_empty_one():
    multi = MultiTaskData()
    multi.add_dataset("t")
    assert multi("t").data == {}
    assert multi("t").task_history == ["t"]


def test_default_dataset_is_the_first_and_dict_access_uses_it():
    multi = three_inputs()
    assert multi.default_index == 0
    assert multi["v"] == 1 and multi.get("v") == 1
    assert "only1" in multi and "only2" not in multi
    assert multi.default_alias in ("first", "left")
    multi.set_default_by_alias("second")
    assert multi["v"] == 2 and multi.default_index == 1
    multi["w"] = "x"
    multi.set("z", 0)
    assert multi.get_by_index(1).data == {"v": 2, "only2": True, "w": "x", "z": 0}
    del multi["w"]
    assert "w" not in multi.get_by_index(1)
    multi.set_default_by_index(2)
    assert multi["v"] == 3 and multi.default_alias in ("third", "right", "extra")
    with pytest.raises(KeyError):
        multi["only1"]


def test_empty_multi_task_data_gets_a_default_dataset_on_access():
    multi = MultiTaskData()
    assert len(multi) == 0
    multi["k"] = 1
    assert len(multi) == 1 and multi["k"] == 1


def test_constructor_with_a_dataset_and_aliases():
    multi = MultiTaskData(dataset=TaskData({"a": 1}), aliases=["in"])
    assert multi("in")["a"] == 1 and multi["a"] == 1


def test_unknown_alias_gives_a_clear_key_error():
    multi = three_inputs()
    with pytest.raises(KeyError) as info:
        multi("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "extra, first, left, right, second, third" in message
    with pytest.raises(KeyError, match="nope"):
        multi.set_default_by_alias("nope")
    with pytest.raises(KeyError, match="aliases: none"):
        MultiTaskData().get_by_alias("x")


def test_bad_index_gives_a_clear_index_error():
    multi = three_inputs()
    with pytest.raises(IndexError, match=r"no dataset at index 3 \(3 datasets\)"):
        multi.get_by_index(3)
    with pytest.raises(IndexError):
        multi.set_default_by_index(-4)
    with pytest.raises(IndexError):
        multi.add_alias("x", 5)
    multi.add_alias("x", 1)
    assert multi("x")["v"] == 2


def test_flatten_default_dataset_wins_and_nested_dicts_merge():
    multi = MultiTaskData()
    multi.add_dataset(
        "a", TaskData({"v": "a", "n": {"a": 1, "shared": "a"}, "x": "a"}, task_history=["a"])
    )
    multi.add_dataset("b", TaskData({"v": "b", "n": {"b": 2, "shared": "b"}}, task_history=["b"]))
    multi.add_dataset(
        "c",
        TaskData({"v": "c", "n": {"shared": "c"}, "x": "c"}, task_history=["c"]),
        aliases=["slot"],
    )
    multi.set_default_by_alias("b")
    multi.flatten()
    assert len(multi) == 1
    # the default dataset (b) wins; among the others the later one (c) wins
    assert multi.default_dataset.data == {"v": "b", "n": {"a": 1, "b": 2, "shared": "b"}, "x": "c"}
    assert multi.default_dataset.task_history == ["a", "c", "b"]
    # every alias now refers to the merged dataset
    assert multi.aliases == {"a": 0, "b": 0, "c": 0, "slot": 0}
    assert multi("slot") is multi("a") is multi.default_dataset
    assert multi.default_index == 0


def test_flatten_is_linear_in_the_number_of_datasets():
    def flatten_time(count: int) -> float:
        multi = MultiTaskData()
        for i in range(count):
            multi.add_dataset(f"l{i}", TaskData({f"k{i}": i}, task_history=["start", f"l{i}"]))
        began = time.perf_counter()
        multi.flatten()
        elapsed = time.perf_counter() - began
        assert len(multi.default_dataset.task_history) == count + 1
        return elapsed

    small = min(flatten_time(2_500) for _ in range(2))
    large = flatten_time(10_000)
    assert large < 8 * small + 0.01, f"2.5k: {small:.3f}s, 10k: {large:.3f}s"


def test_flatten_of_a_shared_nested_dict_is_linear():
    def flatten_time(count: int) -> float:
        multi = MultiTaskData()
        for i in range(count):
            multi.add_dataset(f"l{i}", TaskData({"results": {f"l{i}": i}}))
        began = time.perf_counter()
        multi.flatten()
        elapsed = time.perf_counter() - began
        assert len(multi["results"]) == count
        return elapsed

    small = min(flatten_time(2_500) for _ in range(2))
    large = flatten_time(10_000)
    assert large < 8 * small + 0.01, f"2.5k: {small:.3f}s, 10k: {large:.3f}s"


def test_flatten_not_in_place_returns_a_new_object():
    multi = three_inputs()
    flat = multi.flatten(in_place=False)
    assert flat is not multi
    assert len(multi) == 3 and len(flat) == 1
    assert flat["v"] == 1 and flat["only2"] is True
    assert flat("right") is flat.default_dataset


def test_flatten_of_a_single_dataset_keeps_it():
    dataset = TaskData({"a": 1})
    multi = MultiTaskData()
    multi.add_dataset("p", dataset, aliases=["s"])
    assert multi.flatten() is multi
    assert multi.default_dataset is dataset
    assert multi.aliases == {"p": 0, "s": 0}


def test_multi_task_history_is_added_to_every_dataset():
    multi = three_inputs()
    multi.add_task_history("join")
    assert [d.task_history for d in multi] == [["join"]] * 3


def test_multi_task_data_copy_is_independent():
    multi = three_inputs()
    multi.get_by_index(0)["n"] = {"deep": [1]}
    clone = multi.copy()
    clone("first")["n"]["deep"].append(2)
    clone.set_default_by_index(2)
    clone.add_alias("new", 1)
    clone["v"] = 99
    assert multi("first")["n"] == {"deep": [1]}
    assert multi.default_index == 0 and "new" not in multi.aliases
    assert multi("third")["v"] == 3


# -- Parameters / Option -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_", "text", "value"),
    [
        (int, "42", 42),
        (int, "-3", -3),
        (float, "2.5", 2.5),
        (float, "1e3", 1000.0),
        (str, "hello", "hello"),
        (bool, "true", True),
        (bool, "Yes", True),
        (bool, " on ", True),
        (bool, "1", True),
        (bool, "FALSE", False),
        (bool, "no", False),
        (bool, "0", False),
        (bool, "off", False),
    ],
)
def test_option_converts_strings_to_its_type(type_, text, value):
    converted = Option("p", type=type_).convert(text)
    assert converted == value and type(converted) is type_


def test_option_with_a_custom_callable_type():
    assert Option("items", type=lambda text: text.split(",")).convert("a,b") == ["a", "b"]


def test_option_leaves_non_strings_alone():
    assert Option("n", type=int).convert(5) == 5


def test_unconvertible_int_names_the_parameter_and_the_type():
    params = Parameters([Option("iterations", default=1, type=int)])
    with pytest.raises(ParameterError) as info:
        params.consolidate({"iterations": "many"})
    message = str(info.value)
    assert "'iterations'" in message and "int" in message and "'many'" in message


@pytest.mark.parametrize(("type_", "name"), [(float, "float"), (bool, "bool")])
def test_unconvertible_float_and_bool(type_, name):
    with pytest.raises(ParameterError, match=f"parameter 'p' expects (a )?{name}"):
        Option("p", type=type_).convert("maybe")


def test_required_option_missing():
    params = Parameters([Option("path", help="where"), Option("n", default=3, type=int)])
    assert params.check_missing({}) == ["path"]
    assert params.check_missing({"path": "/x"}) == []
    with pytest.raises(ParameterError, match=r"missing required parameter 'path'.*path=VALUE"):
        params.consolidate({"n": "4"})


def test_unknown_parameter_is_rejected_with_the_accepted_names():
    params = Parameters([Option("b", default=1), Option("a", default=2)])
    with pytest.raises(ParameterError, match=r"unknown parameter 'c'.*accepts: a, b\)"):
        params.consolidate({"c": "1"})
    with pytest.raises(ParameterError, match="accepts: none"):
        Parameters().consolidate({"c": "1"})


def test_consolidate_converts_given_values_and_fills_defaults():
    params = Parameters(
        [
            Option("path"),
            Option("n", default=3, type=int),
            Option("ratio", default=0.5, type=float),
            Option("verbose", default=False, type=bool),
        ]
    )
    assert params.consolidate({"path": "/data", "n": "7"}) == {
        "path": "/data",
        "n": 7,
        "ratio": 0.5,
        "verbose": False,
    }
    assert params.consolidate({"path": "p", "verbose": "yes"})["verbose"] is True
    assert not params.get_option("verbose").required
    assert params.get_option("path").required
    assert params.get_option("nothing") is None
    assert Parameters().consolidate({}) == {}


def test_string_default_is_converted_like_an_argument():
    params = Parameters([Option("n", default="5", type=int)])
    assert params.consolidate({}) == {"n": 5}


# -- TaskParameters ------------------------------------------------------------------------
def test_task_parameters_eval_calls_callables_with_data_and_store():
    calls = []

    def command(data, store):
        calls.append((data, store))
        return f"ls {data['path']}"

    def callback(data, store):  # pragma: no cover - excluded, never called
        raise AssertionError("excluded values are not called")

    params = TaskParameters(command=command, retries=3, on_done=callback)
    data, store = {"path": "/tmp"}, object()
    evaluated = params.eval(data, store, exclude=["on_done"])
    assert isinstance(evaluated, TaskParameters)
    assert evaluated == {"command": "ls /tmp", "retries": 3, "on_done": callback}
    assert evaluated.command == "ls /tmp"
    assert calls == [(data, store)]
    assert params["command"] is command  # the original is unchanged
    assert params.eval_single("command", {"path": "/x"}, store) == "ls /x"
    assert params.eval_single("retries", None, None) == 3
    assert params.eval_single("absent", None, None) is None
    with pytest.raises(AttributeError, match="nothing"):
        _ = params.nothing


# -- Action --------------------------------------------------------------------------------
def test_action_limit_takes_task_objects_and_names():
    data = MultiTaskData(dataset=TaskData({"a": 1}))
    b, c = Task("b"), Task("c")
    action = Action(data, limit=[b, "c", c])
    assert action.limit == ["b", "c", "c"]
    assert action.data is data
    assert Action(data).limit is None
    assert Action(data, limit=[]).limit == []
    assert Action(data, limit=(t for t in [b])).limit == ["b"]


def test_action_limit_rejects_other_values():
    with pytest.raises(TypeError, match="takes tasks or task names, got 5"):
        Action(MultiTaskData(), limit=[5])


def test_action_copy_is_independent():
    action = Action(MultiTaskData(dataset=TaskData({"l": [1]})), limit=["b"])
    clone = action.copy()
    clone.data["l"].append(2)
    clone.limit.append("c")
    assert action.data["l"] == [1] and action.limit == ["b"]


# -- TaskContext ---------------------------------------------------------------------------
def test_task_context_to_dict():
    assert CONTEXT.to_dict() == {
        "task_name": "t",
        "dag_name": "d",
        "workflow_name": "wf",
        "workflow_id": "id-1",
        "worker_hostname": "host",
    }
    with pytest.raises(AttributeError):
        CONTEXT.task_name = "other"  # type: ignore[misc]


# -- BaseTask life cycle -------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def init(self, data, store, signal, context):
        self.calls.append(("init", data, store, signal, context))

    def final(self, status, data, store, signal, context):
        self.calls.append(("finally", status, data, store, signal, context))


def run_with_callbacks(body: Any) -> tuple[Recorder, Any, MultiTaskData]:
    recorder = Recorder()
    task = Task("t", body, callback_init=recorder.init, callback_finally=recorder.final)
    data = MultiTaskData(dataset=TaskData({"x": 1}))
    try:
        result: Any = task._run(data, "store", "signal", CONTEXT)
    except BaseException as error:  # the test inspects what was raised
        result = error
    return recorder, result, data


def test_callbacks_on_success_in_order_with_the_run_arguments():
    order = []

    def body(data, store, signal, context):
        order.append("run")
        data["x"] = 2

    recorder, result, data = run_with_callbacks(body)
    assert recorder.calls == [
        ("init", data, "store", "signal", CONTEXT),
        ("finally", TaskStatus.Success, data, "store", "signal", CONTEXT),
    ]
    assert order == ["run"]
    assert isinstance(result, Action)
    assert result.data is data and result.data["x"] == 2
    assert result.data.default_dataset.task_history == ["t"]


def test_callback_init_runs_before_run():
    seen = []
    recorder = Recorder()
    task = Task("t", lambda *a: seen.append(len(recorder.calls)), callback_init=recorder.init)
    task._run(MultiTaskData(dataset=TaskData()), None, None, CONTEXT)
    assert seen == [1]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StopTask("enough"), TaskStatus.Stopped),
        (StopTask("enough", skip_successors=False), TaskStatus.Stopped),
        (AbortWorkflow("bye"), TaskStatus.Aborted),
        (ValueError("bad"), TaskStatus.Error),
    ],
)
def test_callback_finally_status_when_the_task_raises(error, status):
    def body(*args):
        raise error

    recorder, result, _ = run_with_callbacks(body)
    assert result is error  # re-raised unchanged after callback_finally
    assert [call[:2] for call in recorder.calls] == [
        ("init", recorder.calls[0][1]),
        ("finally", status),
    ]


def test_failing_callback_init_gives_status_error_and_skips_run():
    ran = []
    final = []

    def init(*args):
        raise RuntimeError("init broke")

    task = Task(
        "t",
        lambda *a: ran.append(1),
        callback_init=init,
        callback_finally=lambda status, *a: final.append(status),
    )
    with pytest.raises(RuntimeError, match="init broke"):
        task._run(MultiTaskData(dataset=TaskData()), None, None, CONTEXT)
    assert ran == [] and final == [TaskStatus.Error]


def test_returning_a_non_action_is_an_error():
    recorder, result, _ = run_with_callbacks(lambda *a: {"x": 1})
    assert isinstance(result, TaskDefinitionError)
    assert "task 't' returned dict; return an Action or None" in str(result)
    assert recorder.calls[-1][1] is TaskStatus.Error


def test_returned_action_is_flattened_and_gets_history():
    def body(data, store, signal, context):
        out = MultiTaskData()
        out.add_dataset("p", TaskData({"a": 1}, task_history=["p"]))
        out.add_dataset("q", TaskData({"b": 2}, task_history=["q"]))
        return Action(out, limit=["next"])

    _, result, _ = run_with_callbacks(body)
    assert len(result.data) == 1
    assert result.data.default_dataset.data == {"a": 1, "b": 2}
    # the non-default dataset is merged first, the default one (p) last
    assert result.data.default_dataset.task_history == ["q", "p", "t"]
    assert result.limit == ["next"]


def test_base_task_run_is_abstract_and_flags():
    with pytest.raises(NotImplementedError, match="BaseTask does not implement run"):
        BaseTask("t").run(None, None, None, CONTEXT)
    task = Task("t", force_run=True, propagate_skip=False, queue="gpu")
    assert task.force_run and task.has_to_run and not task.propagate_skip
    assert task.queue == "gpu"
    plain = Task("p")
    assert not plain.force_run and plain.propagate_skip and plain.queue == "task"
    assert repr(plain) == "Task('p')"


def test_stop_task_and_abort_carry_their_message():
    stop = StopTask("why")
    assert stop.message == "why" and stop.skip_successors is True
    assert StopTask(skip_successors=False).skip_successors is False
    assert AbortWorkflow("m").message == "m"
