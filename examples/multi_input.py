"""Multi input: a task with two predecessors, telling their data apart by alias.

The detector has a left and a right module, read by two tasks. ``stitch`` receives one
dataset per predecessor. The schema labels each edge (``{task: {successor: 'alias'}}``)
so ``stitch`` finds the data by alias instead of by position. A task's input is
flattened into one dataset when it finishes, so ``save`` sees a single dataset.

Run it:  lightflow run examples/multi_input.py
"""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def read_left(data, store, signal, context):
    data["module"] = "left"
    data["rows"] = [[1, 2], [5, 6]]


def read_right(data, store, signal, context):
    data["module"] = "right"
    data["rows"] = [[3, 4], [7, 8]]


def stitch(data, store, signal, context):
    left = data.get_by_alias("left")  # by the edge's alias
    right = data("right")  # the short form of get_by_alias
    first = data.get_by_index(0)  # by position: predecessors in schema order
    print(f"stitch: left={left['module']} right={right['module']} first={first['module']}")
    # data["key"] reads and writes the default dataset, the first one unless changed.
    data["image"] = [a + b for a, b in zip(left["rows"], right["rows"], strict=True)]


def save(data, store, signal, context):
    image = data["image"]
    print(f"save: stitched image {len(image)}x{len(image[0])}, first row {image[0]}")


left_task = PythonTask(name="read_left", callback=read_left)
right_task = PythonTask(name="read_right", callback=read_right)
stitch_task = PythonTask(name="stitch", callback=stitch)
save_task = PythonTask(name="save", callback=save)

d = Dag("multi_input")
d.define(
    {
        left_task: {stitch_task: "left"},
        right_task: {stitch_task: "right"},
        stitch_task: save_task,
    }
)
