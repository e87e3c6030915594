"""Create a folder with three files, list them, then remove the folder.

Creates the folder 'delete_me' in 'folder' (default /tmp/lightflow_test), adds the
files a, b and c with a BashTask, prints their paths with a GlobTask and removes the
whole folder with a RemoveTask. If the folder cannot be removed, the run fails
naming the path and the reason.

    lightflow run remove_dir.py folder=/tmp/scratch
"""

import os

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import BashTask
from lightflow_filesystem import GlobTask, MakeDirTask, RemoveTask

parameters = Parameters(
    [Option("folder", default="/tmp/lightflow_test", help="Where 'delete_me' is created")]
)


def delete_me(data, store):
    return os.path.join(store.get("folder"), "delete_me")


# Print each file of the temporary folder.
def list_files(files, data, store, signal, context):
    for file in files:
        print(file)


mkdir_task = MakeDirTask(name="mkdir_task", paths=delete_me)
files_task = BashTask(name="create_files_task", command="touch a b c", cwd=delete_me)
list_task = GlobTask(name="list_task", paths=delete_me, callback=list_files)
remove_task = RemoveTask(name="remove_task", paths=delete_me)

remove_dag = Dag("remove_dag")
remove_dag.define({mkdir_task: files_task, files_task: list_task, list_task: remove_task})
