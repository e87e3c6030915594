"""Watch a folder and back up, publish and protect every five files written into it.

The DAG 'notify_dag' creates the folders input, output and backup in 'folder'
(default /tmp/lightflow_test), then its NotifyTriggerTask waits for files to be
closed after writing in input. Every five files it starts the DAG 'files_dag' with
their paths. That DAG copies the five files to backup, then at the same time makes
the copies read-only (400) and moves the originals to output, whose files it then
makes private (700).

The trigger runs until the workflow is stopped (Ctrl-C, or `lightflow workflow
stop`); files of an incomplete batch of five are logged by name at that point.

    lightflow run watch_dir.py folder=/data/beamtime
"""

import os

from lightflow.models import Dag, Option, Parameters
from lightflow_filesystem import ChmodTask, CopyTask, MakeDirTask, MoveTask, NotifyTriggerTask

parameters = Parameters(
    [Option("folder", default="/tmp/lightflow_test", help="Where input, output, backup are")]
)


def subfolder(name):
    return lambda data, store: os.path.join(store.get("folder"), name)


def in_subfolder(name):
    """The batch's files, as they are named in the subfolder 'name'."""
    return lambda data, store: [
        os.path.join(store.get("folder"), name, os.path.basename(file)) for file in data["files"]
    ]


# Called with each batch of five closed files: start 'files_dag' with them.
def start_files_dag(files, data, store, signal, context):
    signal.start_dag("files_dag", data={"files": files})


# The notification DAG.
def all_subfolders(data, store):
    return [os.path.join(store.get("folder"), name) for name in ("input", "output", "backup")]


mkdir_task = MakeDirTask(name="mkdir_task", paths=all_subfolders)
notify_task = NotifyTriggerTask(
    name="notify_task",
    path=subfolder("input"),
    callback=start_files_dag,
    recursive=True,
    aggregate=5,
    skip_duplicate=False,
    use_existing=False,
    on_file_create=False,
    on_file_close=True,
    on_file_delete=False,
    on_file_move=False,
)

notify_dag = Dag("notify_dag")
notify_dag.define({mkdir_task: notify_task})


# The file handling DAG, started for each batch.
copy_backup_task = CopyTask(
    name="copy_backup_task",
    sources=lambda data, store: data["files"],
    destination=subfolder("backup"),
)
chmod_backup_task = ChmodTask(
    name="chmod_backup_task", paths=in_subfolder("backup"), permission="400"
)
move_output_task = MoveTask(
    name="move_output_task",
    sources=lambda data, store: data["files"],
    destination=subfolder("output"),
)
chmod_output_task = ChmodTask(
    name="chmod_output_task", paths=in_subfolder("output"), permission="700"
)

files_dag = Dag("files_dag", autostart=False)
files_dag.define(
    {
        copy_backup_task: [chmod_backup_task, move_output_task],
        move_output_task: chmod_output_task,
    }
)
