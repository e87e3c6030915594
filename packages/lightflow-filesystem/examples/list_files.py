"""List the files of a folder tree whose names match a pattern.

Prints the full path of every file below the folder 'folder' (default
/tmp/lightflow_test) whose extension is '.file', in subfolders too: a GlobTask finds
them and hands the list to its callback, which stores it in the data for the task
that prints it.

    lightflow run list_files.py folder=/data/scan_0042
"""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow_filesystem import GlobTask

parameters = Parameters(
    [Option("folder", default="/tmp/lightflow_test", help="The folder tree to search")]
)


# The glob task's callback: keep the list of files in the data under 'files'.
def store_files(files, data, store, signal, context):
    data["files"] = files


# Print the files the glob task found, one per line.
def print_filenames(data, store, signal, context):
    print("\n".join(data["files"]))


# '**' matches any number of subfolders because the search is recursive.
glob_task = GlobTask(
    name="glob_task",
    paths=lambda data, store: [store.get("folder")],
    callback=store_files,
    pattern="**/*.file",
    recursive=True,
)
print_task = PythonTask(name="print_task", callback=print_filenames)

list_dag = Dag("list_dag")
list_dag.define({glob_task: print_task})
