"""A task that starts three sub-DAGs and joins them; one sub-DAG starts and joins a DAG too.

``where`` says where the sub-DAGs go: ``here`` puts them (their DAG jobs and tasks) on
``join_one``, the queue of the joining task itself; ``elsewhere`` on ``join_other``.
Each sub-DAG ``n`` is a chain of three tasks (the first takes ``pause`` seconds, unless
it is stopped) that
stores ``result_<n>``: ``n + 10 n``, plus the ``leaf`` DAG's ``101`` for sub-DAG 1.
The joining task checks them all.
"""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("where", default="here", help="here or elsewhere"),
        Option("pause", default=0.0, type=float, help="Seconds each sub-DAG's first task takes"),
    ]
)
QUEUES = {"here": "join_one", "elsewhere": "join_other"}
EXPECTED = [0, 112, 22]


def fan_out(data, store, signal, context):
    where = store.get("where")
    names = [signal.start_dag(f"sub_{where}", data={"n": n}) for n in range(3)]
    assert signal.join_dags(names), "a sub-DAG failed"
    print("joined", *names)
    results = [store.get(f"result_{n}") for n in range(3)]
    assert results == EXPECTED, results


def first(data, store, signal, context):
    deadline = time.monotonic() + store.get("pause")
    while time.monotonic() < deadline and not signal.is_stopped:
        time.sleep(0.05)
    data["values"] = [data["n"]]


def middle(data, store, signal, context):
    n = data["n"]
    data["values"].append(10 * n)
    if n == 1:
        leaf = signal.start_dag(f"leaf_{store.get('where')}", data={"n": n})
        assert signal.join_dags([leaf]), "the leaf DAG failed"
        print("joined", leaf)
        data["values"].append(store.get(f"leaf_{n}"))


def last(data, store, signal, context):
    store.set(f"result_{data['n']}", sum(data["values"]))


def leaf_start(data, store, signal, context):
    data["leaf"] = 100 * data["n"]


def leaf_end(data, store, signal, context):
    store.set(f"leaf_{data['n']}", data["leaf"] + 1)


main = Dag("main")
main.define({PythonTask("fan_out", fan_out, queue="join_one"): None})


def sub_dags(where):
    """The sub-DAG and the leaf DAG for ``where``, on its queue."""
    queue = QUEUES[where]
    sub = Dag(f"sub_{where}", autostart=False, queue=queue)
    chain = [
        PythonTask(name, call, queue=queue)
        for name, call in (("first", first), ("middle", middle), ("last", last))
    ]
    sub.define({chain[0]: chain[1], chain[1]: chain[2]})
    leaf = Dag(f"leaf_{where}", autostart=False, queue=queue)
    leaf.define(
        {PythonTask("start", leaf_start, queue=queue): PythonTask("end", leaf_end, queue=queue)}
    )
    return sub, leaf


sub_here, leaf_here = sub_dags("here")
sub_elsewhere, leaf_elsewhere = sub_dags("elsewhere")
