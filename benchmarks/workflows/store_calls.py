"""Benchmark: 10 chained tasks, each making 20 store calls (10 set, 10 push)."""

from itertools import pairwise

from lightflow.models import Dag
from lightflow.tasks import PythonTask

LENGTH, CALLS = 10, 20


def use_store(data, store, signal, context):
    for i in range(CALLS // 2):
        store.set(f"{context.task_name}_value{i}", i)
        store.push("trail", f"{context.task_name}:{i}")


tasks = [PythonTask(f"s{i}", use_store) for i in range(LENGTH)]
store_chain = Dag("store_chain")
store_chain.define({**dict(pairwise(tasks)), tasks[-1]: None})
