"""Count the files of a folder tree and add up their sizes.

Walks the folder given as 'path' and all its subfolders with a WalkTask, which calls
its callback once per file; symbolic links are not counted. Prints the number of
files and their total size.

    lightflow run walk_dir.py path=/data/scan_0042
"""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow_filesystem import WalkTask

parameters = Parameters(
    [Option("path", help="The folder for which the statistics are acquired", type=str)]
)


# Start the counts at zero.
def setup(data, store, signal, context):
    data["count"] = 0
    data["size"] = 0


# Called for each file (an os.DirEntry): count it unless it is a symbolic link.
def acquire_stats(entry, data, store, signal, context):
    if not entry.is_symlink():
        data["count"] += 1
        data["size"] += entry.stat(follow_symlinks=False).st_size


def print_stats(data, store, signal, context):
    print(f"Statistics for folder: {store.get('path')}")
    print(f"Number files: {data['count']}")
    print(f"Total size (bytes): {data['size']}")


setup_task = PythonTask(name="setup_task", callback=setup)
walk_task = WalkTask(
    name="walk_task",
    path=lambda data, store: store.get("path"),
    callback=acquire_stats,
    recursive=True,
)
print_task = PythonTask(name="print_task", callback=print_stats)

main_dag = Dag("main_dag")
main_dag.define({setup_task: walk_task, walk_task: print_task})
