"""Print the lines appended to a text file, as soon as they are written.

The DAG 'line_dag' makes sure the file watch_lines.txt exists in 'folder' (default
/tmp/lightflow_test), then its NewLineTriggerTask waits for lines to be appended to
it. For each new line, its callback starts the DAG 'print_dag' with the line, which
prints it. The trigger runs until the workflow is stopped
(Ctrl-C, or `lightflow workflow stop`).

    lightflow run list_lines.py folder=/tmp/scratch
    echo "hello" >> /tmp/scratch/watch_lines.txt
"""

import os

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow_filesystem import MakeDirTask, NewLineTriggerTask

parameters = Parameters(
    [Option("folder", default="/tmp/lightflow_test", help="Where watch_lines.txt is")]
)


def lines_file(data, store):
    return os.path.join(store.get("folder"), "watch_lines.txt")


# Create the file if it is not there yet (appending nothing to it).
def touch_file(data, store, signal, context):
    with open(lines_file(data, store), "a"):
        pass


# Called with the new lines: start 'print_dag' with them.
def start_print_dag(lines, data, store, signal, context):
    signal.start_dag("print_dag", data={"lines": lines})


def print_lines(data, store, signal, context):
    print("".join(data["lines"]), end="")


mkdir_task = MakeDirTask(name="mkdir_task", paths=lambda data, store: store.get("folder"))
touch_task = PythonTask(name="touch_task", callback=touch_file)
new_line_task = NewLineTriggerTask(
    name="new_line_task",
    path=lines_file,
    callback=start_print_dag,
    aggregate=None,
    use_existing=False,
    flush_existing=False,
)

line_dag = Dag("line_dag")
line_dag.define({mkdir_task: touch_task, touch_task: new_line_task})

print_task = PythonTask(name="print_task", callback=print_lines)
print_dag = Dag("print_dag", autostart=False)
print_dag.define({print_task: None})
