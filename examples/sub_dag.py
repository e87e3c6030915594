"""Sub-DAG: a task starts another DAG several times, each with its own data, and waits.

A scan of 300 frames is reduced in three chunks. ``split_scan`` starts the
``reduce_chunk`` DAG once per chunk with ``signal.start_dag(dag, data=...)``; the DAG
has ``autostart=False``, so it runs only when started this way. Each copy gets its own
name (``reduce_chunk``, ``reduce_chunk:2``, ...). ``signal.join_dags(names)`` blocks
until they are done; the chunks hand their results back through the data store.

Run it:  lightflow run examples/sub_dag.py
"""

import time

from lightflow.models import Dag, MultiTaskData, TaskData
from lightflow.tasks import PythonTask

FRAMES, CHUNK = 300, 100


def split_scan(data, store, signal, context):
    names = []
    for first in range(0, FRAMES, CHUNK):
        chunk = MultiTaskData(dataset=TaskData({"first": first, "last": first + CHUNK - 1}))
        names.append(signal.start_dag(reduce_dag, data=chunk))
    print(f"split_scan: started {', '.join(names)}")
    all_succeeded = signal.join_dags(names)
    # Chunks finish in any order; sort what they pushed to the store.
    sums = sorted(store.get("chunk_sums"))
    data["total"] = sum(total for _, total in sums)
    print(f"split_scan: joined {len(sums)} chunks, all succeeded: {all_succeeded}")


def publish(data, store, signal, context):
    print(f"publish: total counts {data['total']}")


def load_chunk(data, store, signal, context):
    time.sleep(0.1)  # reading the frames from disk
    data["counts"] = [frame * 2 for frame in range(data["first"], data["last"] + 1)]


def sum_chunk(data, store, signal, context):
    store.push("chunk_sums", (data["first"], sum(data["counts"])))
    print(f"{context.dag_name}: frames {data['first']}-{data['last']} summed")


split_task = PythonTask(name="split_scan", callback=split_scan)
publish_task = PythonTask(name="publish", callback=publish)
main_dag = Dag("main")
main_dag.define({split_task: publish_task})

load_task = PythonTask(name="load_chunk", callback=load_chunk)
sum_task = PythonTask(name="sum_chunk", callback=sum_chunk)
reduce_dag = Dag("reduce_chunk", autostart=False)
reduce_dag.define({load_task: sum_task})
